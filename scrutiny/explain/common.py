"""Small helpers shared by the explainers: option parsing and plain-JSON results."""

from __future__ import annotations

from typing import Any

import numpy as np

from scrutiny.errors import InvalidInput


def plain(value: Any) -> Any:
    """NumPy scalars to Python, recursively (results are stored as JSON)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def check_known(options: dict[str, Any], known: set[str], method: str) -> None:
    for key in options:
        if key not in known and key != "cem":
            raise InvalidInput(f"unknown {method} option; known: {sorted(known)}", field=f"options.{key}")


def int_option(o: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    v = o.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InvalidInput(f"must be an integer from {lo} to {hi}", field=f"options.{key}")
    return v


def float_option(o: dict[str, Any], key: str, default: float | None, lo: float, hi: float) -> float | None:
    v = o.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise InvalidInput(f"must be a number from {lo} to {hi}", field=f"options.{key}")
    return float(v)
