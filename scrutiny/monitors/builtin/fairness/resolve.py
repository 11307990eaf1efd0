"""Check a fairness configuration against the subscription and resolve it into a ``FairnessSpec``.

Every error names the field and says what would be valid: an unknown column lists the
payload's columns, a group value absent from the training data lists the values that exist,
overlapping groups name the overlap, a threshold out of range gives both accepted forms.
"""

from __future__ import annotations

import math
from typing import Any

from scrutiny.core.schema import Column, Kind
from scrutiny.core.subscription import Subscription
from scrutiny.errors import InvalidInput
from scrutiny.monitors.builtin.fairness import binning
from scrutiny.monitors.builtin.fairness.config import FairnessConfig, attribute_thresholds, parse_config
from scrutiny.monitors.builtin.fairness.crosstab import canonical
from scrutiny.monitors.builtin.fairness.spec import AttributeSpec, FairnessSpec, OutcomeSpec

_NUMERIC_TYPES = {"integer": True, "int": True, "long": True, "float": False, "double": False, "numeric": False}


def resolve(config: FairnessConfig | dict[str, Any], sub: Subscription, *, known: Any = None) -> FairnessSpec:
    """``known(column)`` (the framework's ``KnownValues``) checks the groups of an attribute the
    training statistics do not describe (a meta column) against the values the payload holds."""
    cfg = parse_config(config)
    layout = sub.layout
    if not layout.features:
        raise InvalidInput(
            "the subscription has no payload schema yet: log a payload record (or give input_data_schema) first",
            field="features",
        )
    limits = attribute_thresholds(cfg)
    stats = (sub.training_statistics or {}).get("features") or {}
    warnings: list[str] = []
    if not stats:
        warnings.append("no training statistics: group values are not checked against the training data")
    seen: set[str] = set()
    attributes = []
    for i, a in enumerate(cfg.features):
        where = f"features[{i}]"
        if a.feature in seen:
            raise InvalidInput(f"attribute {a.feature!r} is configured twice", field=f"{where}.feature")
        seen.add(a.feature)
        column, source = _column(sub, a.feature, where)
        attr = _attribute(a.feature, a.monitored, a.reference, a.type, column, source, stats.get(a.feature), where)
        spec = attr | limits[a.feature]
        if spec.categorical and known is not None and not (stats.get(a.feature) or {}).get("distinct"):
            _check_known(spec, known, where, warnings)
        attributes.append(spec)
    outcome = _outcome(cfg, sub)
    return FairnessSpec(
        attributes=attributes,
        outcome=outcome,
        min_records=cfg.min_records,
        perturbation=cfg.perturbation.model_dump(),
        warnings=warnings,
    )


def _column(sub: Subscription, name: str, where: str) -> tuple[Column, str]:
    col = sub.layout.features.get(name)
    if col is not None:
        return col, "feature"
    col = sub.layout.extra.get(name)
    if col is not None:
        return col, "meta"
    known = [*sub.layout.features.names, *sub.layout.extra.names]
    raise InvalidInput(f"unknown column {name!r}; the payload has {known}", field=f"{where}.feature")


def _check_known(attr: AttributeSpec, known: Any, where: str, warnings: list[str]) -> None:
    seen = known(attr.name)
    if not seen:
        warnings.append(
            f"{attr.name!r} has no training statistics and no logged values yet: its groups are not checked"
        )
        return
    present = {_text(v) for v in seen}
    missing = [v for v in [*attr.monitored, *(attr.reference or [])] if _text(v) not in present]
    if missing:
        shown = sorted(present)[:20]
        raise InvalidInput(
            f"{missing} of {attr.name!r} occur neither in the training data nor in the payload; it holds {shown}",
            field=where,
        )


class _Partial:
    """An attribute spec waiting for its threshold (``spec | threshold``)."""

    def __init__(self, **kw: Any) -> None:
        self.kw = kw

    def __or__(self, threshold: float | None) -> AttributeSpec:
        return AttributeSpec(threshold=threshold, **self.kw)


def _attribute(
    name: str,
    monitored: list[Any],
    reference: list[Any] | None,
    type_hint: str | None,
    column: Column,
    source: str,
    stats: dict[str, Any] | None,
    where: str,
) -> _Partial:
    hint = (type_hint or "").lower() or None
    if hint is not None and hint != "categorical" and hint not in _NUMERIC_TYPES:
        raise InvalidInput(
            f"type {type_hint!r} is not one of categorical, integer, float, double", field=f"{where}.type"
        )
    categorical = column.categorical or column.kind in (Kind.STR, Kind.BOOL) or hint == "categorical"
    if hint in _NUMERIC_TYPES and not column.kind.numeric:
        raise InvalidInput(f"{name!r} holds {column.kind.value} values, not numbers", field=f"{where}.type")
    if hint in _NUMERIC_TYPES and column.kind.numeric:
        categorical = False
    if not monitored:
        raise InvalidInput(f"the monitored group of {name!r} is empty", field=f"{where}.minority")
    if reference is not None and not reference:
        raise InvalidInput(
            f"the reference group of {name!r} is empty (omit it to mean every other value)", field=f"{where}.majority"
        )
    if categorical:
        mon = _values(monitored, column, f"{where}.minority")
        ref = None if reference is None else _values(reference, column, f"{where}.majority")
        _check_present(name, [*mon, *(ref or [])], stats, where)
        both = _overlap_values(mon, ref)
        if both:
            raise InvalidInput(f"{both} are in both the monitored and the reference group of {name!r}", field=where)
        return _Partial(name=name, categorical=True, monitored=mon, reference=ref, source=source)
    integer = _NUMERIC_TYPES.get(hint or "", column.kind is Kind.INT)
    mon_r = _ranges(monitored, integer, f"{where}.minority", name)
    ref_r = None if reference is None else _ranges(reference, integer, f"{where}.majority", name)
    _check_overlaps(name, mon_r, ref_r, integer, where)
    _check_in_training(name, [*mon_r, *(ref_r or [])], stats, where)
    edges = binning.numeric_edges([*mon_r, *(ref_r or [])], integer=integer, stats=_numeric(stats))
    return _Partial(
        name=name,
        categorical=False,
        monitored=mon_r,
        reference=ref_r,
        integer=integer,
        source=source,
        edges=[float(e) for e in edges],
    )


def _values(items: list[Any], column: Column, where: str) -> list[Any]:
    out: list[Any] = []
    for v in items:
        if isinstance(v, (list, dict)):
            raise InvalidInput(f"{column.name!r} is categorical: list its values, not ranges ({v!r})", field=where)
        v = canonical(v)
        if column.kind is Kind.STR and not isinstance(v, str):
            raise InvalidInput(f"{column.name!r} holds strings; {v!r} is not one", field=where)
        if column.kind is Kind.BOOL and not isinstance(v, bool):
            raise InvalidInput(f"{column.name!r} holds true/false; {v!r} is not one", field=where)
        if column.kind.numeric and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise InvalidInput(f"{column.name!r} holds numbers; {v!r} is not one", field=where)
        if v in out:
            raise InvalidInput(f"value {v!r} is listed twice", field=where)
        out.append(v)
    return out


def _check_present(name: str, values: list[Any], stats: dict[str, Any] | None, where: str) -> None:
    if not stats:
        return
    distinct = stats.get("distinct")
    if not isinstance(distinct, dict):
        return
    # stored statistics went through JSON, which turned every key into text
    known = {_text(k) for k in distinct}
    missing = [v for v in values if _text(v) not in known]
    if missing:
        shown = sorted(known, key=str)[:20]
        raise InvalidInput(
            f"{missing} of {name!r} do not occur in the training data; its values are {shown}"
            + (" …" if len(known) > 20 else ""),
            field=where,
        )


def _text(v: Any) -> str:
    v = canonical(v)
    if isinstance(v, str):
        try:  # a number written as JSON text ("1.0" for the value 1)
            return str(canonical(float(v)))
        except ValueError:
            return v
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _ranges(items: list[Any], integer: bool, where: str, name: str) -> list[list[float]]:
    out: list[list[float]] = []
    for item in items:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = [item, item]  # a single number is the range [v, v]
        if (
            not isinstance(item, (list, tuple))
            or len(item) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in item)
        ):
            raise InvalidInput(f"{name!r} is numeric: give closed ranges [lo, hi], not {item!r}", field=where)
        lo, hi = float(item[0]), float(item[1])
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InvalidInput(f"range {list(item)} must have finite ends", field=where)
        if lo > hi:
            raise InvalidInput(f"range {list(item)} has its lower end above its upper end", field=where)
        a, b = binning.range_edges(lo, hi, integer)
        if a >= b:
            raise InvalidInput(f"range {list(item)} of the integer attribute {name!r} holds no integer", field=where)
        out.append([canonical(lo), canonical(hi)])
    return out


def _check_overlaps(
    name: str, mon: list[list[float]], ref: list[list[float]] | None, integer: bool, where: str
) -> None:
    groups = [("monitored", r) for r in mon] + [("reference", r) for r in ref or []]
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            (gi, ri), (gj, rj) = groups[i], groups[j]
            a1, b1 = binning.range_edges(ri[0], ri[1], integer)
            a2, b2 = binning.range_edges(rj[0], rj[1], integer)
            if a1 < b2 and a2 < b1:
                what = "overlap" if gi != gj else f"overlap inside the {gi} group"
                raise InvalidInput(
                    f"ranges {ri} and {rj} of {name!r} {what}: closed ranges that touch share their end value",
                    field=where,
                )


def _check_in_training(name: str, ranges: list[list[float]], stats: dict[str, Any] | None, where: str) -> None:
    s = _numeric(stats)
    if not s:
        return
    tmin, tmax = float(s["min"]), float(s["max"])
    for lo, hi in ranges:
        if hi < tmin or lo > tmax:
            raise InvalidInput(
                f"range [{lo}, {hi}] of {name!r} holds no training value; the training data spans {canonical(tmin)} to {canonical(tmax)}",
                field=where,
            )


def _numeric(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    if stats and stats.get("type") == "numeric" and stats.get("count"):
        return stats
    return None


def _overlap_values(mon: list[Any], ref: list[Any] | None) -> list[Any]:
    if ref is None:
        return []
    r = {(type(v) is bool, v) for v in ref}
    return [v for v in mon if (type(v) is bool, v) in r]


def _outcome(cfg: FairnessConfig, sub: Subscription) -> OutcomeSpec:
    layout = sub.layout
    column = cfg.class_label or layout.prediction_column
    if column == "prediction" and layout.prediction_column != "prediction" and "prediction" not in layout.extra:
        column = layout.prediction_column
    if column != layout.prediction_column and column not in layout.extra:
        raise InvalidInput(
            f"class_label {column!r} is not an output column; use {layout.prediction_column!r}"
            + (f" or one of {layout.extra.names}" if layout.extra.names else ""),
            field="class_label",
        )
    fav, unfav = cfg.favourable_class, cfg.unfavourable_class
    if not sub.problem_type.classification:
        f = _ranges(fav, False, "favourable_class", "the prediction")
        u = None if unfav is None else _ranges(unfav, False, "unfavourable_class", "the prediction")
        for r1 in f:
            for r2 in u or []:
                if r1[0] <= r2[1] and r2[0] <= r1[1]:
                    raise InvalidInput(
                        f"favourable range {r1} and unfavourable range {r2} overlap", field="unfavourable_class"
                    )
        return OutcomeSpec(column, True, f, u)
    labels = layout.labels if column == layout.prediction_column else None
    f = _labels(fav, labels, "favourable_class")
    u = None if unfav is None else _labels(unfav, labels, "unfavourable_class")
    both = _overlap_values(f, u)
    if both:
        raise InvalidInput(f"{both} are both favourable and unfavourable", field="unfavourable_class")
    return OutcomeSpec(column, False, f, u)


def _labels(items: list[Any], labels: list[Any] | None, where: str) -> list[Any]:
    out = []
    for v in items:
        if isinstance(v, (list, dict)):
            raise InvalidInput(f"a classification outcome is a label, not {v!r}", field=where)
        v = canonical(v)
        if labels is not None:
            match = [lab for lab in labels if canonical(lab) == v and type(canonical(lab)) is type(v)]
            if not match:
                # "1" for the label 1 (or the reverse): accept the label whose text matches
                match = [lab for lab in labels if str(canonical(lab)) == str(v)]
            if not match:
                raise InvalidInput(f"{v!r} is not a label of this model; its labels are {labels}", field=where)
            v = canonical(match[0])
        if v in out:
            raise InvalidInput(f"label {v!r} is listed twice", field=where)
        out.append(v)
    return out
