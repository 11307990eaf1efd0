"""Which failures are worth retrying: the store (or the network to it) being away, not the data."""

from __future__ import annotations


class Transient(Exception):
    """The destination is unavailable right now; the same records will be retried."""


def is_transient(exc: BaseException) -> bool:
    from sqlalchemy import exc as sa_exc

    from scrutiny.errors import StoreUnavailable

    if isinstance(exc, Transient | StoreUnavailable | OSError | TimeoutError):
        return True
    return isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.DisconnectionError | sa_exc.TimeoutError
    )
