"""Protected attributes worth monitoring, offered when fairness is configured.

A column is recommended when its name or its values say what it is: sex/gender, age,
race/ethnicity, marital status, zip/postal code. Each recommendation comes with a ready
configuration entry (groups drawn from the training values), which the user reviews: it is a
starting point, never applied silently.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from scrutiny.core.subscription import Subscription

_NAMES: dict[str, re.Pattern[str]] = {
    "sex": re.compile(r"(^|[_\W])(sex|gender)($|[_\W])|^(sex|gender)", re.I),
    "age": re.compile(r"(^|[_\W])age($|[_\W]|_?years|group|band)|^age", re.I),
    "race": re.compile(r"race|ethnic", re.I),
    "marital_status": re.compile(r"marital|married|marriage|personal_?status|civil_?status", re.I),
    "zip_code": re.compile(r"zip|postal|post_?code", re.I),
}
_VALUES: dict[str, set[str]] = {
    "sex": {"male", "female", "m", "f", "man", "woman", "men", "women", "non-binary", "nonbinary"},
    "race": {"white", "black", "asian", "hispanic", "latino", "amer-indian-eskimo", "asian-pac-islander", "other"},
    "marital_status": {
        "married",
        "single",
        "divorced",
        "widowed",
        "separated",
        "never-married",
        "married-civ-spouse",
        "married_or_divorced",
    },
}
_MONITORED_DEFAULT = {
    "sex": ["female", "f", "woman", "women"],
    "marital_status": ["single", "divorced", "widowed", "separated", "never-married"],
}
_ZIP = re.compile(r"^\d{5}(-\d{4})?$|^[A-Z]\d[A-Z] ?\d[A-Z]\d$|^\d{4,6}$", re.I)


@dataclass
class Recommendation:
    feature: str
    kind: str  # sex, age, race, marital_status, zip_code
    detected_by: str  # "name", "values" or "name and values"
    suggestion: dict[str, Any] | None  # a configuration entry, when groups can be proposed
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend(sub: Subscription) -> list[Recommendation]:
    stats = (sub.training_statistics or {}).get("features") or {}
    out = []
    for col in [*sub.layout.features, *sub.layout.extra]:
        s = stats.get(col.name) or {}
        values = [str(v).strip().lower() for v in (s.get("distinct") or {})]
        for kind in ("sex", "age", "race", "marital_status", "zip_code"):
            by_name = bool(_NAMES[kind].search(col.name))
            by_values = _by_values(kind, values, s)
            if not (by_name or by_values):
                continue
            how = "name and values" if by_name and by_values else "name" if by_name else "values"
            out.append(Recommendation(col.name, kind, how, *_suggest(kind, col.name, s)))
            break
    return out


def _by_values(kind: str, values: list[str], s: dict[str, Any]) -> bool:
    if kind in _VALUES:
        if not values:
            return False
        known = sum(v in _VALUES[kind] for v in values)
        return known >= max(2, int(0.6 * len(values))) if len(values) > 1 else False
    if kind == "zip_code":
        return len(values) >= 20 and sum(bool(_ZIP.match(v)) for v in values) >= 0.9 * len(values)
    return False  # age is recognised by its name only: many numbers look like ages


def _suggest(kind: str, name: str, s: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    distinct = [k for k in (s.get("distinct") or {})]
    if kind == "age" and s.get("type") == "numeric" and s.get("count"):
        lo, hi = s["min"], s["max"]
        cut = 25 if lo <= 25 < hi else s.get("median")
        if cut is None:
            return None, None
        cut = int(cut)
        return (
            {"feature": name, "minority": [[_n(lo), cut]], "majority": [[cut + 1, _n(hi)]], "threshold": 0.8},
            f"younger applicants ({_n(lo)} to {cut}) monitored against the others; adjust to your policy",
        )
    if kind == "race" and distinct:  # the largest group is the reference, every other one monitored
        counts = s.get("distinct") or {}
        ref_value = max(distinct, key=lambda v: counts[v])
        mon = [v for v in distinct if v != ref_value]
        if mon:
            return {"feature": name, "minority": mon, "majority": [ref_value], "threshold": 0.8}, None
    if kind in _MONITORED_DEFAULT and distinct:
        wanted = set(_MONITORED_DEFAULT[kind])
        mon = [v for v in distinct if str(v).strip().lower() in wanted]
        ref = [v for v in distinct if v not in mon]
        if mon and ref:
            return {"feature": name, "minority": mon, "majority": ref, "threshold": 0.8}, None
    if kind == "zip_code":
        return None, "choose the zip codes to monitor (for example areas with a protected population)"
    return None, "choose the monitored and the reference values"


def _n(x: Any) -> Any:
    return int(x) if float(x).is_integer() else x
