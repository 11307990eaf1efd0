"""Contract fixtures: recorded request/response pairs from the engines' documented formats.

``differences`` compares a JSON document's shape (keys, nesting, scalar types) with a documented
example, so a fake server's answer can be checked without comparing model numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def load(*parts: str) -> Any:
    return orjson.loads((FIXTURES.joinpath(*parts)).read_bytes())


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


# Objects whose keys are data (deployment names in a traffic split), not fixed field names.
MAPS = frozenset({"traffic", "tags", "Environment"})


def differences(actual: Any, documented: Any, path: str = "$") -> list[str]:
    """Where ``actual`` departs from a documented example: a key missing, or a value of another
    type (every list item is checked against the example's first item). Extra keys are allowed."""
    if isinstance(documented, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {_kind(actual)}"]
        if path.rsplit(".", 1)[-1] in MAPS:
            example = next(iter(documented.values()), None)
            if example is None:
                return []
            return [d for k, v in actual.items() for d in differences(v, example, f"{path}.{k}")]
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
