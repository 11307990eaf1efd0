"""Column types of the data mart, and the schemas that describe a model's inputs.

A subscription's input schema says, per field, how values are stored and checked. It can
come from a Spark ``StructType`` JSON (OpenScale's format), from training data, or be
inferred from the first payload (OpenScale's ``dynamic_schema_update``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from scrutiny.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd


class Kind(StrEnum):
    """How a column's values are stored. ``json`` holds lists and objects as JSON."""

    INT = "integer"
    FLOAT = "double"
    STR = "string"
    BOOL = "boolean"
    JSON = "json"

    @property
    def numeric(self) -> bool:
        return self in (Kind.INT, Kind.FLOAT)


_SPARK_KINDS = {
    "integer": Kind.INT,
    "int": Kind.INT,
    "long": Kind.INT,
    "bigint": Kind.INT,
    "short": Kind.INT,
    "byte": Kind.INT,
    "double": Kind.FLOAT,
    "float": Kind.FLOAT,
    "number": Kind.FLOAT,
    "string": Kind.STR,
    "str": Kind.STR,
    "timestamp": Kind.STR,
    "date": Kind.STR,
    "boolean": Kind.BOOL,
    "bool": Kind.BOOL,
    "json": Kind.JSON,
    "array": Kind.JSON,
}

# Column names become SQL identifiers; a double quote would break quoting (contract §4.3).
_BAD_NAME = re.compile(r'["\x00]')
RESERVED = frozenset(
    {"scoring_id", "scoring_timestamp", "deployment_id", "asset_revision", "prediction_probability", "response_time"}
)


def parse_kind(spec: Any) -> Kind:
    """A Spark/OpenScale type (``"integer"``, ``"decimal(10,2)"``, ``{"type": "array", ...}``) as a Kind."""
    if isinstance(spec, dict):
        return Kind.JSON
    if not isinstance(spec, str):
        raise InvalidInput(f"unknown column type {spec!r}")
    s = spec.strip().lower()
    if s.startswith("decimal"):
        return Kind.FLOAT
    if s in _SPARK_KINDS:
        return _SPARK_KINDS[s]
    raise InvalidInput(f"unknown column type {spec!r}; use integer, long, double, float, string or boolean")


def check_name(name: Any, *, what: str = "field") -> str:
    if not isinstance(name, str) or not name or _BAD_NAME.search(name) or len(name) > 120:
        raise InvalidInput(f"{what} name {name!r} is not allowed (empty, too long, or contains a double quote)")
    return name


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    categorical: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.kind.value, "categorical": self.categorical}


@dataclass(frozen=True)
class Schema:
    """Ordered, named, typed columns."""

    columns: tuple[Column, ...]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def get(self, name: str) -> Column | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    def to_list(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self.columns]

    def to_struct(self) -> dict[str, Any]:
        """OpenScale/Spark ``StructType`` JSON, with modeling roles."""
        spark = {Kind.INT: "long", Kind.FLOAT: "double", Kind.STR: "string", Kind.BOOL: "boolean", Kind.JSON: "string"}
        fields = []
        for c in self.columns:
            meta: dict[str, Any] = {"modeling_role": "feature"}
            if c.categorical:
                meta["measure"] = "discrete"
            fields.append({"name": c.name, "type": spark[c.kind], "nullable": True, "metadata": meta})
        return {"type": "struct", "fields": fields}

    @classmethod
    def from_list(cls, items: list[dict[str, Any]]) -> Schema:
        return cls(
            tuple(Column(check_name(i["name"]), parse_kind(i["type"]), bool(i.get("categorical"))) for i in items)
        )

    @classmethod
    def parse(cls, spec: Any, categorical: set[str] | None = None) -> Schema:
        """Accept a StructType JSON, a list of ``{"name", "type"}``, or a ``{name: type}`` mapping."""
        cats = categorical or set()
        if isinstance(spec, dict) and "fields" in spec:
            items = spec["fields"]
        elif isinstance(spec, dict):
            items = [{"name": k, "type": v} for k, v in spec.items()]
        elif isinstance(spec, list):
            items = spec
        else:
            raise InvalidInput("input_data_schema must be a StructType object, a list of fields or a mapping")
        cols = []
        for item in items:
            if not isinstance(item, dict) or "name" not in item or "type" not in item:
                raise InvalidInput(f"schema entry {item!r} needs 'name' and 'type'", field="input_data_schema")
            name = check_name(item["name"])
            meta = item.get("metadata") or {}
            is_cat = name in cats or bool(item.get("categorical")) or meta.get("measure") == "discrete"
            cols.append(Column(name, parse_kind(item["type"]), is_cat))
        return cls(tuple(cols))

    @classmethod
    def from_frame(cls, df: pd.DataFrame, columns: list[str], categorical: set[str] | None = None) -> Schema:
        import pandas as pd

        cats = categorical or set()
        cols = []
        for name in columns:
            dtype = df[name].dtype
            if pd.api.types.is_bool_dtype(dtype):
                kind = Kind.BOOL
            elif pd.api.types.is_integer_dtype(dtype):
                kind = Kind.INT
            elif pd.api.types.is_float_dtype(dtype):
                kind = Kind.FLOAT
            else:
                kind = Kind.STR
            cols.append(Column(check_name(name), kind, name in cats or kind in (Kind.STR, Kind.BOOL)))
        return cls(tuple(cols))


def infer_kind(values: list[Any]) -> Kind | None:
    """The narrowest kind holding every non-null value, or None when all are null."""
    types = set(map(type, values)) - {type(None)}
    if not types:
        return None
    if types <= {bool}:
        return Kind.BOOL
    if types <= {int}:
        return Kind.INT
    if types <= {int, float}:
        return Kind.FLOAT
    if types <= {str}:
        return Kind.STR
    if types <= {list, dict}:
        return Kind.JSON
    return None  # mixed: the caller reports which value does not fit
