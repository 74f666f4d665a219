# One image for every service; the compose file picks the subcommand (`fleet api`, `fleet ingest`, ...).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fleetcore ./fleetcore
COPY ingest ./ingest
COPY monitor ./monitor
COPY backoffice ./backoffice
COPY simulators ./simulators
RUN pip install . && useradd --system --uid 10001 --no-create-home fleet

# Never run the services as root.
USER fleet
EXPOSE 8000
ENTRYPOINT ["fleet"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
