"""What every HTTP answer of the API gets: security headers, a request-body size limit, CORS from an allow-list,
and an access log that never holds a credential.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetcore.settings import Settings

# The console's pages load only their own bundled assets and talk only to this origin (HTTP and WebSocket).
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self' ws: wss:; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's interactive docs load Swagger UI / ReDoc from jsDelivr with an inline bootstrap script.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; font-src 'self' https://fonts.gstatic.com; "
    "worker-src blob:; connect-src 'self'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
# HSTS only where the client reached us over TLS (directly, or through a proxy uvicorn trusts): one year.
HSTS = "max-age=31536000; includeSubDomains"


class GuardMiddleware:
    """Pure ASGI middleware: security headers on every HTTP answer, and 413 for bodies over `max_body`."""

    def __init__(self, app: ASGIApp, *, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(scope, send)
            return
        seen = 0
        over = False  # the streamed body passed the limit: whatever the app answers becomes a 413
        started = False

        async def limited_receive() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    over = True
                    raise _BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if over:  # the app turned the interrupted body into its own error: answer 413 instead, once
                if not started:
                    started = True
                    await self._too_large(scope, send)
                return
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *self._headers(scope)]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            if not started:
                await self._too_large(scope, send)

    def _headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        docs = scope.get("path", "").startswith(DOCS_PATHS)
        out = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", (DOCS_CSP if docs else CSP).encode()),
        ]
        if scope.get("scheme") == "https":
            out.append((b"strict-transport-security", HSTS.encode()))
        return out

    async def _too_large(self, scope: Scope, send: Send) -> None:
        body = (
            b'{"error": {"code": "too_large", "message": "request body over '
            + str(self.max_body).encode()
            + b' bytes", "details": null}}'
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                    *self._headers(scope),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


# `token=...`, `access_token=...`, `password=...` in a logged request line: the value is replaced.
_SECRET_PARAM = re.compile(r"((?:^|[?&])(?:access_token|token|password|secret)=)[^&\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """A request target with credential-bearing query parameters masked."""
    return _SECRET_PARAM.sub(r"\1[redacted]", text)


class RedactCredentials(logging.Filter):
    """On uvicorn's logs: a request line's query string never carries a credential into a log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        record.msg = redact(str(record.msg))
        return True


def install(app: FastAPI, settings: Settings) -> None:
    """Add the guard, CORS (only for the configured origins) and the access-log redaction."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(GuardMiddleware, max_body=settings.api_max_body_bytes)
    # uvicorn logs HTTP requests on "uvicorn.access" and WebSocket handshakes ('"WebSocket /path?query"
    # [accepted]') on "uvicorn.error": both lines carry the query string.
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
