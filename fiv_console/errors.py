"""Domain errors: raised by domain code, turned into HTTP answers or CLI messages only at the edges."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of the errors a person can act on; `code` is the API's error code."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidInput(DomainError):
    code = "VALIDATION_ERROR"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Conflict(DomainError):
    code = "CONFLICT"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class Unavailable(DomainError):
    """A dependency (the database) cannot be reached in time; the caller should retry later."""

    code = "UNAVAILABLE"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class RateLimited(DomainError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
