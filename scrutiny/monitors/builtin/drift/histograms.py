"""Mergeable partial results of data drift: per feature, counts on the reference bins.

A ``DriftHistograms`` is built from a columnar record batch with vectorised ``searchsorted``
and ``bincount`` (numbers) or one hash lookup per row (categories), adds to another by
summing counts, and serialises to a few kilobytes. Kept per time bucket as records arrive, a
drift run over any window merges small vectors instead of reading the records again.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from scrutiny.errors import InvalidInput
from scrutiny.monitors.builtin.drift.reference import CATEGORICAL, DriftReference, FeatureReference

UNSEEN_EXAMPLES = 20  # values outside the training categories kept per feature, most frequent first
_MAGIC = b"SDH1"


def feature_bins(ref: FeatureReference, values: np.ndarray) -> np.ndarray:
    """The reference bin of each value (int64), in the layout of ``ref``."""
    return _bins_and_unseen(ref, values)[0]


def _bins_and_unseen(ref: FeatureReference, values: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Bins, and for categories the values outside the reference with their counts."""
    if ref.kind != CATEGORICAL:
        x = values if values.dtype == np.float64 else _as_float(values, ref.name)
        return ref.binner(x), {}
    codes, outside = ref.coder.codes_and_outside(values)
    out = np.where(codes == -1, ref.other_bin, codes)
    out[codes == -2] = ref.missing_bin
    return out, _top(outside) if outside else {}


def _as_float(values: np.ndarray, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput("a numeric drift feature holds values that are not numbers", field=name) from None


@dataclass
class DriftHistograms:
    """Counts of one set of records on a reference's bins, as one flat int64 vector."""

    fingerprint: str
    counts: np.ndarray
    rows: int = 0
    unseen: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def empty(cls, ref: DriftReference) -> DriftHistograms:
        return cls(ref.fingerprint, np.zeros(ref.size, dtype=np.int64))

    @classmethod
    def from_columns(cls, ref: DriftReference, columns: Mapping[str, np.ndarray], rows: int) -> DriftHistograms:
        """Histograms of ``rows`` records given as arrays per feature (NaN or None = missing);
        a feature absent from ``columns`` counts as missing in every row."""
        rows = int(rows)
        counts = np.zeros(ref.size, dtype=np.int64)
        unseen: dict[str, dict[str, int]] = {}
        for f in ref.features:
            lo, hi = ref.offsets[f.name]
            values = columns.get(f.name)
            if values is None:
                counts[lo + f.missing_bin] += rows
                continue
            if len(values) != rows:
                raise InvalidInput(f"has {len(values)} values for {rows} rows", field=f.name)
            idx, examples = _bins_and_unseen(f, values)
            counts[lo:hi] += np.bincount(idx, minlength=f.size)
            if examples:
                unseen[f.name] = examples
        return cls(ref.fingerprint, counts, rows, unseen)

    def feature(self, ref: DriftReference, name: str) -> np.ndarray:
        lo, hi = ref.offsets[name]
        return self.counts[lo:hi]

    def merge(self, other: DriftHistograms) -> DriftHistograms:
        """The histograms of both sets of records together."""
        if other.fingerprint != self.fingerprint:
            raise InvalidInput(
                f"cannot merge drift histograms of reference {other.fingerprint} into {self.fingerprint}: "
                "the training bins changed; rebuild the older partial results (backfill)"
            )
        unseen = {k: dict(v) for k, v in self.unseen.items()}
        for name, ex in other.unseen.items():
            mine = unseen.setdefault(name, {})
            for v, c in ex.items():
                mine[v] = mine.get(v, 0) + c
            unseen[name] = _top(mine)
        return DriftHistograms(self.fingerprint, self.counts + other.counts, self.rows + other.rows, unseen)

    __add__ = merge

    @staticmethod
    def merge_all(parts: list[DriftHistograms], ref: DriftReference) -> DriftHistograms:
        """Sum many partial results at once (one ``np.sum`` over the stacked vectors)."""
        if not parts:
            return DriftHistograms.empty(ref)
        stale = [p.fingerprint for p in parts if p.fingerprint != ref.fingerprint]
        if stale:
            raise InvalidInput(
                f"{len(stale)} partial results were built on other training bins ({stale[0]}); backfill them"
            )
        counts = np.asarray(np.stack([p.counts for p in parts]).sum(axis=0), dtype=np.int64)
        unseen: dict[str, dict[str, int]] = {}
        for p in parts:
            for name, ex in p.unseen.items():
                acc = unseen.setdefault(name, {})
                for v, c in ex.items():
                    acc[v] = acc.get(v, 0) + c
        return DriftHistograms(
            ref.fingerprint, counts, sum(p.rows for p in parts), {k: _top(v) for k, v in unseen.items()}
        )

    # -- serialisation ----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """``SDH1`` + header length + JSON header + zlib of the little-endian int64 counts."""
        header = orjson.dumps({"fingerprint": self.fingerprint, "rows": self.rows, "unseen": self.unseen})
        body = zlib.compress(self.counts.astype("<i8").tobytes(), 1)
        return _MAGIC + len(header).to_bytes(4, "little") + header + body

    @classmethod
    def from_bytes(cls, data: bytes) -> DriftHistograms:
        if data[:4] != _MAGIC:
            raise InvalidInput("not a serialised drift histogram")
        n = int.from_bytes(data[4:8], "little")
        header = orjson.loads(data[8 : 8 + n])
        counts = np.frombuffer(zlib.decompress(data[8 + n :]), dtype="<i8").astype(np.int64)
        return cls(header["fingerprint"], counts, int(header["rows"]), header.get("unseen") or {})

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (counts as base64 of the compressed vector)."""
        body = zlib.compress(self.counts.astype("<i8").tobytes(), 1)
        return {
            "fingerprint": self.fingerprint,
            "rows": self.rows,
            "counts": base64.b64encode(body).decode(),
            "unseen": self.unseen,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DriftHistograms:
        counts = np.frombuffer(zlib.decompress(base64.b64decode(d["counts"])), dtype="<i8").astype(np.int64)
        return cls(d["fingerprint"], counts, int(d["rows"]), d.get("unseen") or {})


def _top(d: dict[str, int]) -> dict[str, int]:
    items = sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:UNSEEN_EXAMPLES]
    return dict(items)
