"""Entity resolution on Spark: normalisation, statistics, blocking and scoring on the cluster.

The same resolver as :func:`lakehook.resolve.resolve_identities`, with its heavy half moved
to Spark (docs/scale-out.md, "Entity resolution on Spark"):

- **on Spark** — the records are cast, deduplicated (newest version per source record) and
  sorted by source key (``rid`` = rank in that order, as on DuckDB); normalised by
  ``mapInArrow`` calling :func:`~lakehook.resolve.normalize.normalize_records` on each Arrow
  batch; term frequencies are window counts, the prior an aggregate over the records
  sharing an email; the ``u`` sample is chosen by the same hash rank as on DuckDB
  (:mod:`lakehook.resolve.statistics`); blocking is a Spark SQL self-join over
  :data:`~lakehook.resolve.matching.BLOCKING_KEYS` (translated by sqlglot); each partition
  of candidate pairs is scored by a :class:`~lakehook.resolve.matching.Matcher` built from
  the population's statistics, so the comparison levels are the very SQL DuckDB runs and
  the decision rules the very numpy code (Spark has no Jaro-Winkler or Damerau-Levenshtein;
  re-implemented UDFs could disagree at a threshold).
- **on the driver** — the per-record keys (source key, ``created_at``, ``updated_at``)
  and match fingerprints (hashed on the executors by the DuckDB path's function),
  the previous map, the ``u`` sample's pairs (bounded: about
  :data:`~lakehook.resolve.statistics.U_SAMPLE_RECORDS` records whatever the population),
  and the scored pairs that matter to clustering (a decision rule or a cannot-link; the
  others never leave Spark). Clustering and the stable ids run there as in
  :mod:`lakehook.resolve.core`: that part is O(records) on the driver.

Statistics, candidate pairs and decisions are identical to the DuckDB path for the same
records, so both engines produce the same identity map (``tests/resolve/test_spark_resolve.py``
and the all-layer parity test). The Spark path normalises every record each run: the
normalised-records state the DuckDB path keeps between runs is not read or written here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import sqlglot

from lakehook.resolve.core import MATCH_FINGERPRINT, Mode, Resolution, resolve_identities
from lakehook.resolve.matching import (
    BLOCKING_KEYS,
    COMPARISONS,
    FULL_NAME_KEY_SQL,
    MATCH_COLUMNS,
    POPULATION_COLUMNS,
    RULE_NONE,
    TF_COLUMNS,
    TF_PSEUDO_RECORDS,
    Calibration,
    Matcher,
    ScoredPairs,
    log2_prior_odds,
)
from lakehook.resolve.normalize import RECORD_COLUMNS
from lakehook.resolve.state import MATCH_FIELDS
from lakehook.resolve.statistics import PopulationStatistics, sample_step, sample_threshold

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

_TIMESTAMPS = frozenset({"created_at", "updated_at"})
#: key columns the driver receives, one row per record in rid order
KEY_COLUMNS: tuple[str, ...] = ("source_system", "source_id", "created_at", "updated_at")
#: monotonically_increasing_id() puts the partition index above bit 33
_PARTITION_SHIFT = 33


def resolve_identities_on_spark(
    records: DataFrame,
    previous_map: pa.Table | None = None,
    *,
    issued_ids: Iterable[str] = (),
    mode: Mode = "incremental",
    resolved_at: datetime | None = None,
    run_id: str | None = None,
    match_threshold: float = 0.95,
    default_region: str = "US",
    keep_pairs: bool = False,
) -> Resolution:
    """Resolve source customer records held in a Spark DataFrame; same result as on DuckDB.

    Args:
        records: One row per source customer record (columns of
            :data:`~lakehook.resolve.normalize.RECORD_COLUMNS`; missing ones are null).
        previous_map: The current ``semantic.customer_identity_map`` (None on first run).
        issued_ids: Ids issued in earlier runs (from the merge log), never handed out again.
        mode: ``incremental`` or ``full``, as :func:`~lakehook.resolve.resolve_identities`.
        resolved_at: Timestamp stamped on new and changed rows (default: now, UTC).
        run_id: Id of this run in the merge log.
        match_threshold: Posterior probability from which a scored pair is a match.
        default_region: Country for phone numbers of records without one.
        keep_pairs: Keep the scored pairs that came back to the driver on the result.

    Returns:
        The new identity map, the merge-log rows and the change summary. The summary's
        ``candidate_pairs`` counts the pairs that came back (those with a rule or a
        cannot-link), not every candidate pair scored on Spark.
    """
    matching = SparkMatching(
        records, match_threshold=match_threshold, default_region=default_region
    )
    try:
        return resolve_identities(
            matching.record_keys(),
            previous_map,
            issued_ids=issued_ids,
            mode=mode,
            resolved_at=resolved_at,
            run_id=run_id,
            match_threshold=match_threshold,
            default_region=default_region,
            keep_pairs=keep_pairs,
            match_pairs=matching,
        )
    finally:
        matching.close()


class SparkMatching:
    """Normalisation, statistics, blocking and scoring of one set of records on Spark.

    An instance is the ``match_pairs`` step of
    :func:`~lakehook.resolve.core.resolve_identities` (it is called with the prepared
    record keys, the changed mask, the previous ids and whether the run is incremental).

    Args:
        records: The source customer records.
        match_threshold: Posterior probability from which a pair is a match.
        default_region: Country for phone numbers of records without one.
    """

    def __init__(
        self,
        records: DataFrame,
        *,
        match_threshold: float = 0.95,
        default_region: str = "US",
    ) -> None:
        self.spark: SparkSession = records.sparkSession
        self.match_threshold = match_threshold
        self.default_region = default_region
        self._cached: list[DataFrame] = []
        self._sorted = self._ordered(_prepared(records))
        self._prepared: DataFrame | None = None
        self.n = 0
        self._keys = pa.table({name: pa.array([], pa.string()) for name in KEY_COLUMNS[:2]})
        self.calibration: Calibration | None = None
        self._scoring: DataFrame | None = None
        self._kept_keys: DataFrame | None = None

    # ------------------------------------------------------------------ records
    def _keep(self, frame: DataFrame) -> DataFrame:
        from pyspark import StorageLevel

        frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
        self._cached.append(frame)
        return frame

    def _ordered(self, records: DataFrame) -> DataFrame:
        """The records sorted by ``(source_system, source_id)``, cached on the cluster.

        The global sort range-partitions them; ``_part`` is the partition and ``_row``
        the row's position in it (in the bits below :data:`_PARTITION_SHIFT`).
        """
        from pyspark.sql import functions as sf

        return self._keep(
            records.orderBy("source_system", "source_id")
            .withColumn("_part", sf.spark_partition_id())
            .withColumn("_row", sf.monotonically_increasing_id())
        )

    def record_keys(self) -> pa.Table:
        """Source key, ``created_at``, ``updated_at`` and match fingerprint of every record,
        in rid order.

        Numbers the records too: ``rid`` = rank in ``(source_system, source_id)`` order,
        0..n-1, as on DuckDB. Each sorted partition's offset is the number of records in
        the partitions before it, so no single task sees every record.
        """
        from pyspark.sql import functions as sf

        # the match fingerprints are hashed on the executors by the DuckDB path's function
        columns = [
            "_part",
            "_row",
            *KEY_COLUMNS,
            *(f for f in MATCH_FIELDS if f not in KEY_COLUMNS),
        ]
        keys = (
            self._sorted.select(*columns)
            .mapInArrow(_fingerprinter(self.default_region), _keys_schema())
            .toArrow()
        )
        part = np.asarray(keys.column("_part").to_numpy(), dtype=np.int64)
        local = np.asarray(keys.column("_row").to_numpy(), dtype=np.int64) - (
            part << _PARTITION_SHIFT
        )
        sizes = np.bincount(part) if part.size else np.zeros(1, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        rid = offsets[part] + local
        self.n = int(rid.shape[0])
        order = np.empty(self.n, dtype=np.int64)
        order[rid] = np.arange(self.n, dtype=np.int64)
        self._keys = keys.take(pa.array(order)).drop_columns(["_part", "_row"])
        offset = sf.element_at(
            sf.array(*[sf.lit(int(o)) for o in offsets]), sf.col("_part") + 1
        ).cast("long")
        row = sf.col("_row") - sf.shiftleft(sf.col("_part").cast("long"), _PARTITION_SHIFT)
        self._prepared = self._sorted.withColumn("rid", offset + row).drop("_part", "_row")
        return self._keys

    @property
    def prepared(self) -> DataFrame:
        """The prepared records with their ``rid`` (after :meth:`record_keys`)."""
        if self._prepared is None:
            raise RuntimeError("record_keys() numbers the records first")
        return self._prepared

    # ------------------------------------------------------------------ the resolver's step
    def __call__(
        self,
        table: pa.Table,
        changed: npt.NDArray[np.bool_],
        prev_ids: npt.NDArray[Any],
        incremental: bool,
        timings: dict[str, float],
    ) -> tuple[npt.NDArray[np.bool_], ScoredPairs]:
        """Records to re-cluster and the scored pairs among them (see :mod:`core`)."""
        self._check_order(table)
        tick = time.perf_counter()
        self._prepare_scoring()  # lazy: the normalisation runs in the calibration's jobs
        self.calibration = self._calibrate()
        timings["normalize_and_calibrate_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        if incremental:
            affected, scored = self._match_changed(changed, prev_ids)
        else:
            affected = np.ones(table.num_rows, dtype=bool)
            scored = self._score(self._candidate_pairs())
        timings["block_and_score_s"] = time.perf_counter() - tick
        return affected, scored

    def _check_order(self, table: pa.Table) -> None:
        """The resolver's rows must be the Spark rids: same keys in the same order."""
        same = table.num_rows == self._keys.num_rows and all(
            table.column(name)
            .combine_chunks()
            .cast(pa.string())
            .equals(self._keys.column(name).combine_chunks().cast(pa.string()))
            for name in ("source_system", "source_id")
        )
        if not same:
            raise ValueError("the resolver's record order is not Spark's rid order")

    def _prepare_scoring(self) -> None:
        """Normalised records with their population columns, cached on the cluster."""
        from pyspark.sql import Window
        from pyspark.sql import functions as sf

        normalized = self.prepared.select("rid", *RECORD_COLUMNS).mapInArrow(
            _normalizer(self.default_region), _normalized_schema()
        )
        normalized = self._keep(normalized)
        full_name = sf.expr(_spark_sql(FULL_NAME_KEY_SQL))
        # the non-null count of each column rides along as a one-row broadcast (no collect)
        totals = normalized.agg(
            *[sf.count(col).alias(f"_total_{col}") for col in TF_COLUMNS],
            sf.count(full_name).alias("_total_full"),
        )
        scoring = normalized.crossJoin(sf.broadcast(totals))
        pseudo = sf.lit(float(TF_PSEUDO_RECORDS))
        for col in TF_COLUMNS:
            scoring = scoring.withColumn(
                f"n_{col}", sf.count(col).over(Window.partitionBy(col))
            ).withColumn(f"tf_{col}", sf.col(f"n_{col}") / (sf.col(f"_total_{col}") + pseudo))
        scoring = (
            scoring.withColumn("_full", full_name)
            .withColumn(
                "tf_full_name",
                sf.greatest(sf.count("_full").over(Window.partitionBy("_full")) - 2, sf.lit(0))
                / (sf.col("_total_full") + pseudo),
            )
            .select(*MATCH_COLUMNS, *POPULATION_COLUMNS)
        )
        self._scoring = self._keep(scoring)

    def _calibrate(self) -> Calibration:
        """The population statistics, exactly as the DuckDB path measures them.

        The prior comes from the pairs sharing an ``email_key`` (a Spark aggregate); ``u``
        from the level counts of every pair of *sampled* records: those whose sample rank
        (SHA-256 of the source key, :func:`~lakehook.resolve.statistics.sample_rank`) is
        below the threshold of the population's step. Spark selects them; the sample is
        bounded (about :data:`~lakehook.resolve.statistics.U_SAMPLE_RECORDS` records
        whatever the population), so its pairs are counted on the driver, in DuckDB.
        """
        from pyspark.sql import functions as sf

        scoring = self._require_scoring()
        n = self.n
        row = (
            scoring.where("email_key IS NOT NULL")
            .groupBy("email_key")
            .count()
            .agg(sf.coalesce(sf.sum(sf.col("count") * (sf.col("count") - 1) / 2), sf.lit(0.0)))
            .first()
        )
        prior = log2_prior_odds(float(row[0]) if row else 0.0, n)
        step = sample_step(n)
        rank = sf.conv(
            sf.substring(sf.sha2(sf.concat_ws(":", "source_system", "source_id"), 256), 1, 8),
            16,
            10,
        ).cast("long")
        chosen = self.prepared.where(rank < sf.lit(sample_threshold(step))).select("rid")
        sample = scoring.join(chosen, "rid", "left_semi").toArrow()
        size = sample.num_rows
        counts: dict[str, dict[int, int]] = {c.name: {} for c in COMPARISONS}
        if size >= 2:
            sample = sample.set_column(
                sample.schema.get_field_index("rid"),
                "rid",
                pa.array(np.arange(size, dtype=np.int64)),
            )
            left, right = np.triu_indices(size, k=1)
            matcher = Matcher(sample, calibration=Calibration(records=n, u={}, log2_prior=0.0))
            try:
                pairs = pa.table({"l": left.astype(np.int64), "r": right.astype(np.int64)})
                for name, levels in matcher.level_counts(pairs).items():
                    counts[name] = {level: int(total) for level, total in levels.items()}
            finally:
                matcher.close()
        statistics = PopulationStatistics(
            records=n,
            step=step,
            sample_records=size,
            sample_pairs=size * (size - 1) // 2,
            level_counts=counts,
        )
        return Calibration(records=n, u=statistics.u_probabilities(), log2_prior=prior)

    # ------------------------------------------------------------------ blocking
    def _blocking_keys(self) -> DataFrame:
        """(rid, kind, key) of every record in a block of 2 up to its cap."""
        from pyspark.sql import functions as sf

        if self._kept_keys is not None:
            return self._kept_keys
        scoring = self._require_scoring()
        # one scan: every record's keys as an array of (kind, key, cap), exploded
        emitted = sf.array(
            *[
                sf.struct(
                    sf.lit(kind).alias("kind"),
                    sf.expr(_spark_sql(expression)).alias("k"),
                    sf.lit(cap).alias("cap"),
                )
                for kind, expression, cap in BLOCKING_KEYS
            ]
        )
        keys = (
            scoring.select("rid", sf.explode(emitted).alias("key"))
            .select("rid", "key.kind", "key.k", "key.cap")
            .where("k IS NOT NULL")
        )
        blocks = (
            keys.groupBy("kind", "k", "cap")
            .count()
            .where("count BETWEEN 2 AND cap")
            .select("kind", "k")
        )
        self._kept_keys = self._keep(keys.join(blocks, ["kind", "k"], "left_semi").drop("cap"))
        return self._kept_keys

    def _candidate_pairs(self, focus: DataFrame | None = None) -> DataFrame:
        """Distinct ``(l, r)`` with ``l < r`` sharing a key; with ``focus``, touching it."""
        kept = self._blocking_keys()
        if focus is None:
            return (
                kept.alias("a")
                .join(kept.alias("b"), ["kind", "k"])
                .where("a.rid < b.rid")
                .selectExpr("a.rid AS l", "b.rid AS r")
                .distinct()
            )
        focused = kept.join(focus, "rid", "left_semi")
        return (
            focused.alias("f")
            .join(kept.alias("o"), ["kind", "k"])
            .where("f.rid <> o.rid")
            .selectExpr("least(f.rid, o.rid) AS l", "greatest(f.rid, o.rid) AS r")
            .distinct()
        )

    def _rids(self, rids: npt.NDArray[Any]) -> DataFrame:
        return self.spark.createDataFrame(pa.table({"rid": pa.array(rids, pa.int64())}))

    def _match_changed(
        self, changed: npt.NDArray[np.bool_], prev_ids: npt.NDArray[Any]
    ) -> tuple[npt.NDArray[np.bool_], ScoredPairs]:
        """Incremental matching, as :func:`lakehook.resolve.core._match_changed` decides it.

        The changed records are blocked against every record and scored on Spark; the
        records they match join them, with every record of the previous clusters those
        belong to; the pairs among the joined unchanged records are scored last. Only the
        edges (a rule or a cannot-link) come back.
        """
        focus = self._score(self._candidate_pairs(self._rids(np.flatnonzero(changed))))
        matched = focus.rule != RULE_NONE
        affected = changed.copy()
        affected[focus.left[matched]] = True
        affected[focus.right[matched]] = True
        affected = _with_touched_clusters(affected, prev_ids)
        scored = _kept(focus, affected[focus.left] & affected[focus.right])
        calm = np.flatnonzero(affected & ~changed)
        if calm.size > 1:
            scored = _joined(scored, self._score(self._pairs_within(calm)))
        return affected, scored

    def _pairs_within(self, rids: npt.NDArray[np.int64]) -> DataFrame:
        """Candidate pairs whose two records are both among ``rids``."""
        chosen = self._rids(rids)
        kept = self._blocking_keys().join(chosen, "rid", "left_semi")
        return (
            kept.alias("a")
            .join(kept.alias("b"), ["kind", "k"])
            .where("a.rid < b.rid")
            .selectExpr("a.rid AS l", "b.rid AS r")
            .distinct()
        )

    # ------------------------------------------------------------------ scoring
    def _with_records(self, pairs: DataFrame) -> DataFrame:
        """Each pair ``(l, r)`` with both scoring records as structs ``a`` and ``b``."""
        from pyspark.sql import functions as sf

        scoring = self._require_scoring()
        record = scoring.select("rid", sf.struct(*scoring.columns).alias("rec"))
        return (
            pairs.join(record.withColumnRenamed("rid", "l"), "l")
            .withColumnRenamed("rec", "a")
            .join(record.withColumnRenamed("rid", "r"), "r")
            .withColumnRenamed("rec", "b")
            .select("l", "r", "a", "b")
        )

    def _score(self, pairs: DataFrame) -> ScoredPairs:
        """Score every candidate pair on Spark; bring back those clustering needs."""
        assert self.calibration is not None
        edges = (
            self._with_records(pairs)
            .mapInArrow(_pair_scorer(self.calibration, self.match_threshold), _edge_schema())
            .toArrow()
        )
        edges = edges.sort_by([("l", "ascending"), ("r", "ascending")])
        return ScoredPairs(
            left=np.asarray(edges.column("l").to_numpy(), dtype=np.int64),
            right=np.asarray(edges.column("r").to_numpy(), dtype=np.int64),
            levels={
                c.name: np.asarray(edges.column(f"lvl_{c.name}").to_numpy(), dtype=np.int8)
                for c in COMPARISONS
            },
            weight=np.asarray(edges.column("weight").to_numpy(), dtype=np.float64),
            probability=np.asarray(edges.column("probability").to_numpy(), dtype=np.float64),
            rule=np.asarray(edges.column("rule").to_numpy(), dtype=np.int8),
            cannot_link=np.asarray(
                edges.column("cannot_link").to_numpy(zero_copy_only=False), dtype=np.bool_
            ),
            stats={"log2_prior": self.calibration.log2_prior},
        )

    def _require_scoring(self) -> DataFrame:
        if self._scoring is None:
            raise RuntimeError("records are not normalised yet")
        return self._scoring

    def close(self) -> None:
        """Release every DataFrame cached on the cluster."""
        for frame in self._cached:
            frame.unpersist()
        self._cached.clear()


# --- Spark plumbing ---------------------------------------------------------------------------


def _spark_sql(expression: str) -> str:
    """A matching SQL expression (DuckDB dialect) in Spark SQL."""
    return str(sqlglot.transpile(expression, read="duckdb", write="spark")[0])


def _prepared(records: DataFrame) -> DataFrame:
    """The contract columns as text/timestamps, keyed rows only, newest version per key.

    Mirrors :func:`lakehook.resolve.core._prepare_records` (newest ``updated_at`` first,
    NULLs last); staging holds one row per key, so ties do not arise.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as sf

    columns: list[Column] = []
    for name in RECORD_COLUMNS:
        kind = "timestamp" if name in _TIMESTAMPS else "string"
        source = sf.col(name) if name in records.columns else sf.lit(None)
        columns.append(source.cast(kind).alias(name))
    keyed = records.select(*columns).where("source_system IS NOT NULL AND source_id IS NOT NULL")
    newest = Window.partitionBy("source_system", "source_id").orderBy(
        sf.col("updated_at").desc_nulls_last()
    )
    return (
        keyed.withColumn("_version", sf.row_number().over(newest))
        .where("_version = 1")
        .drop("_version")
    )


def _keys_schema() -> str:
    kinds = {"_part": "int", "_row": "long", "created_at": "timestamp", "updated_at": "timestamp"}
    return ", ".join(
        f"{name} {kinds.get(name, 'string')}"
        for name in ("_part", "_row", *KEY_COLUMNS, MATCH_FINGERPRINT)
    )


def _fingerprinter(
    default_region: str,
) -> Callable[[Iterable[pa.RecordBatch]], Iterable[pa.RecordBatch]]:
    """The ``mapInArrow`` function giving each record's key columns and match fingerprint
    (:func:`~lakehook.resolve.state.match_fingerprints`, in a DuckDB of the executor)."""

    def fingerprint(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import duckdb

        from lakehook.resolve.state import match_fingerprints

        db = duckdb.connect(config={"threads": 1})
        try:
            for batch in batches:
                records = pa.Table.from_batches([batch])
                fingerprints = match_fingerprints(
                    records, default_region=default_region, connection=db
                )
                keys = records.select(["_part", "_row", *KEY_COLUMNS])
                yield from keys.append_column(MATCH_FINGERPRINT, fingerprints).to_batches()
        finally:
            db.close()

    return fingerprint


def _normalized_schema() -> str:
    kinds = {"rid": "long", "name_inferred": "boolean"}
    return ", ".join(f"{name} {kinds.get(name, 'string')}" for name in MATCH_COLUMNS)


def _normalizer(
    default_region: str,
) -> Callable[[Iterable[pa.RecordBatch]], Iterable[pa.RecordBatch]]:
    """The ``mapInArrow`` function normalising each batch of records (on the executors)."""

    def normalize(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from lakehook.resolve.matching import MATCH_COLUMNS
        from lakehook.resolve.normalize import normalize_records

        for batch in batches:
            records = pa.Table.from_batches([batch])
            normalized = normalize_records(records, default_region=default_region)
            yield from normalized.select(list(MATCH_COLUMNS)).to_batches()

    return normalize


def _with_touched_clusters(
    affected: npt.NDArray[np.bool_], prev_ids: npt.NDArray[Any]
) -> npt.NDArray[np.bool_]:
    """``affected`` plus every record of the previous clusters it touches."""
    touched = {i for i in prev_ids[affected].tolist() if i is not None}
    if not touched:
        return affected
    result: npt.NDArray[np.bool_] = affected | np.array(
        [i in touched for i in prev_ids.tolist()], dtype=bool
    )
    return result


def _kept(pairs: ScoredPairs, mask: npt.NDArray[np.bool_]) -> ScoredPairs:
    return ScoredPairs(
        left=pairs.left[mask],
        right=pairs.right[mask],
        levels={k: v[mask] for k, v in pairs.levels.items()},
        weight=pairs.weight[mask],
        probability=pairs.probability[mask],
        rule=pairs.rule[mask],
        cannot_link=pairs.cannot_link[mask],
        stats=pairs.stats,
    )


def _joined(a: ScoredPairs, b: ScoredPairs) -> ScoredPairs:
    return ScoredPairs(
        left=np.concatenate([a.left, b.left]),
        right=np.concatenate([a.right, b.right]),
        levels={k: np.concatenate([v, b.levels[k]]) for k, v in a.levels.items()},
        weight=np.concatenate([a.weight, b.weight]),
        probability=np.concatenate([a.probability, b.probability]),
        rule=np.concatenate([a.rule, b.rule]),
        cannot_link=np.concatenate([a.cannot_link, b.cannot_link]),
        stats=a.stats,
    )


def _records_of(batch: pa.Table) -> pa.Table:
    """The distinct scoring records of a batch of pairs (structs ``a`` and ``b``)."""
    sides = []
    for side in ("a", "b"):
        struct = batch.column(side).combine_chunks()
        names = [struct.type.field(i).name for i in range(struct.type.num_fields)]
        sides.append(pa.Table.from_arrays(struct.flatten(), names=names))
    both = pa.concat_tables(sides)
    _, first = np.unique(np.asarray(both.column("rid").to_numpy()), return_index=True)
    return both.take(pa.array(first))


def _edge_schema() -> str:
    levels = ", ".join(f"lvl_{c.name} byte" for c in COMPARISONS)
    return (
        f"l long, r long, {levels}, weight double, probability double, rule byte, "
        "cannot_link boolean"
    )


def _pair_scorer(
    calibration: Calibration, match_threshold: float
) -> Callable[[Iterable[pa.RecordBatch]], Iterable[pa.RecordBatch]]:
    """The ``mapInArrow`` function scoring each batch of pairs; yields the edges that matter."""

    def score(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            table = pa.Table.from_batches([batch])
            if table.num_rows == 0:
                continue
            matcher = Matcher(
                _records_of(table), calibration=calibration, match_threshold=match_threshold
            )
            try:
                scored = matcher.score(table.select(["l", "r"]))
            finally:
                matcher.close()
            keep = (scored.rule != RULE_NONE) | scored.cannot_link
            if not keep.any():
                continue
            columns: dict[str, Any] = {"l": scored.left[keep], "r": scored.right[keep]}
            for c in COMPARISONS:
                columns[f"lvl_{c.name}"] = scored.levels[c.name][keep]
            columns["weight"] = scored.weight[keep]
            columns["probability"] = scored.probability[keep]
            columns["rule"] = scored.rule[keep]
            columns["cannot_link"] = scored.cannot_link[keep]
            yield pa.RecordBatch.from_pydict(columns)

    return score
