"""Contract fixtures: recorded request/response pairs from the engines' documented formats.

``skeleton`` reduces a JSON document to its shape (keys, nesting, scalar types) so a fake
server's answer can be compared with the documented one without comparing model numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def load(*parts: str) -> Any:
    return orjson.loads((FIXTURES.joinpath(*parts)).read_bytes())


def skeleton(value: Any) -> Any:
    """The shape of a JSON value: dict keys kept, lists reduced to the set of their items' shapes."""
    if isinstance(value, dict):
        return {k: skeleton(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        shapes: list[Any] = []
        for item in value:
            s = skeleton(item)
            if s not in shapes:
                shapes.append(s)
        return ["list", *shapes]
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return "string"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def differences(actual: Any, documented: Any, path: str = "$") -> list[str]:
    """Where ``actual`` departs from a documented example: a key missing, or a value of another
    type (every list item is checked against the example's first item). Extra keys are allowed."""
    if isinstance(documented, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {_kind(actual)}"]
        out: list[str] = []
        for key, value in documented.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            else:
                out.extend(differences(actual[key], value, f"{path}.{key}"))
        return out
    if isinstance(documented, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {_kind(actual)}"]
        if not documented or not actual:
            return []
        out = []
        for i, item in enumerate(actual):
            out.extend(differences(item, documented[0], f"{path}[{i}]"))
        return out
    if _kind(actual) != _kind(documented):
        return [f"{path}: expected a {_kind(documented)}, got {_kind(actual)} ({actual!r})"]
    return []
