# One image for every service; the compose file picks the subcommand (`fleet api`, `fleet ingest`, ...).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY fleetcore ./fleetcore
COPY ingest ./ingest
COPY monitor ./monitor
COPY backoffice ./backoffice
COPY simulators ./simulators
COPY gateways ./gateways
COPY fleetapp ./fleetapp
# fonts-wqy-microhei lets PDFs show Chinese (fleetcore/documents.py). gcc builds the parser's compiled fast path (fleetcore/protocol/_fastparse.c) and is removed again; the import check fails
# the build if it did not compile (ingest would otherwise run, its workers at about twice the CPU per message).
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev fonts-wqy-microhei \
    && pip install . \
    && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/* \
    && (cd / && python -c "import fleetcore.protocol._fastparse") \
    && useradd --system --uid 10001 --no-create-home fleet

# Never run the services as root.
USER fleet
EXPOSE 8000
ENTRYPOINT ["fleet"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
