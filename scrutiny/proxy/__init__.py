"""Automatic payload logging: the scoring proxy, its durable spool, and the embeddable logger.

* ``asgi``: ``POST /proxy/{subscription_id}`` (in ``scrutiny serve`` and ``scrutiny proxy``), ``/metrics``
* ``forward``: one proxied call (auth, forward byte for byte, spool, answer)
* ``spool`` / ``framing`` / ``record``: the append-only, group-fsynced spool and what it holds
* ``drain`` / ``sinks`` / ``convert`` / ``deadletter``: the background writer to the data mart
* ``targets`` / ``keys``: cached subscription and key lookups that survive a store outage
* ``metrics``: Prometheus figures; ``embed``: ASGI middleware and decorator for Python services
"""

from scrutiny.sdk.embed import PayloadLogger, PayloadLoggingMiddleware, codec_for, current_scoring_id, log_payloads

__all__ = ["PayloadLogger", "PayloadLoggingMiddleware", "codec_for", "current_scoring_id", "log_payloads"]
