"""Contrastive explanations of a classification: pertinent positive and pertinent negative.

Both are relative to the training base values: the median of a numeric feature, the mode of a
categorical one (OpenScale contract §7.5).

* Pertinent positive (PP): how far each feature can move toward its base value while the
  prediction stays the same. The features that cannot reach their base value form the minimal
  set of values that still supports the outcome. It always exists (at worst, the record).
* Pertinent negative (PN): the smallest move of features away from their base values (within
  the training range) that changes the prediction, reported per feature with the value it
  moved to, and the new class. When no such move exists, the result says so and why.

OpenScale spends 201 single-purpose calls per explanation. Here each search proceeds in rounds,
and every round scores all of its candidate points (a grid of moves for every feature, chains
of cumulative moves) in one call shared by both searches, so an explanation takes a handful of
calls (``max_calls``, default 10). Every reported point was scored; when the call or time budget
runs out the best point found so far is reported with ``complete: false``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from scrutiny.errors import InvalidInput
from scrutiny.explain.common import check_known, float_option, int_option, plain
from scrutiny.explain.features import CategoricalFeature, FeatureSpace, NumericFeature, _same
from scrutiny.explain.scoring import Scored, ScoresRows

Row = list[Any]


@dataclass(frozen=True)
class ContrastiveOptions:
    max_calls: int = 10
    steps: int = 20  # grid resolution of a numeric move (fractions 1/steps ... 1)
    time_budget_s: float = 60.0
    alternatives: int = 5  # other single-feature pertinent negatives to report

    @classmethod
    def parse(cls, options: dict[str, Any] | None) -> ContrastiveOptions:
        o = dict(options or {})
        known = {"max_calls", "steps", "time_budget_s", "alternatives"}
        check_known(o, known, "contrastive")
        return cls(
            max_calls=int_option(o, "max_calls", cls.max_calls, 2, 100),
            steps=int_option(o, "steps", cls.steps, 2, 200),
            time_budget_s=float_option(o, "time_budget_s", cls.time_budget_s, 0.01, 86_400.0) or cls.time_budget_s,
            alternatives=int_option(o, "alternatives", cls.alternatives, 0, 50),
        )


# -- values ---------------------------------------------------------------------------------
def decimals(feature: NumericFeature) -> int:
    """One precision per feature for every moved value, so PP and PN report alike."""
    if feature.kind.value == "integer":
        return 0
    span = feature.maximum - feature.minimum
    return 4 if span <= 0 else int(min(10, max(0, 4 - math.ceil(math.log10(span)))))


def snap(feature: NumericFeature, value: float) -> Any:
    d = decimals(feature)
    return round(value) if feature.kind.value == "integer" else round(float(value), d)


@dataclass
class Move:
    """A candidate change: feature ``j`` set to ``value``."""

    j: int
    value: Any
    cost: float  # normalised size: |Δ| / training range for numbers, 1 for a category


@dataclass
class Outcome:
    """The scores of one search's rows."""

    classes: np.ndarray  # class index per row (-1: not a label)
    labels: np.ndarray  # predicted label per row
    p_origin: np.ndarray  # probability of the record's class per row
    probability: np.ndarray | None
    same: np.ndarray  # the row keeps the record's class

    def kept(self, i: int) -> bool:
        return bool(self.same[i])

    def p_new(self, i: int) -> float | None:
        """Probability of the class row ``i`` moved to."""
        if self.probability is None or self.classes[i] < 0:
            return None
        return float(self.probability[i, self.classes[i]])


class Context:
    def __init__(self, space: FeatureSpace, record: Row, options: ContrastiveOptions) -> None:
        self.space = space
        self.record = list(record)
        self.base = space.base_values()
        for j, f in enumerate(space.features):  # the base value at the feature's precision
            if isinstance(f, NumericFeature):
                self.base[j] = snap(f, f.median)
        self.options = options
        self.origin_class = -1
        self.origin_label: Any = None
        self.origin_p = 1.0
        self.base_keeps = False  # the all-base point already has the record's class
        self.base_p = 0.0

    def at_base(self, j: int) -> bool:
        return _same(self.record[j], self.base[j])

    def point(self, moves: list[Move] | dict[int, Any], start: Row | None = None) -> Row:
        row = list(start if start is not None else self.record)
        items = moves.items() if isinstance(moves, dict) else ((m.j, m.value) for m in moves)
        for j, v in items:
            row[j] = v
        return row

    def toward_base(self, j: int, t: float) -> Any:
        f = self.space.features[j]
        if isinstance(f, NumericFeature):
            x = float(self.record[j])
            return self.base[j] if t >= 1 else snap(f, x + t * (float(self.base[j]) - x))
        return self.base[j] if t >= 1 else self.record[j]

    def cost(self, j: int, value: Any) -> float:
        f = self.space.features[j]
        if isinstance(f, NumericFeature):
            span = f.maximum - f.minimum
            return abs(float(value) - float(self.record[j])) / span if span > 0 else 1.0
        return 1.0

    def outcome(self, scored: Scored, start: int, stop: int) -> Outcome:
        classes = (
            scored.classes[start:stop] if scored.classes is not None else np.full(stop - start, -1, dtype=np.int64)
        )
        labels = scored.prediction[start:stop]
        same = np.array([_same(v, self.origin_label) for v in labels], dtype=bool)
        if scored.probability is not None and self.origin_class >= 0:
            p = scored.probability[start:stop, self.origin_class]
        else:
            p = same.astype(np.float64)
        prob = scored.probability[start:stop] if scored.probability is not None else None
        return Outcome(classes, labels, p, prob, same)

    def present(self, j: int, value: Any) -> Any:
        f = self.space.features[j]
        if isinstance(f, NumericFeature) and not isinstance(value, bool):
            return snap(f, float(value)) if f.kind.value != "integer" else round(float(value))
        return value


# -- pertinent positive ---------------------------------------------------------------------
class PertinentPositive:
    """Move features toward their base values, least important first, while the class holds."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.point = list(ctx.record)
        self.p = 1.0
        self.remaining = [j for j in range(len(ctx.space)) if not ctx.at_base(j)]
        self.single: dict[int, float] = {}  # p(record's class) with feature j alone at its base value
        self.single_kept: dict[int, bool] = {}
        self.rows: list[tuple[int, float]] = []  # (prefix length k, fraction t) of each proposed row
        self.round = 0
        self.done = not self.remaining

    def propose(self) -> list[Row]:
        if self.done:
            return []
        ctx = self.ctx
        if self.round == 0:
            return [ctx.point({j: ctx.base[j]}) for j in self.remaining]
        rows: list[Row] = []
        self.rows = []
        prefix = list(self.point)
        steps = ctx.options.steps
        for k, j in enumerate(self.remaining):
            seen: set[Any] = set()
            levels = [i / steps for i in range(1, steps + 1)] if not ctx.space.features[j].categorical else [1.0]
            for t in levels:
                v = ctx.toward_base(j, t)
                key = repr(v)
                if key in seen or _same(v, ctx.record[j]):
                    continue
                seen.add(key)
                rows.append(ctx.point({j: v}, prefix))
                self.rows.append((k, t))
            prefix[j] = ctx.base[j]
        return rows

    def observe(self, out: Outcome) -> None:
        ctx = self.ctx
        if self.round == 0:
            self.p = ctx.origin_p
            for i, j in enumerate(self.remaining):
                self.single[j] = float(out.p_origin[i])
                self.single_kept[j] = out.kept(i)
            # Least important first: features whose move to base keeps the class most firmly.
            self.remaining.sort(key=lambda j: (not self.single_kept[j], -self.single[j]))
            self.round = 1
            if ctx.base_keeps:  # every feature can reach its base value: that point was scored
                self.point, self.p = list(ctx.base), ctx.base_p
                self.remaining, self.done = [], True
            return
        self.round += 1
        by_k: dict[int, list[tuple[float, int]]] = {}
        for i, (k, t) in enumerate(self.rows):
            by_k.setdefault(k, []).append((t, i))
        accepted = 0
        for k in range(len(self.remaining)):
            full = [i for t, i in by_k.get(k, []) if t >= 1.0]
            if not full or not out.kept(full[0]):
                break
            accepted = k + 1
        point = list(self.point)
        for j in self.remaining[:accepted]:
            point[j] = ctx.base[j]
        if accepted:
            last = next(i for t, i in by_k[accepted - 1] if t >= 1.0)
            self.p = float(out.p_origin[last])
        if accepted < len(self.remaining):
            j = self.remaining[accepted]
            best = None
            for t, i in sorted(by_k.get(accepted, [])):
                if not out.kept(i):
                    break
                best = (t, i)
            if best is not None:
                point[j] = ctx.toward_base(j, best[0])
                self.p = float(out.p_origin[best[1]])
            self.remaining = self.remaining[accepted + 1 :]
        else:
            self.remaining = []
        self.point = point
        self.done = not self.remaining

    def result(self) -> dict[str, Any]:
        ctx = self.ctx
        features = []
        for j, f in enumerate(ctx.space.features):
            if _same(self.point[j], ctx.base[j]):
                continue
            features.append(
                {
                    "feature": f.name,
                    "value": ctx.present(j, ctx.record[j]),
                    "moved_to": ctx.present(j, self.point[j]),
                    "base": ctx.present(j, ctx.base[j]),
                }
            )
        note = None
        if ctx.base_keeps:
            note = (
                f"the base point (every feature at its median or mode) is itself predicted {ctx.origin_label!r}, "
                "so no feature value of this record is needed to support the prediction"
            )
        return {
            "features": features,
            "note": note,
            "prediction": ctx.origin_label,
            "probability": self.p,
            "record": {
                f.name: ctx.present(j, v) for j, (f, v) in enumerate(zip(ctx.space.features, self.point, strict=True))
            },
            "complete": self.done,
        }


# -- pertinent negative ---------------------------------------------------------------------
class PertinentNegative:
    """Find the smallest move away from the base values that changes the class."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.phase = "single"
        self.moves: list[Move] = []  # the move behind each proposed row
        self.sets: list[list[Move]] = []  # the move set behind each proposed row (combined phases)
        self.best: tuple[list[Move], Any, float, float] | None = None  # moves, class label, p(new), cost
        self.alternatives: list[dict[str, Any]] = []
        self.harm: list[Move] = []
        self.chosen: list[Move] = []
        self.room = False
        self.done = False
        self.reason: str | None = None
        self.single_moves = self._single_moves()
        if not self.room:
            self.done = True
            self.reason = "no feature can move away from its base value within its training range"

    def _single_moves(self) -> list[Move]:
        ctx = self.ctx
        steps = ctx.options.steps
        out: list[Move] = []
        for j, f in enumerate(ctx.space.features):
            x = ctx.record[j]
            if isinstance(f, NumericFeature):
                b = float(ctx.base[j])
                bounds = [f.maximum] if float(x) > b else [f.minimum] if float(x) < b else [f.maximum, f.minimum]
                for bound in bounds:
                    seen: set[Any] = set()
                    for i in range(1, steps + 1):
                        v = snap(f, float(x) + (i / steps) * (bound - float(x)))
                        if _same(v, x) or v in seen:
                            continue
                        seen.add(v)
                        out.append(Move(j, v, ctx.cost(j, v)))
            else:
                assert isinstance(f, CategoricalFeature)
                for v in f.values:
                    if _same(v, x) or (_same(v, ctx.base[j]) and not ctx.at_base(j)):
                        continue
                    out.append(Move(j, v, 1.0))
        self.room = bool(out)
        return out

    def propose(self) -> list[Row]:
        if self.done:
            return []
        ctx = self.ctx
        if self.phase == "single":
            self.moves = self.single_moves
            return [ctx.point([m]) for m in self.moves]
        if self.phase == "refine":
            return [ctx.point([m]) for m in self.moves]
        if self.phase == "chain":
            self.sets = [self.harm[: k + 1] for k in range(len(self.harm))]
            return [ctx.point(s) for s in self.sets]
        # phase "shrink": drop one move at a time, or scale the numeric moves down
        self.sets = [[m for m in self.chosen if m is not drop] for drop in self.chosen] if len(self.chosen) > 1 else []
        steps = ctx.options.steps
        for i in range(1, steps):
            scaled = [self._scaled(m, i / steps) for m in self.chosen]
            if any(not _same(a.value, b.value) for a, b in zip(scaled, self.chosen, strict=True)):
                self.sets.append(scaled)
        return [ctx.point(s) for s in self.sets]

    def _scaled(self, m: Move, s: float) -> Move:
        f = self.ctx.space.features[m.j]
        if not isinstance(f, NumericFeature):
            return m
        x = float(self.ctx.record[m.j])
        v = snap(f, x + s * (float(m.value) - x))
        return Move(m.j, v, self.ctx.cost(m.j, v))

    def _consider(self, moves: list[Move], out: Outcome, i: int) -> None:
        cost = sum(m.cost for m in moves)
        label = out.labels[i]
        p_new = out.p_new(i) or 0.0
        key = (len(moves), cost, -p_new)
        if self.best is None or key < (len(self.best[0]), self.best[3], -self.best[2]):
            self.best = (list(moves), label, p_new, cost)

    def observe(self, out: Outcome) -> None:
        ctx = self.ctx
        if self.phase in ("single", "refine"):
            flips: dict[tuple[int, int], tuple[Move, int]] = {}  # (feature, direction) -> smallest flip
            for i, m in enumerate(self.moves):
                if out.kept(i):
                    continue
                direction = _direction(ctx, m)
                cur = flips.get((m.j, direction))
                if cur is None or m.cost < cur[0].cost:
                    flips[(m.j, direction)] = (m, i)
            for m, i in flips.values():
                self._consider([m], out, i)
                self._alternative(m, out, i)
            if self.phase == "single":
                self._single = (list(self.moves), out)
                refine = self._refinements(flips)
                if refine:
                    self.moves = refine
                    self.phase = "refine"
                    return
                if flips:
                    self.done = True
                    return
                self.harm = self._harm_order(out)
                if not self.harm:
                    self.done = True
                    self.reason = self._no_pn_reason(alone_only=True)
                    return
                self.phase = "chain"
                return
            self.done = True
            return
        if self.phase == "chain":
            for i, s in enumerate(self.sets):
                if not out.kept(i):
                    self.chosen = s
                    self._consider(s, out, i)
                    self.phase = "shrink"
                    return
            self.done = True
            self.reason = self._no_pn_reason(alone_only=False)
            return
        # shrink
        drops = [(float(out.p_origin[i]), i) for i in range(len(self.sets)) if not out.kept(i)]
        for _, i in drops:
            self._consider(self.sets[i], out, i)
        n_drop = len(self.chosen) if len(self.chosen) > 1 else 0
        dropped = [(p, i) for p, i in drops if i < n_drop]
        if dropped:
            self.chosen = self.sets[min(dropped)[1]]
            return
        self.done = True

    def _refinements(self, flips: dict[tuple[int, int], tuple[Move, int]]) -> list[Move]:
        """Finer moves between the last kept and the first flipping grid value of each numeric flip."""
        ctx = self.ctx
        moves = self.moves
        out: list[Move] = []
        best = sorted(flips.values(), key=lambda mi: mi[0].cost)[: max(3, ctx.options.alternatives)]
        for m, _ in best:
            f = ctx.space.features[m.j]
            if not isinstance(f, NumericFeature):
                continue
            direction = _direction(ctx, m)
            below = [o.value for o in moves if o.j == m.j and _direction(ctx, o) == direction and o.cost < m.cost]
            x = float(ctx.record[m.j])
            start = max(below, key=lambda v: abs(float(v) - x)) if below else x
            seen: set[Any] = {start, m.value}
            steps = ctx.options.steps
            for i in range(1, steps):
                v = snap(f, float(start) + (i / steps) * (float(m.value) - float(start)))
                if v in seen or _same(v, ctx.record[m.j]):
                    continue
                seen.add(v)
                out.append(Move(m.j, v, ctx.cost(m.j, v)))
        return out

    def _alternative(self, m: Move, out: Outcome, i: int) -> None:
        ctx = self.ctx
        p_new = out.p_new(i)
        entry = {
            "feature": ctx.space.features[m.j].name,
            "value": ctx.present(m.j, ctx.record[m.j]),
            "moved_to": ctx.present(m.j, m.value),
            "base": ctx.present(m.j, ctx.base[m.j]),
            "prediction": out.labels[i],
            "probability": p_new,
            "_cost": m.cost,
            "_key": (m.j, _direction(ctx, m)),
        }
        self.alternatives = [a for a in self.alternatives if a["_key"] != entry["_key"] or a["_cost"] <= m.cost]
        if not any(a["_key"] == entry["_key"] for a in self.alternatives):
            self.alternatives.append(entry)

    def _harm_order(self, out: Outcome) -> list[Move]:
        """Per feature, the single move that lowers the record's class probability most, if any."""
        worst: dict[int, tuple[float, Move]] = {}
        for i, m in enumerate(self.moves):
            p = float(out.p_origin[i])
            if p < self.ctx.origin_p - 1e-12 and (m.j not in worst or p < worst[m.j][0]):
                worst[m.j] = (p, m)
        return [m for _, m in sorted(worst.values(), key=lambda pm: (pm[0], pm[1].j))]

    def _no_pn_reason(self, *, alone_only: bool) -> str:
        c = self.ctx.origin_label
        if alone_only:
            return (
                f"moving each feature away from its base value, up to the edge of its training range, "
                f"did not change the prediction {c!r}, and no move even lowered its probability"
            )
        return (
            f"moving each feature away from its base value (alone, up to the edge of its training range, "
            f"and then together in order of effect) did not change the prediction {c!r}"
        )

    def result(self) -> dict[str, Any]:
        ctx = self.ctx
        alternatives = sorted(self.alternatives, key=lambda a: a["_cost"])
        chosen = None
        if self.best is not None and len(self.best[0]) == 1:
            chosen = (self.best[0][0].j, _direction(ctx, self.best[0][0]))
        alts = [{k: v for k, v in a.items() if not k.startswith("_")} for a in alternatives if a["_key"] != chosen][
            : ctx.options.alternatives
        ]
        if self.best is None:
            reason = self.reason or (
                f"the search stopped (call or time budget) before finding a change of the prediction "
                f"{ctx.origin_label!r}"
            )
            return {"exists": False, "reason": reason, "features": [], "complete": self.done, "alternatives": alts}
        moves, label, p_new, _ = self.best
        return {
            "exists": True,
            "features": [
                {
                    "feature": ctx.space.features[m.j].name,
                    "value": ctx.present(m.j, ctx.record[m.j]),
                    "moved_to": ctx.present(m.j, m.value),
                    "base": ctx.present(m.j, ctx.base[m.j]),
                }
                for m in sorted(moves, key=lambda m: m.j)
            ],
            "prediction": label,
            "probability": p_new,
            "record": {
                f.name: ctx.present(j, v)
                for j, (f, v) in enumerate(zip(ctx.space.features, ctx.point(moves), strict=True))
            },
            "complete": self.done,
            "alternatives": alts,
        }


def _direction(ctx: Context, m: Move) -> int:
    f = ctx.space.features[m.j]
    if isinstance(f, NumericFeature):
        return 1 if float(m.value) > float(ctx.record[m.j]) else -1
    return 0


# -- driver ---------------------------------------------------------------------------------
def explain_contrastive(
    space: FeatureSpace, record: Row, scorer: ScoresRows, options: ContrastiveOptions
) -> dict[str, Any]:
    """Run both searches, round by round, each round in one scoring call."""
    if not scorer.classification:
        raise InvalidInput("contrastive explanations are for classification models; use method 'lime'")
    t0 = time.perf_counter()
    ctx = Context(space, record, options)
    pp, pn = PertinentPositive(ctx), PertinentNegative(ctx)
    calls = 0
    scored_seconds = 0.0
    first = True
    base_label: Any = None
    probabilities: list[float] | None = None
    while calls < options.max_calls:
        parts = [(s, s.propose()) for s in (pp, pn)]
        rows: list[Row] = [list(ctx.record), list(ctx.base)] if first else []
        spans = []
        for search, batch in parts:
            spans.append((search, len(rows), len(rows) + len(batch)))
            rows.extend(batch)
        if not rows:
            break
        ts = time.perf_counter()
        scored = scorer.score(space.names, rows)
        scored_seconds += time.perf_counter() - ts
        calls += 1
        if first:
            ctx.origin_label = scored.prediction[0]
            ctx.origin_class = int(scored.classes[0]) if scored.classes is not None else -1
            if scored.probability is not None:
                if ctx.origin_class < 0:
                    ctx.origin_class = int(np.argmax(scored.probability[0]))
                ctx.origin_p = float(scored.probability[0, ctx.origin_class])
                probabilities = [float(p) for p in scored.probability[0]]
            base_label = scored.prediction[1]
            base = ctx.outcome(scored, 1, 2)
            ctx.base_keeps, ctx.base_p = base.kept(0), float(base.p_origin[0])
            first = False
        for search, a, b in spans:
            if b > a:
                search.observe(ctx.outcome(scored, a, b))
        if (pp.done and pn.done) or (time.perf_counter() - t0) >= options.time_budget_s:
            break

    contributions = _sensitivity(ctx, pp)
    out: dict[str, Any] = {
        "method": "contrastive",
        "prediction": ctx.origin_label,
        "probability": ctx.origin_p if probabilities is not None else None,
        "labels": list(scorer.labels),
        "probabilities": probabilities,
        "base_values": {f.name: ctx.present(j, ctx.base[j]) for j, f in enumerate(space.features)},
        "base_prediction": base_label,
        "pertinent_positive": pp.result(),
        "pertinent_negative": pn.result(),
        "contributions": contributions,
        "rounds": calls,
        "timings_ms": {
            "scoring": round(scored_seconds * 1000, 3),
            "search": round((time.perf_counter() - t0 - scored_seconds) * 1000, 3),
        },
    }
    return plain(out)


def _sensitivity(ctx: Context, pp: PertinentPositive) -> list[dict[str, Any]]:
    """Per feature, how much the record's class probability drops when it alone moves to its
    base value: positive means the record's value supports the prediction."""
    deltas = {j: ctx.origin_p - p for j, p in pp.single.items()}
    total = sum(abs(d) for d in deltas.values())
    out = []
    for j, d in sorted(deltas.items(), key=lambda jd: (-abs(jd[1]), jd[0])):
        out.append(
            {
                "feature": ctx.space.features[j].name,
                "value": ctx.present(j, ctx.record[j]),
                "weight": 100.0 * d / total if total else 0.0,
                "coefficient": d,
                "condition": f"{ctx.space.features[j].name} moved to its base value {ctx.present(j, ctx.base[j])!r}",
            }
        )
    return out
