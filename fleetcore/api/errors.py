"""One error envelope for the API: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleetcore.errors import DomainError, ServiceUnavailable

log = logging.getLogger(__name__)

# A PostgreSQL restart takes a few seconds (measured 2-22 s); clients back off at least this long.
RETRY_AFTER_S = 2


class ErrorBody(BaseModel):
    code: str = Field(description="invalid, not_found, conflict, unauthorized, forbidden")
    message: str
    details: Any = Field(default=None, description="e.g. {'rule': 'min_age', 'failed_rules': [...]}")


class ErrorEnvelope(BaseModel):
    """The API's one error shape."""

    error: ErrorBody


# Declared on every router (its `responses=`), so the OpenAPI document names every error a route can answer.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "missing or invalid token"},
    403: {"model": ErrorEnvelope, "description": "role not allowed on this route"},
    404: {"model": ErrorEnvelope, "description": "unknown record"},
    409: {"model": ErrorEnvelope, "description": "state, availability or concurrency conflict"},
    422: {"model": ErrorEnvelope, "description": "invalid input or a failed qualification rule"},
    503: {
        "model": ErrorEnvelope,
        "description": "database unavailable; retry after the Retry-After header's seconds",
    },
}


def envelope(
    status: int, code: str, message: str, details: object = None, headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "details": details}},
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, ServiceUnavailable) else None
        return envelope(exc.status, exc.code, exc.message, exc.details, headers=headers)

    # The database is away (restart, network) or the pool could not hand out a connection in time: the request
    # may succeed if retried, so 503 with Retry-After instead of a 500.
    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return envelope(
            503,
            "unavailable",
            "the database is unavailable; retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        first: dict[str, Any] = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return envelope(422, "invalid", f"{where}: {first['msg']}" if where else first["msg"], errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            409: "conflict",
        }
        return envelope(
            exc.status_code,
            codes.get(exc.status_code, "error"),
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(psycopg.errors.ExclusionViolation)
    async def _exclusion(request: Request, exc: psycopg.Error) -> JSONResponse:
        return envelope(409, "conflict", "the request overlaps an existing booking", _diag(exc))

    @app.exception_handler(psycopg.errors.UniqueViolation)
    async def _unique(request: Request, exc: psycopg.Error) -> JSONResponse:
        return envelope(409, "conflict", "a record with the same key already exists", _diag(exc))

    @app.exception_handler(psycopg.errors.ForeignKeyViolation)
    async def _fk(request: Request, exc: psycopg.Error) -> JSONResponse:
        return envelope(422, "invalid", "a referenced record does not exist", _diag(exc))

    @app.exception_handler(psycopg.errors.CheckViolation)
    async def _check(request: Request, exc: psycopg.Error) -> JSONResponse:
        return envelope(422, "invalid", "a value is outside its allowed range", _diag(exc))

    @app.exception_handler(psycopg.errors.DataError)
    async def _data(request: Request, exc: psycopg.Error) -> JSONResponse:
        return envelope(422, "invalid", "a value has the wrong form", _diag(exc))

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return envelope(500, "internal", "internal error; it has been logged")


def _diag(exc: psycopg.Error) -> dict:
    d = exc.diag
    return {"constraint": d.constraint_name, "detail": d.message_detail}
