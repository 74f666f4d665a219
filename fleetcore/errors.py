"""Domain errors shared by the CLI and the API (mapped to HTTP status codes in one place)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class; `status` is the HTTP status the API answers with."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: object | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Invalid(DomainError):
    status = 422
    code = "invalid"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class ServiceUnavailable(DomainError):
    """A dependency (the database) is away or saturated: the client should retry after `retry_after_s`."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1, details: object | None = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class CliError(Exception):
    """A user mistake on the command line: printed without a traceback, exit code 2."""


class ConfigError(Exception):
    """A required setting is missing or unusable: the process stops at start-up with this message."""
