"""The test NATS server with JetStream: whether it answers (and why not).

Tests that need it take the ``nats_url`` fixture and skip with the reason when it does not answer;
``.ci/run`` starts it first, so in CI they really run.
"""

from __future__ import annotations

import json
import os
import socket
from urllib.parse import urlsplit

NATS_URL = os.environ.get("SCRUTINY_TEST_NATS_URL", "nats://127.0.0.1:4222")
_state: dict[str, str | None] = {}


def nats_unavailable() -> str | None:
    """None when NATS answers with JetStream on, else the reason (shown in the skip message).
    The server greets every connection with ``INFO {json}``, which says whether JetStream is on."""
    if "reason" not in _state:
        parts = urlsplit(NATS_URL)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=3) as s:
                greeting = s.makefile("rb").readline(65536).decode("utf-8", "replace")
            info = json.loads(greeting.removeprefix("INFO ")) if greeting.startswith("INFO ") else {}
            if not info:
                _state["reason"] = f"{NATS_URL} answers but is not a NATS server"
            elif not info.get("jetstream"):
                _state["reason"] = f"NATS at {NATS_URL} runs without JetStream; start it with -js"
            else:
                _state["reason"] = None
        except OSError as exc:
            _state["reason"] = (
                f"NATS at {NATS_URL} does not answer ({exc.__class__.__name__}); start it with JetStream "
                "(see .ci/run) or set SCRUTINY_TEST_NATS_URL"
            )
    return _state["reason"]
