"""The common scoring format: ``{"fields": [...], "values": [[...], ...]}`` in both directions.

Every engine adapter converts its native request and response to and from these two
types; the payload logger, the monitors and the explainers only ever see them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from scrutiny.errors import InvalidInput


@dataclass
class Table:
    """Named columns and row-major values; the shape shared by requests, responses and meta."""

    fields: list[str]
    values: list[list[Any]]

    def __len__(self) -> int:
        return len(self.values)

    def column(self, name: str) -> list[Any]:
        i = self.fields.index(name)
        return [row[i] for row in self.values]

    def to_dict(self) -> dict[str, Any]:
        return {"fields": list(self.fields), "values": self.values}

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.fields, row, strict=False)) for row in self.values]

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], fields: list[str] | None = None) -> Table:
        names = list(fields) if fields is not None else (list(records[0]) if records else [])
        return cls(names, [[r.get(f) for f in names] for r in records])

    @classmethod
    def from_columns(cls, columns: dict[str, list[Any]]) -> Table:
        names = list(columns)
        return cls(names, [list(row) for row in zip(*columns.values(), strict=True)]) if names else cls([], [])


@dataclass
class ScoringRequest(Table):
    """Input rows; ``meta`` holds non-feature columns (transaction ids, protected attributes)."""

    meta: Table | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.meta is not None:
            out["meta"] = self.meta.to_dict()
        return out

    def slice(self, start: int, stop: int) -> ScoringRequest:
        meta = Table(self.meta.fields, self.meta.values[start:stop]) if self.meta is not None else None
        return ScoringRequest(self.fields, self.values[start:stop], meta)


@dataclass
class ScoringResponse(Table):
    """Output rows, one per input row and in the same order.

    ``labels`` is what the engine said its class order was; it is kept for information only and
    is never trusted for the probability order (OpenScale contract §2.4).
    """

    labels: list[Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.labels is not None:
            out["labels"] = self.labels
        return out

    @staticmethod
    def concat(parts: list[ScoringResponse]) -> ScoringResponse:
        if not parts:
            return ScoringResponse([], [])
        first = parts[0]
        values: list[list[Any]] = []
        for p in parts:
            if p.fields == first.fields:
                values.extend(p.values)
            else:  # same columns in another order: realign by name
                index = [p.fields.index(f) for f in first.fields]
                values.extend([row[i] for i in index] for row in p.values)
        return ScoringResponse(list(first.fields), values, first.labels)


def decode_json_string(value: Any, *, what: str = "response") -> Any:
    """Decode a JSON document that may arrive as a string, or a string inside a string (Azure)."""
    for _ in range(3):
        if not isinstance(value, (str, bytes)):
            return value
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"{what} is a string that is not valid JSON: {exc}") from None
    return value


def parse_table(obj: Any, *, what: str, record: int | None = None) -> Table:
    """Read ``{"fields", "values"}`` leniently: a flat ``values`` list is one row; WML v4 wrappers are unwrapped."""
    obj = decode_json_string(obj, what=what)
    if isinstance(obj, dict) and "fields" not in obj:
        for wrapper in ("input_data", "predictions"):
            inner = obj.get(wrapper)
            if isinstance(inner, list) and len(inner) == 1 and isinstance(inner[0], dict):
                obj = inner[0]
                break
    if not isinstance(obj, dict):
        raise InvalidInput(f"{what} must be an object with 'fields' and 'values'", record=record, field=what)
    fields, values = obj.get("fields"), obj.get("values")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise InvalidInput(f"{what}.fields must be a list of column names", record=record, field=f"{what}.fields")
    if not isinstance(values, list):
        raise InvalidInput(f"{what}.values must be a list of rows", record=record, field=f"{what}.values")
    if values and not isinstance(values[0], list):
        values = [values]  # a single flat row
    for r, row in enumerate(values, start=1):
        if not isinstance(row, list):
            raise InvalidInput(f"{what} row is not a list", record=record, row=r, field=f"{what}.values")
        if len(row) != len(fields):
            raise InvalidInput(
                f"{what} row has {len(row)} values for {len(fields)} fields",
                record=record,
                row=r,
                field=f"{what}.values",
            )
    return Table(list(fields), values)


def parse_scoring_request(obj: Any, *, record: int | None = None) -> ScoringRequest:
    t = parse_table(obj, what="request", record=record)
    meta = None
    if isinstance(obj, dict) and obj.get("meta") is not None:
        m = parse_table(obj["meta"], what="request.meta", record=record)
        if len(m) != len(t):
            raise InvalidInput(
                f"request.meta has {len(m)} rows for {len(t)} request rows", record=record, field="request.meta"
            )
        meta = m
    return ScoringRequest(t.fields, t.values, meta)


def parse_scoring_response(obj: Any, *, record: int | None = None) -> ScoringResponse:
    obj = decode_json_string(obj, what="response")
    t = parse_table(obj, what="response", record=record)
    labels = obj.get("labels") if isinstance(obj, dict) else None
    return ScoringResponse(t.fields, t.values, labels if isinstance(labels, list) else None)
