"""Explanations from the Python client: ``subscription.explain(scoring_id)``.

The server answers ``201`` with the finished explanation when it is fast (a LIME explanation
is one scoring call) and ``202`` when it is still running; ``explain(wait=True)`` hides the
difference and returns the finished explanation, or raises ``ScrutinyAPIError`` when the
explanation failed (its stored id is in ``error.details["explanation_id"]``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from scrutiny.sdk.client import Client


def explain(
    client: Client,
    subscription_id: str,
    scoring_id: str | None = None,
    method: str = "lime",
    *,
    record: Any = None,
    options: dict[str, Any] | None = None,
    wait: bool = True,
    timeout: float = 300.0,
    poll_interval: float = 0.2,
) -> dict[str, Any]:
    """Explain a logged transaction (``scoring_id``, with or without its ``-n`` row suffix) or an
    inline ``record`` (``{"fields", "values"}``, a mapping of feature to value, or a pandas Series).
    ``wait=False`` returns at once with ``{"id", "status", "location"}`` unless it already finished."""
    from scrutiny.sdk.client import ScrutinyAPIError

    body: dict[str, Any] = {"method": method}
    if scoring_id is not None:
        body["scoring_id"] = scoring_id
    if record is not None:
        body["record"] = _record(record)
    if options:
        body["options"] = options
    path = f"/v1/subscriptions/{subscription_id}/explanations"
    r = client.request(
        "POST",
        path,
        params={"wait": min(timeout, 120.0) if wait else 0},
        content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
        headers={"Content-Type": "application/json"},
    )
    data: dict[str, Any] = r.json()
    if r.status_code == 201 or not wait:
        return data
    location = data["location"]
    deadline = time.monotonic() + timeout
    while data.get("status") == "in_progress":
        if time.monotonic() > deadline:
            raise TimeoutError(f"explanation {data['id']} still running after {timeout} s; poll {location}")
        time.sleep(poll_interval)
        data = client.get(location)
    if data.get("status") == "error":
        err = dict(data.get("error") or {})
        status = int(err.pop("http_status", 502))
        raise ScrutinyAPIError(status, {"error": {**err, "explanation_id": data["id"], "location": location}})
    return data


def _record(record: Any) -> dict[str, Any]:
    if hasattr(record, "to_dict") and hasattr(record, "index"):  # a pandas Series
        record = record.to_dict()
    if isinstance(record, Mapping) and "fields" not in record:
        return {"fields": [str(k) for k in record], "values": [list(record.values())]}
    return dict(record)
