"""Population statistics of the scorer: ``u`` level counts over a sample that can be maintained.

The scorer needs, per comparison level, its share ``u`` among random pairs of the records
being resolved. Drawing fresh random pairs each run costs seconds and makes the scores
depend on the draw. Instead, the sample is a deterministic function of the population:

* every source record has a **sample rank**, the first 32 bits of SHA-256 of
  ``source_system:source_id`` (:func:`sample_rank`), fixed for the record's life;
* a population of ``N`` records samples the records whose rank is below the threshold of
  step ``k`` (:func:`sample_threshold`, ``2^32 · 2^(-k/2)``), where ``k`` is the smallest
  step that keeps ``N · 2^(-k/2) ≤`` :data:`U_SAMPLE_RECORDS` (:func:`sample_step`), and
  counts the comparison levels of **every pair of sampled records** (~360k to 720k pairs;
  every pair when ``N`` is small).

So the level counts are exact integers that follow the change: when records arrive, leave
or change, the pairs they had inside the sample are subtracted and the pairs they now have
are added (:func:`update_statistics`); the result equals :func:`measure_statistics` on the
new population, pair for pair. Only when the population crosses a step (grows or shrinks
by a factor √2) is the sample measured again from scratch.

:class:`PopulationStatistics` holds the counts and turns them into ``u``
(:meth:`PopulationStatistics.u_probabilities`); it serialises to JSON (the lake keeps it in
the snapshot summary of ``semantic.customer_records_normalized``). Another engine computes
identical statistics by selecting the sampled records by the same rank and threshold and
passing them to :func:`measure_statistics`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehook.resolve.matching import (
    COMPARISONS,
    DERIVED_COLUMNS_SQL,
    MATCH_COLUMNS,
    levels_select,
    u_from_level_counts,
)

#: bump when the sample or the counting changes (stored statistics are then measured again)
STATISTICS_VERSION = "u-sample-1"
#: largest expected sample: its pairs (~N²/2) are what a from-scratch measure scores
U_SAMPLE_RECORDS = 1200
#: sample ranks are 32-bit: the first eight hex digits of the key's SHA-256
_RANK_SPACE = 1 << 32
#: the match columns whose pairs are counted (``rid`` is positional, not a value)
_VALUE_COLUMNS: tuple[str, ...] = tuple(c for c in MATCH_COLUMNS if c != "rid")


def sample_rank(source_system: str, source_id: str) -> int:
    """The record's fixed rank in ``[0, 2^32)``: SHA-256 of ``source_system:source_id``."""
    return int(hashlib.sha256(f"{source_system}:{source_id}".encode()).hexdigest()[:8], 16)


def sample_ranks(source_systems: pa.Array, source_ids: pa.Array) -> pa.Array:
    """:func:`sample_rank` of every record, as int64."""
    ranks = [
        sample_rank(system, sid)
        for system, sid in zip(source_systems.to_pylist(), source_ids.to_pylist(), strict=True)
    ]
    return pa.array(ranks, pa.int64())


def sample_step(records: int) -> int:
    """Smallest step ``k ≥ 0`` with ``records · 2^(-k/2) ≤ U_SAMPLE_RECORDS``."""
    if records <= U_SAMPLE_RECORDS:
        return 0
    return max(0, math.ceil(2 * math.log2(records / U_SAMPLE_RECORDS) - 1e-12))


def sample_threshold(step: int) -> int:
    """Rank threshold of a step: ``floor(2^32 · 2^(-step/2))``, in integer arithmetic."""
    return math.isqrt(1 << (64 - step))


@dataclass(frozen=True)
class PopulationStatistics:
    """Comparison-level counts over every pair of sampled records of one population.

    Attributes:
        records: Records of the population the counts describe.
        step: Sample step (:func:`sample_step` of ``records``).
        sample_records: Records in the sample.
        sample_pairs: Pairs counted (``sample_records`` choose 2).
        level_counts: Per comparison, pairs per level (-1: a side is missing).
        version: :data:`STATISTICS_VERSION` of the counting.
    """

    records: int
    step: int
    sample_records: int
    sample_pairs: int
    level_counts: Mapping[str, Mapping[int, int]]
    version: str = STATISTICS_VERSION

    def u_probabilities(self) -> dict[str, dict[int, float]]:
        """``u`` per comparison level: the sampled share, blended with the prior guess.

        The prior (``Comparison.u_default``) weighs as
        :data:`~lakehook.resolve.matching.U_PSEUDO_PAIRS` pairs, so it only matters on
        small inputs and for levels the sample rarely hits.
        """
        counts = {
            name: {level: float(pairs) for level, pairs in levels.items()}
            for name, levels in self.level_counts.items()
        }
        return u_from_level_counts(counts, self.records)

    def to_json(self) -> str:
        """Compact JSON (levels as strings), for a snapshot summary property."""
        return json.dumps(
            {
                "version": self.version,
                "records": self.records,
                "step": self.step,
                "sample_records": self.sample_records,
                "sample_pairs": self.sample_pairs,
                "level_counts": {
                    name: {str(k): v for k, v in sorted(levels.items())}
                    for name, levels in sorted(self.level_counts.items())
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> PopulationStatistics:
        """Read :meth:`to_json`'s output back."""
        data = json.loads(text)
        return cls(
            records=int(data["records"]),
            step=int(data["step"]),
            sample_records=int(data["sample_records"]),
            sample_pairs=int(data["sample_pairs"]),
            level_counts={
                name: {int(k): int(v) for k, v in levels.items()}
                for name, levels in data["level_counts"].items()
            },
            version=str(data["version"]),
        )


def _sampled(population: pa.Table, step: int) -> pa.Table:
    """The records of ``population`` inside the sample of ``step``."""
    inside = pc.less(
        population.column("sample_rank"), pa.scalar(sample_threshold(step), pa.int64())
    )
    return population.filter(inside)


def _count_pairs(left: pa.Table, right: pa.Table | None) -> dict[str, dict[int, int]]:
    """Level counts over the pairs ``left`` x ``right``, or every pair within ``left``."""
    counts: dict[str, dict[int, int]] = {c.name: {} for c in COMPARISONS}
    if left.num_rows == 0 or (right is not None and right.num_rows == 0):
        return counts
    if right is None and left.num_rows < 2:
        return counts
    db = duckdb.connect()
    try:
        columns = list(_VALUE_COLUMNS)
        db.register("left_arrow", left.select(columns))
        db.execute(
            f"CREATE TEMP TABLE l AS SELECT row_number() OVER () AS pos, *, {DERIVED_COLUMNS_SQL} "
            "FROM left_arrow"
        )
        if right is None:
            join = "l a JOIN l b ON a.pos < b.pos"
        else:
            db.register("right_arrow", right.select(columns))
            db.execute(f"CREATE TEMP TABLE r AS SELECT *, {DERIVED_COLUMNS_SQL} FROM right_arrow")
            join = "l a, r b"
        names = [c.name for c in COMPARISONS]
        per_level = db.sql(
            f"WITH lv AS (SELECT {levels_select()} FROM {join}) "
            + " UNION ALL ".join(
                f"SELECT '{name}' AS comparison, lvl_{name} AS level, count(*) AS pairs "
                f"FROM lv GROUP BY lvl_{name}"
                for name in names
            )
        ).fetchall()
    finally:
        db.close()
    for name, level, pairs in per_level:
        counts[str(name)][int(level)] = int(pairs)
    return counts


def measure_statistics(population: pa.Table) -> PopulationStatistics:
    """Count the levels of every pair of sampled records, from scratch.

    Args:
        population: Every normalised record (:data:`MATCH_COLUMNS` values and an int64
            ``sample_rank``), one row per source record.

    Returns:
        The statistics of that population.
    """
    records = population.num_rows
    step = sample_step(records)
    sample = _sampled(population, step)
    size = sample.num_rows
    return PopulationStatistics(
        records=records,
        step=step,
        sample_records=size,
        sample_pairs=size * (size - 1) // 2,
        level_counts=_count_pairs(sample, None),
    )


def _same_values(before: pa.Table, after: pa.Table) -> np.ndarray:
    """Row-wise: every match column equal (nulls equal to nulls)."""
    same = np.ones(before.num_rows, dtype=bool)
    for name in _VALUE_COLUMNS:
        a, b = before.column(name), after.column(name)
        equal = pc.fill_null(pc.equal(a, b), False)
        both_null = pc.and_(pc.is_null(a), pc.is_null(b))
        same &= np.asarray(pc.or_(equal, both_null).to_numpy(zero_copy_only=False), dtype=bool)
    return same


def update_statistics(
    previous: PopulationStatistics,
    previous_population: pa.Table,
    population: pa.Table,
) -> PopulationStatistics:
    """The statistics of ``population``, from those of ``previous_population`` by deltas.

    Sampled records that left or changed take their pairs out; sampled records that arrived
    or changed bring theirs in: ``counts - pairs(R, K) - pairs(R) + pairs(A, K) + pairs(A)``
    with ``R`` the old versions gone, ``A`` the new versions and ``K`` the sampled records
    that did not change. The result equals :func:`measure_statistics` of ``population``;
    when the population crossed a step (or the stored counts do not describe
    ``previous_population``), it *is* :func:`measure_statistics`.

    Args:
        previous: Statistics stored with ``previous_population``.
        previous_population: The normalised records those statistics were counted on.
        population: The normalised records of this run (same columns).

    Returns:
        The statistics of ``population``.
    """
    step = sample_step(population.num_rows)
    old = _sampled(previous_population, previous.step) if previous_population.num_rows else None
    if (
        previous.version != STATISTICS_VERSION
        or previous.step != step
        or previous.records != previous_population.num_rows
        or old is None
        or old.num_rows != previous.sample_records
    ):
        return measure_statistics(population)
    new = _sampled(population, step)
    keys = ["source_system", "source_id"]
    old_keyed = old.select([*keys, *_VALUE_COLUMNS]).append_column(
        "_old", pa.array(np.arange(old.num_rows, dtype=np.int64))
    )
    new_keyed = new.select(keys).append_column(
        "_new", pa.array(np.arange(new.num_rows, dtype=np.int64))
    )
    both = old_keyed.select([*keys, "_old"]).join(new_keyed, keys, join_type="inner")
    old_pos = np.asarray(both.column("_old").to_numpy(), dtype=np.int64)
    new_pos = np.asarray(both.column("_new").to_numpy(), dtype=np.int64)
    same = _same_values(old.take(pa.array(old_pos)), new.take(pa.array(new_pos)))
    kept_old = np.zeros(old.num_rows, dtype=bool)
    kept_old[old_pos[same]] = True
    kept_new = np.zeros(new.num_rows, dtype=bool)
    kept_new[new_pos[same]] = True
    removed = old.filter(pa.array(~kept_old))
    added = new.filter(pa.array(~kept_new))
    kept = new.filter(pa.array(kept_new))
    counts: dict[str, dict[int, int]] = {
        name: dict(levels) for name, levels in previous.level_counts.items()
    }
    for sign, delta in (
        (-1, _count_pairs(removed, kept)),
        (-1, _count_pairs(removed, None)),
        (1, _count_pairs(added, kept)),
        (1, _count_pairs(added, None)),
    ):
        for name, levels in delta.items():
            target = counts.setdefault(name, {})
            for level, pairs in levels.items():
                target[level] = target.get(level, 0) + sign * pairs
    counts = {
        name: {level: pairs for level, pairs in levels.items() if pairs}
        for name, levels in counts.items()
    }
    size = new.num_rows
    return PopulationStatistics(
        records=population.num_rows,
        step=step,
        sample_records=size,
        sample_pairs=size * (size - 1) // 2,
        level_counts=counts,
    )
