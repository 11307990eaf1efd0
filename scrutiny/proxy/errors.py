"""Which failures are worth retrying: the store (or the network to it) being away, not the data."""

from __future__ import annotations

# Connection-level errors, whether SQLAlchemy wraps them or the driver raises them itself (the
# bulk paths use the raw sqlite3 / psycopg cursors).
_TRANSIENT = {"OperationalError", "InterfaceError", "DisconnectionError", "TimeoutError"}
_DRIVERS = {"sqlalchemy", "sqlite3", "psycopg", "psycopg2", "psycopg_pool"}


class Transient(Exception):
    """The destination is unavailable right now; the same records will be retried."""


def is_transient(exc: BaseException) -> bool:
    from scrutiny.errors import StoreUnavailable

    if isinstance(exc, Transient | StoreUnavailable | OSError | TimeoutError):
        return True
    return any(c.__name__ in _TRANSIENT and c.__module__.split(".")[0] in _DRIVERS for c in type(exc).__mro__)
