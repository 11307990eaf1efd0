"""Errors that cross layers. Each carries a stable ``code`` and an HTTP status for the API.

A validation error names *where* the input is wrong (record index, row, field) so a user
can fix the one bad value in a batch of thousands.
"""

from __future__ import annotations

from typing import Any


class ScrutinyError(Exception):
    """Base class: a clear message, a stable machine-readable code and an HTTP status."""

    code = "error"
    status = 400

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = {k: v for k, v in context.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.context}


class InvalidInput(ScrutinyError):
    """Bad input: names the record (0-based index in the batch), the row (1-based) and the field."""

    code = "invalid_input"
    status = 422

    def __init__(
        self,
        message: str,
        *,
        record: int | None = None,
        row: int | None = None,
        field: str | None = None,
        **context: Any,
    ) -> None:
        where = []
        if record is not None:
            where.append(f"record {record}")
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        full = f"{', '.join(where)}: {message}" if where else message
        super().__init__(full, record=record, row=row, field=field, **context)
        self.reason = message


class NotFound(ScrutinyError):
    code = "not_found"
    status = 404


class Conflict(ScrutinyError):
    code = "conflict"
    status = 409


class PayloadTooLarge(ScrutinyError):
    code = "payload_too_large"
    status = 413


class Unauthorized(ScrutinyError):
    code = "unauthorized"
    status = 401


class Forbidden(ScrutinyError):
    code = "forbidden"
    status = 403


class StoreUnavailable(ScrutinyError):
    """The data mart cannot be reached; nothing was stored."""

    code = "store_unavailable"
    status = 503
