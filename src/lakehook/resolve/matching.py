"""Candidate pairs and their scores: the blocking index and the calibrated comparisons.

Blocking: every record emits a few keys (normalised email, phone, family name + postal
code, canonical full name, email local part, street + postal code, email prefix/suffix
with domain); records sharing a key become a candidate pair. Blocks larger than a cap
are skipped (a key shared by hundreds of records identifies nobody), so the number of
pairs grows near-linearly with the records.

Scoring is Fellegi-Sunter: each comparison (email, phone, given name, family name,
address) falls in a level; a level adds ``log2(m / u)`` bits, where ``m`` is the chance
of that level among true matches (priors below) and ``u`` the chance among random pairs,
**measured on the data being resolved** from a random sample of pairs. Exact levels use
the frequency of the shared value instead (term-frequency adjustment), so a phone shared
by a whole office or a common surname counts for little. Everything runs in DuckDB over
Arrow; only the final arithmetic is numpy.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from lakehook.resolve.statistics import PopulationStatistics

#: columns of the normalised records the matcher reads
MATCH_COLUMNS: tuple[str, ...] = (
    "rid",
    "email_norm",
    "email_local",
    "email_domain",
    "email_key",
    "email_key_local",
    "phone_key",
    "phone_known",
    "first_norm",
    "first_canon",
    "last_norm",
    "first_any",
    "canon_any",
    "last_any",
    "name_inferred",
    "address_norm",
    "postal_norm",
)


@dataclass(frozen=True)
class Comparison:
    """One compared attribute: its levels as SQL, the ``m`` prior of each level.

    ``levels_sql`` is a CASE expression over aliases ``a`` and ``b`` giving an int level,
    NULL when either side is missing (no evidence). ``tf_level`` is the level whose
    ``u`` is the frequency of the shared value (column ``tf_column`` of the records).
    """

    name: str
    levels_sql: str
    m: dict[int, float]
    u_default: dict[int, float]
    tf_level: int | None = None
    tf_column: str | None = None
    #: levels whose ``u_default`` is a count of chance agreements *per record*: their
    #: chance among random pairs shrinks as the data grows (identifiers, not names)
    rare_levels: frozenset[int] = frozenset()
    #: levels that carry no evidence either way (weight 0)
    neutral_levels: frozenset[int] = frozenset()

    def default_u(self, level: int, records: int) -> float:
        """The prior guess of ``u`` for a level, on data of ``records`` records."""
        if level in self.rare_levels:
            return min(self.u_default[level] / max(records, 1), 0.5)
        return self.u_default[level]


# names compare the recorded names, or for a nameless record the two tokens its email
# spells (``*_any``); a spelled name that disagrees is no evidence (NULL), never a conflict
_FIRST_LEVELS = """CASE
  WHEN a.first_any IS NULL OR b.first_any IS NULL THEN NULL
  WHEN a.first_any = b.first_any THEN 4
  WHEN a.first_any = b.last_any AND a.last_any = b.first_any THEN 4
  WHEN a.canon_any = b.canon_any THEN 3
  WHEN jaro_winkler_similarity(a.first_any, b.first_any) >= 0.88 THEN 2
  WHEN (length(a.first_any) = 1 OR length(b.first_any) = 1)
       AND a.first_any[1] = b.first_any[1] THEN 1
  WHEN starts_with(a.first_any, b.first_any) OR starts_with(b.first_any, a.first_any) THEN 1
  WHEN a.name_inferred OR b.name_inferred THEN NULL
  ELSE 0 END"""

COMPARISONS: tuple[Comparison, ...] = (
    Comparison(
        "email",
        """CASE
  WHEN a.email_norm IS NULL OR b.email_norm IS NULL THEN NULL
  WHEN a.email_key = b.email_key THEN 5
  WHEN a.email_norm = b.email_norm THEN 4
  WHEN a.email_domain = b.email_domain
       AND (a.email_alpha = b.email_alpha OR a.email_nodot = b.email_nodot) THEN 0
  WHEN a.email_key_local = b.email_key_local AND length(a.email_key_local) >= 4
       AND abs(length(a.email_domain) - length(b.email_domain)) <= 1
       AND damerau_levenshtein(a.email_domain, b.email_domain) <= 1
       AND (a.first_norm IS NULL OR b.first_norm IS NULL OR a.first_canon = b.first_canon)
       AND (a.last_norm IS NULL OR b.last_norm IS NULL OR a.last_norm = b.last_norm)
       THEN 3
  WHEN a.email_key_local[1] = b.email_key_local[1]
       AND least(length(a.email_key_local), length(b.email_key_local)) >= 8
       AND a.email_digits = b.email_digits
       AND abs(length(a.email_key) - length(b.email_key)) <= 1
       AND damerau_levenshtein(a.email_key, b.email_key) <= 1
       THEN CASE
         -- names on both sides agree: the edit is a typo
         WHEN a.first_canon = b.first_canon AND a.last_norm = b.last_norm THEN 3
         -- a name on one side only: the edit may be a typo or a similar name (Sato/Saito)
         WHEN (a.first_norm IS NULL OR b.first_norm IS NULL)
              AND (a.last_norm IS NULL OR b.last_norm IS NULL) THEN 2
         -- names that differ by a letter explain the edit (Naoko/Naoki): different people
         ELSE 0 END
  WHEN a.email_local = b.email_local AND length(a.email_local) >= 5 THEN 1
  ELSE 0 END""",
        # people use a personal and a work address: different emails are weak evidence
        {5: 0.60, 4: 0.01, 3: 0.03, 2: 0.01, 1: 0.04, 0: 0.31},
        {5: 0.01, 4: 0.01, 3: 0.01, 2: 0.5, 1: 0.5, 0: 1.0},
        tf_level=5,
        tf_column="email_key",
        rare_levels=frozenset({5, 4, 3, 2, 1}),
        # the same local part at another domain mostly repeats the name (first.last@), and
        # Gmail dot variants are one mailbox yet often different people's habits: no evidence
        neutral_levels=frozenset({4, 1}),
    ),
    Comparison(
        "phone",
        """CASE
  WHEN a.phone_key IS NULL OR b.phone_key IS NULL THEN NULL
  WHEN a.phone_key = b.phone_key
       AND (a.phone_known IS NULL OR b.phone_known IS NULL OR a.phone_known = b.phone_known)
       THEN 2
  WHEN left(a.phone_key, 3) = left(b.phone_key, 3)
       AND damerau_levenshtein(a.phone_key, b.phone_key) <= 1 THEN 1
  ELSE 0 END""",
        {2: 0.75, 1: 0.05, 0: 0.20},
        {2: 0.01, 1: 0.05, 0: 1.0},
        tf_level=2,
        tf_column="phone_key",
        rare_levels=frozenset({2, 1}),
    ),
    Comparison(
        "first_name",
        _FIRST_LEVELS,
        {4: 0.82, 3: 0.08, 2: 0.05, 1: 0.02, 0: 0.03},
        {4: 0.01, 3: 0.003, 2: 0.01, 1: 0.02, 0: 0.95},
    ),
    Comparison(
        "last_name",
        """CASE
  WHEN a.last_any IS NULL OR b.last_any IS NULL THEN NULL
  WHEN a.last_any = b.last_any THEN 3
  WHEN a.first_any = b.last_any AND a.last_any = b.first_any THEN 3
  WHEN jaro_winkler_similarity(a.last_any, b.last_any) >= 0.90 THEN 2
  WHEN a.name_inferred OR b.name_inferred THEN NULL
  ELSE 0 END""",
        {3: 0.86, 2: 0.08, 0: 0.06},
        {3: 0.005, 2: 0.01, 0: 0.98},
        tf_level=3,
        tf_column="last_any",
    ),
    Comparison(
        "address",
        """CASE
  WHEN a.address_norm IS NULL OR b.address_norm IS NULL THEN NULL
  WHEN a.address_norm = b.address_norm
       AND (a.postal_norm IS NULL OR b.postal_norm IS NULL OR a.postal_norm = b.postal_norm)
       THEN 3
  WHEN jaro_winkler_similarity(a.address_norm, b.address_norm) >= 0.90
       AND a.postal_norm = b.postal_norm THEN 2
  WHEN a.postal_norm = b.postal_norm THEN 1
  ELSE 0 END""",
        {3: 0.55, 2: 0.12, 1: 0.06, 0: 0.27},
        {3: 0.02, 2: 0.05, 1: 0.005, 0: 0.99},
        tf_level=3,
        tf_column="address_norm",
        rare_levels=frozenset({3, 2}),
    ),
)

#: (kind, SQL key expression over the records, largest block kept)
BLOCKING_KEYS: tuple[tuple[str, str, int], ...] = (
    ("email", "email_norm", 200),
    ("phone", "phone_key", 200),
    ("name_postal", "last_norm || '|' || postal_norm", 60),
    ("full_name", "canon_any || '|' || last_any", 40),
    ("email_local", "CASE WHEN length(email_local) >= 5 THEN email_local END", 40),
    ("address", "address_norm || '|' || postal_norm", 60),
    ("email_head", "left(email_local, 6) || '@' || email_domain", 25),
    ("email_tail", "right(email_local, 6) || '@' || email_domain", 25),
    ("phone_name", "right(phone_key, 6) || '|' || last_norm", 40),
)


#: the record columns the blocking keys read
_BLOCKING_COLUMNS: tuple[str, ...] = (
    "email_norm",
    "email_local",
    "email_domain",
    "phone_key",
    "last_norm",
    "postal_norm",
    "canon_any",
    "last_any",
    "address_norm",
)


@dataclass
class ScoredPairs:
    """Candidate pairs with their evidence, score and decision, as parallel numpy arrays."""

    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    levels: dict[str, npt.NDArray[np.int8]]
    weight: npt.NDArray[np.float64]
    probability: npt.NDArray[np.float64]
    rule: npt.NDArray[np.int8]
    cannot_link: npt.NDArray[np.bool_]
    stats: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.left.shape[0])


#: decision codes of :attr:`ScoredPairs.rule`
RULE_NONE, RULE_EMAIL, RULE_PHONE, RULE_PROBABILISTIC, RULE_EMAIL_TYPO, RULE_UNIQUE_NAME = range(6)
RULE_NAMES: dict[int, str] = {
    RULE_EMAIL: "email_exact",
    RULE_EMAIL_TYPO: "email_one_edit",
    RULE_UNIQUE_NAME: "unique_full_name",
    RULE_PHONE: "phone_exact_name",
    RULE_PROBABILISTIC: "probabilistic",
}

#: level of a comparison where either side is missing (no evidence)
NULL_LEVEL = -1
_NULL_LEVEL = NULL_LEVEL
#: pseudo-counts blending the measured u with ``u_default`` (matters on small inputs only)
U_PSEUDO_PAIRS = 10_000.0
_TF_PSEUDO_RECORDS = 1_000.0

#: per-record helper columns the comparison levels read, computed from the match columns
DERIVED_COLUMNS_SQL = (
    "regexp_replace(email_key_local, '[0-9]+', '', 'g') AS email_alpha, "
    "replace(email_key_local, '.', '') AS email_nodot, "
    "regexp_replace(email_key_local, '[^0-9]+', '', 'g') AS email_digits"
)


#: frequency of the full name (canonical given name + family name) among records *other
#: than the pair compared*: two people called "Maria Garcia" are far more common than the
#: product of the two names' frequencies says, while a full name held by the pair alone
#: says nothing against it
_FULL_NAME = "(least(canon_any, last_any) || '|' || greatest(canon_any, last_any))"
_FULL_NAME_TF = (
    f"greatest(count({_FULL_NAME}) OVER (PARTITION BY {_FULL_NAME}) - 2, 0) / "
    f"(count({_FULL_NAME}) OVER () + {_TF_PSEUDO_RECORDS})::DOUBLE AS tf_full_name"
)


def levels_select() -> str:
    """SELECT list of every comparison's level (``lvl_<name>``) over records ``a`` and ``b``.

    ``a`` and ``b`` carry :data:`MATCH_COLUMNS` and the columns of
    :data:`DERIVED_COLUMNS_SQL`; a missing side gives :data:`NULL_LEVEL`.
    """
    return ",\n".join(
        f"coalesce(({c.levels_sql}), {NULL_LEVEL})::TINYINT AS lvl_{c.name}" for c in COMPARISONS
    )


_levels_select = levels_select


def _tf_select() -> str:
    return ",\n".join(
        f"CASE WHEN a.{c.tf_column} = b.{c.tf_column} THEN a.tf_{c.tf_column} END AS tf_{c.name}"
        for c in COMPARISONS
        if c.tf_column
    )


# --- population statistics, also for scale-out backends (lakehook.resolve.spark) ----------
#: SQL (DuckDB dialect) of the full-name key whose frequency ``tf_full_name`` counts
FULL_NAME_KEY_SQL = _FULL_NAME
#: pseudo-records added to every term-frequency denominator
TF_PSEUDO_RECORDS = _TF_PSEUDO_RECORDS
#: columns whose term frequencies the exact levels use
TF_COLUMNS: tuple[str, ...] = tuple(sorted({c.tf_column for c in COMPARISONS if c.tf_column}))
#: per-record columns measured over the whole population: ``tf_<col>`` (frequency),
#: ``n_<col>`` (count) per :data:`TF_COLUMNS`, and ``tf_full_name``
POPULATION_COLUMNS: tuple[str, ...] = (
    *(name for col in TF_COLUMNS for name in (f"tf_{col}", f"n_{col}")),
    "tf_full_name",
)


@dataclass(frozen=True)
class Calibration:
    """The population statistics scoring needs: its size, ``u`` per level, the prior.

    :class:`Matcher` measures them itself; a scale-out backend measures them over the
    whole population on its cluster, then scores partition by partition with
    ``Matcher(part, calibration=…)`` (records carrying :data:`POPULATION_COLUMNS`).
    """

    records: int
    u: dict[str, dict[int, float]]
    log2_prior: float


def sample_u_pairs(
    n: int, sample_pairs: int, seed: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None:
    """The random pairs ``(left, right)`` of rids ``u`` is measured on; None: every pair."""
    if n * (n - 1) // 2 <= sample_pairs:
        return None
    rng = np.random.default_rng(seed)
    left = rng.integers(0, n, size=sample_pairs, dtype=np.int64)
    right = rng.integers(0, n - 1, size=sample_pairs, dtype=np.int64)
    right = right + (right >= left)  # never a record with itself
    return left, right


def u_from_level_counts(
    counts: dict[str, dict[int, float]] | None, n: int
) -> dict[str, dict[int, float]]:
    """``u`` per level from the level counts of the sampled pairs (None: the priors)."""
    if counts is None:
        return {c.name: {lvl: c.default_u(lvl, n) for lvl in c.m} for c in COMPARISONS}
    u: dict[str, dict[int, float]] = {}
    for c in COMPARISONS:
        observed = counts.get(c.name, {})
        non_null = sum(v for k, v in observed.items() if k != _NULL_LEVEL)
        u[c.name] = {
            lvl: (observed.get(lvl, 0.0) + U_PSEUDO_PAIRS * c.default_u(lvl, n))
            / (non_null + U_PSEUDO_PAIRS)
            for lvl in c.m
        }
    return u


def log2_prior_odds(email_pairs: float, n: int) -> float:
    """log2 prior odds of a match from the number of pairs sharing an ``email_key``.

    Pairs sharing a normalised email are nearly all matches and occur in a known share
    ``m`` of matching pairs, so their count divided by that ``m`` estimates the number
    of matching pairs.
    """
    all_pairs = max(n * (n - 1) / 2, 1.0)
    m_email = next(c.m[5] for c in COMPARISONS if c.name == "email")
    expected = max(email_pairs / m_email, n * 0.05, 1.0)
    prior = min(expected / all_pairs, 0.5)
    return math.log2(prior / (1 - prior))


def derived_columns(email_key_local: pa.Array | pa.ChunkedArray) -> dict[str, pa.Array]:
    """The columns of :data:`DERIVED_COLUMNS_SQL`, computed with Arrow kernels (same RE2
    patterns): the local part without digits, without dots, and its digits alone."""
    local = (
        email_key_local.combine_chunks()
        if isinstance(email_key_local, pa.ChunkedArray)
        else email_key_local
    )
    return {
        "email_alpha": pc.replace_substring_regex(local, "[0-9]+", ""),
        "email_nodot": pc.replace_substring(local, ".", ""),
        "email_digits": pc.replace_substring_regex(local, "[^0-9]+", ""),
    }


def _value_counts(
    values: pa.Array | pa.ChunkedArray, mine: pa.Array | pa.ChunkedArray
) -> npt.NDArray[np.int64]:
    """For each of ``mine``, how many of ``values`` equal it (0 for a null)."""
    mine = mine.combine_chunks() if isinstance(mine, pa.ChunkedArray) else mine
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    wanted = pc.unique(mine.drop_null())
    kept = values.filter(pc.is_in(values, value_set=wanted))
    counted = pc.value_counts(kept)
    index = pc.index_in(mine, value_set=counted.field("values"))
    counts = pc.take(counted.field("counts"), index)
    return np.asarray(pc.fill_null(counts, 0).to_numpy(zero_copy_only=False), dtype=np.int64)


def matcher_connection(
    memory_limit: str = "2GB", threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection as :class:`Matcher` opens one by default.

    Args:
        memory_limit: DuckDB's memory cap; beyond it DuckDB spills to a temp folder.
        threads: DuckDB threads (default: one per core).
    """
    return duckdb.connect(
        config={
            # spill rather than grow: a million records must fit next to the lake's work
            "memory_limit": memory_limit,
            "temp_directory": str(Path(tempfile.gettempdir()) / "lakehook-resolve-spill"),
            "preserve_insertion_order": False,
            **({"threads": threads} if threads else {}),
        }
    )


class Matcher:
    """Blocking and scoring over one set of normalised records held in DuckDB.

    Args:
        records: Normalised records (:func:`~lakehook.resolve.normalize.normalize_records`)
            with an int64 ``rid`` column numbering them 0..n-1.
        match_threshold: Posterior probability from which a pair is a match.
        u_sample_pairs: Random pairs drawn to measure the ``u`` probabilities.
        seed: Seed of that sample, so that a rerun scores identically.
        memory_limit: DuckDB's memory cap; beyond it DuckDB spills to a temp folder.
        connection: DuckDB connection to use (a fresh in-memory one by default).
        calibration: Population statistics measured elsewhere (a scale-out backend):
            ``records`` then carry :data:`POPULATION_COLUMNS` and may be any part of
            the population; nothing is measured here.
        statistics: ``u`` level counts of the population
            (:class:`~lakehook.resolve.statistics.PopulationStatistics`, kept between
            runs); term frequencies and the prior are still measured on ``records``.
            Without it (and without ``calibration``) ``u`` is measured on
            ``u_sample_pairs`` random pairs drawn with ``seed``.
        threads: DuckDB threads (default: one per core). One is faster for the small
            queries of an incremental run; results do not depend on it.
    """

    def __init__(
        self,
        records: pa.Table,
        *,
        match_threshold: float = 0.95,
        u_sample_pairs: int = 500_000,
        seed: int = 20261126,
        memory_limit: str = "2GB",
        connection: duckdb.DuckDBPyConnection | None = None,
        calibration: Calibration | None = None,
        statistics: PopulationStatistics | None = None,
        threads: int | None = None,
    ) -> None:
        self.db = connection or matcher_connection(memory_limit, threads)
        self.n = records.num_rows if calibration is None else calibration.records
        self.match_threshold = match_threshold
        self.phone_only_probability = 0.1
        #: the unique-name rule still needs the scorer's support: on 166k simulator records
        #: its pairs below 0.5 were 58% right, those above 78%
        self.unique_name_probability = 0.5
        given = POPULATION_COLUMNS if calibration is not None else ()
        self._population_given = bool(given)
        # the records are read in place (Arrow, no copy); the columns scoring adds (derived,
        # term frequencies) are computed for the records of the pairs scored only
        self._records = records.select([*MATCH_COLUMNS, *given])
        self._full_name_keys: pa.Array | None = None
        self._rid_is_position: bool | None = None
        self._block_keys = False
        self.db.register("recs", self._records)
        self._blocked = False
        if calibration is not None:
            self.u, self.log2_prior = calibration.u, calibration.log2_prior
        else:
            if statistics is not None:
                self.u = statistics.u_probabilities()
            else:
                self.u = self._measure_u(u_sample_pairs, seed)
            self.log2_prior = self._estimate_prior()

    def calibration(self) -> Calibration:
        """The population statistics this matcher scores with."""
        return Calibration(records=self.n, u=self.u, log2_prior=self.log2_prior)

    def level_counts(self, pairs: pa.Table) -> dict[str, dict[int, float]]:
        """How many of ``pairs`` (int64 rids ``l``, ``r``) fall in each comparison level."""
        self.db.register("counted_pairs", pairs)
        try:
            counts, _ = self._level_counts("SELECT l, r FROM counted_pairs")
        finally:
            self.db.unregister("counted_pairs")
        return counts

    # ------------------------------------------------------------------ population
    def _scoring(self, rids: npt.NDArray[np.int64] | None) -> None:
        """View ``scoring``: the records ``rids`` (all: None) with the derived columns
        (:func:`derived_columns`) and :data:`POPULATION_COLUMNS`.

        A term frequency is the count of the record's value among *all* records over the
        count of all non-null values (+ :data:`TF_PSEUDO_RECORDS`); ``tf_full_name`` leaves
        out the pair compared (count - 2). Only the values of the chosen records are
        counted (Arrow kernels), so scoring a few pairs does not pass over every record
        in DuckDB.
        """
        if rids is not None and rids.shape[0] == self._records.num_rows and self._rids_in_order():
            rids = None  # every record, in order: no copy to take
        positions = None if rids is None else pa.array(self._positions(rids))
        chosen = self._records if positions is None else self._records.take(positions)
        if not self._population_given:
            population: dict[str, pa.Array] = {}
            for name in (*TF_COLUMNS, "full_name"):
                values = self._full_names() if name == "full_name" else self._records.column(name)
                mine = values if positions is None else values.take(positions)
                counts = _value_counts(values, mine)
                total = float(pc.count(values).as_py()) + _TF_PSEUDO_RECORDS
                if name == "full_name":
                    population["tf_full_name"] = pa.array(np.maximum(counts - 2, 0) / total)
                else:
                    population[f"tf_{name}"] = pa.array(counts / total)
                    population[f"n_{name}"] = pa.array(counts)
            for column in POPULATION_COLUMNS:
                chosen = chosen.append_column(column, population[column])
        for name, column in derived_columns(chosen.column("email_key_local")).items():
            chosen = chosen.append_column(name, column)
        # a native table: the levels query joins it twice, and DuckDB may spill it
        self.db.register("scoring_arrow", chosen)
        self.db.execute("CREATE OR REPLACE TEMP TABLE scoring AS SELECT * FROM scoring_arrow")
        self.db.unregister("scoring_arrow")

    def _positions(self, rids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Row positions of ``rids`` in the records (the rids themselves when they are
        0..n-1, as :func:`~lakehook.resolve.core.resolve_identities` numbers them)."""
        if self._rids_in_order():
            return rids
        found = pc.index_in(pa.array(rids), value_set=self._records.column("rid"))
        return np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)

    def _rids_in_order(self) -> bool:
        """Whether the rid of each record is its position (0..n-1)."""
        if self._rid_is_position is None:
            column = np.asarray(self._records.column("rid").to_numpy(), dtype=np.int64)
            self._rid_is_position = bool(
                np.array_equal(column, np.arange(column.shape[0], dtype=np.int64))
            )
        return self._rid_is_position

    def _rids_of(self, sql: str) -> npt.NDArray[np.int64]:
        """The sorted distinct rids a query returns (column ``rid``)."""
        rids = self.db.sql(sql).to_arrow_table().column("rid").to_numpy()
        return np.unique(np.asarray(rids, dtype=np.int64))

    def _full_names(self) -> pa.Array:
        """The full-name key of every record (:data:`FULL_NAME_KEY_SQL`), computed once."""
        if self._full_name_keys is None:
            first = self._records.column("canon_any").combine_chunks()
            last = self._records.column("last_any").combine_chunks()
            # like DuckDB's least/greatest: a null side is skipped ('x|x' for one name)
            lower = pc.min_element_wise(first, last, skip_nulls=True)
            upper = pc.max_element_wise(first, last, skip_nulls=True)
            self._full_name_keys = pc.binary_join_element_wise(lower, upper, "|")
        return self._full_name_keys

    # ------------------------------------------------------------------ calibration
    def _level_counts(self, pairs_sql: str) -> tuple[dict[str, dict[int, float]], int]:
        self.db.execute(f"CREATE OR REPLACE TEMP TABLE level_pairs AS {pairs_sql}")
        self._scoring(
            self._rids_of("SELECT l AS rid FROM level_pairs UNION SELECT r FROM level_pairs")
        )
        rel = self.db.sql(
            f"""SELECT {_levels_select()} FROM level_pairs p
                JOIN scoring a ON a.rid = p.l JOIN scoring b ON b.rid = p.r"""
        )
        table = rel.to_arrow_table()
        self.db.execute("DROP TABLE IF EXISTS level_pairs; DROP TABLE IF EXISTS scoring")
        total = table.num_rows
        counts: dict[str, dict[int, float]] = {}
        for c in COMPARISONS:
            values, freq = np.unique(
                np.asarray(table.column(f"lvl_{c.name}").to_numpy(), dtype=np.int64),
                return_counts=True,
            )
            counts[c.name] = {int(v): float(f) for v, f in zip(values, freq, strict=True)}
        return counts, total

    def _measure_u(self, sample_pairs: int, seed: int) -> dict[str, dict[int, float]]:
        """u per level: its share among random pairs of the records being resolved."""
        n = self.n
        if n < 2:
            return u_from_level_counts(None, n)
        sample = sample_u_pairs(n, sample_pairs, seed)
        if sample is None:
            pairs_sql = (
                f"SELECT a.i AS l, b.i AS r FROM range({n}) a(i), range({n}) b(i) WHERE a.i < b.i"
            )
        else:
            self.db.register("u_pairs", pa.table({"l": sample[0], "r": sample[1]}))
            pairs_sql = "SELECT l, r FROM u_pairs"
        counts, _ = self._level_counts(pairs_sql)
        return u_from_level_counts(counts, n)

    def _estimate_prior(self) -> float:
        """log2 prior odds that a random pair is a match.

        Pairs sharing a normalised email are nearly all matches and occur in a known
        share ``m`` of matching pairs, so their count divided by that ``m`` estimates
        the number of matching pairs.
        """
        row = self.db.sql(
            "SELECT coalesce(sum(c * (c - 1) / 2), 0) FROM "
            "(SELECT count(*) AS c FROM recs WHERE email_key IS NOT NULL GROUP BY email_key)"
        ).fetchone()
        email_pairs = float(row[0]) if row else 0.0
        return log2_prior_odds(email_pairs, self.n)

    # ------------------------------------------------------------------ blocking
    def _block(self) -> None:
        """The blocking index, built once per matcher: ``kept`` (rid, kind, key) rows of
        every block within its cap."""
        if self._blocked:
            return
        # the blocking columns once into DuckDB (the union below scans them nine times)
        columns = ", ".join(_BLOCKING_COLUMNS)
        self.db.execute(f"CREATE OR REPLACE TEMP TABLE brecs AS SELECT rid, {columns} FROM recs")
        selects = " UNION ALL ".join(
            f"SELECT rid, '{kind}' AS kind, {expr} AS k, {cap} AS cap FROM brecs "
            f"WHERE {expr} IS NOT NULL"
            for kind, expr, cap in BLOCKING_KEYS
        )
        self.db.execute(f"CREATE OR REPLACE TEMP TABLE keys AS {selects}")
        self.db.execute("DROP TABLE IF EXISTS brecs")
        self.db.execute(
            """CREATE OR REPLACE TEMP TABLE blocks AS
               SELECT kind, k FROM keys GROUP BY kind, k, cap
               HAVING count(*) BETWEEN 2 AND any_value(cap)"""
        )
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE kept AS SELECT keys.rid, keys.kind, keys.k "
            "FROM keys SEMI JOIN blocks USING (kind, k)"
        )
        self.db.execute("DROP TABLE IF EXISTS keys; DROP TABLE IF EXISTS blocks")
        self._blocked = True

    def candidate_pairs(
        self, focus: npt.NDArray[np.int64] | None = None, *, within: bool = False
    ) -> pa.Table:
        """Distinct candidate pairs ``(l, r)`` with ``l < r`` from all blocking keys.

        Args:
            focus: When given, only pairs with at least one record among these rids
                (incremental resolution: new and changed records against everything).
            within: With ``focus``, only pairs whose *both* records are among them.

        Returns:
            An Arrow table of int64 columns ``l`` and ``r``.
        """
        if focus is None:
            self._block()
            return self.db.sql(
                """SELECT DISTINCT a.rid AS l, b.rid AS r FROM kept a JOIN kept b
                   ON a.kind = b.kind AND a.k = b.k AND a.rid < b.rid"""
            ).to_arrow_table()
        # only the blocks the focus records are in: every record holding one of their keys
        # (a block's size counts all records), the blocks within their cap
        if not self._block_keys:
            keys = ", ".join(f"{expr} AS k{i}" for i, (_, expr, _) in enumerate(BLOCKING_KEYS))
            self.db.execute(f"CREATE OR REPLACE TEMP TABLE bkeys AS SELECT rid, {keys} FROM recs")
            self._block_keys = True
        self.db.register("focus_arrow", pa.table({"rid": focus}))
        # the focus records' keys once (nine scans of the few, not nine joins of all)
        self.db.execute(
            "CREATE OR REPLACE TEMP TABLE fkeys AS SELECT * FROM bkeys SEMI JOIN focus_arrow "
            "USING (rid)"
        )
        holders = " UNION ALL ".join(
            f"SELECT rid, '{kind}' AS kind, k{i} AS k, {cap} AS cap FROM bkeys WHERE k{i} IN "
            f"(SELECT k{i} FROM fkeys WHERE k{i} IS NOT NULL)"
            for i, (kind, _, cap) in enumerate(BLOCKING_KEYS)
        )
        self.db.execute(
            f"""CREATE OR REPLACE TEMP TABLE fkept AS
                WITH h AS ({holders}),
                ok AS (SELECT kind, k FROM h GROUP BY kind, k
                       HAVING count(*) BETWEEN 2 AND any_value(cap))
                SELECT h.rid, h.kind, h.k FROM h SEMI JOIN ok USING (kind, k)"""
        )
        if within:
            sql = """WITH f AS (SELECT * FROM fkept SEMI JOIN focus_arrow USING (rid))
                     SELECT DISTINCT a.rid AS l, b.rid AS r FROM f a JOIN f b
                     ON a.kind = b.kind AND a.k = b.k AND a.rid < b.rid"""
        else:
            sql = """WITH f AS (SELECT * FROM fkept SEMI JOIN focus_arrow USING (rid))
                     SELECT DISTINCT least(f.rid, o.rid) AS l, greatest(f.rid, o.rid) AS r
                     FROM f JOIN fkept o ON f.kind = o.kind AND f.k = o.k AND f.rid <> o.rid"""
        pairs = self.db.sql(sql).to_arrow_table()
        self.db.execute("DROP TABLE IF EXISTS fkept; DROP TABLE IF EXISTS fkeys")
        self.db.unregister("focus_arrow")
        return pairs

    # ------------------------------------------------------------------ scoring
    def score(self, pairs: pa.Table) -> ScoredPairs:
        """Evidence, weight, match probability and decision for each candidate pair."""
        self.db.register("cand", pairs)
        self._scoring(self._rids_of("SELECT l AS rid FROM cand UNION SELECT r FROM cand"))
        table = self.db.sql(
            f"""SELECT p.l, p.r, {_levels_select()}, {_tf_select()},
                       a.n_phone_key AS phone_users,
                       a.tf_full_name AS tf_full_name
                FROM cand p JOIN scoring a ON a.rid = p.l JOIN scoring b ON b.rid = p.r"""
        ).to_arrow_table()
        self.db.execute("DROP TABLE IF EXISTS scoring")
        self.db.unregister("cand")
        levels = {
            c.name: np.asarray(table.column(f"lvl_{c.name}").to_numpy(), dtype=np.int8)
            for c in COMPARISONS
        }
        weight = np.full(table.num_rows, self.log2_prior, dtype=np.float64)
        for c in COMPARISONS:
            lvl = levels[c.name]
            for level, m in c.m.items():
                if level in c.neutral_levels:
                    continue
                mask = lvl == level
                if c.tf_level == level:
                    tf = np.asarray(
                        table.column(f"tf_{c.name}").fill_null(1.0).to_numpy(), dtype=np.float64
                    )
                    u = np.maximum(tf[mask], self.u[c.name][level])
                    weight[mask] += np.log2(m / u)
                else:
                    weight[mask] += math.log2(m / self.u[c.name][level])
        first, last = levels["first_name"], levels["last_name"]
        weight += self._full_name_correction(first, last, table)
        probability = 1.0 / (1.0 + np.exp2(-np.clip(weight, -60, 60)))

        names_conflict = first == 0
        # no name conflict: given names compatible or unknown, family names equal/close/unknown
        names_compatible = (first != 0) & (last != 0)
        phone_users = np.asarray(table.column("phone_users").fill_null(0).to_numpy())
        rule = np.zeros(table.num_rows, dtype=np.int8)
        rule[(probability >= self.match_threshold) & ~names_conflict] = RULE_PROBABILISTIC
        names_agree = (first >= 2) & (last >= 2)
        rule[
            (levels["phone"] == 2)
            & (phone_users <= 3)
            & names_compatible
            & (
                names_agree
                # a nameless side: a switchboard shared by colleagues looks the same, so the
                # streets must not disagree and the scorer must not be against it
                | (
                    (probability >= self.phone_only_probability)
                    & ((levels["address"] >= 2) | (levels["address"] == _NULL_LEVEL))
                )
            )
        ] = RULE_PHONE
        # a one-edit email links only when the names say nothing else (a name that differs
        # by a letter, Naoko/Naoki, explains the edit)
        names_exact = ((first >= 3) | (first == _NULL_LEVEL)) & (
            (last == 3) | (last == _NULL_LEVEL)
        )
        # a full name nobody else holds, on two records whose phones and streets do not
        # disagree (one side lacks them, as HubSpot contacts lack addresses): the same person
        # far more often than two strangers
        tf_full = np.asarray(table.column("tf_full_name").fill_null(-1.0).to_numpy())
        unique_name = (
            (first == 4)
            & (last == 3)
            & (tf_full == 0)
            & ((levels["phone"] == 2) | (levels["phone"] == _NULL_LEVEL))
            & ((levels["address"] >= 2) | (levels["address"] == _NULL_LEVEL))
            & (probability >= self.unique_name_probability)
        )
        rule[unique_name & (rule == RULE_NONE)] = RULE_UNIQUE_NAME
        rule[(levels["email"] == 3) & names_exact] = RULE_EMAIL_TYPO
        rule[(levels["email"] == 5) & ~names_conflict] = RULE_EMAIL
        return ScoredPairs(
            left=np.asarray(table.column("l").to_numpy(), dtype=np.int64),
            right=np.asarray(table.column("r").to_numpy(), dtype=np.int64),
            levels=levels,
            weight=weight,
            probability=probability,
            rule=rule,
            cannot_link=names_conflict,
            stats={"log2_prior": self.log2_prior},
        )

    def _full_name_correction(
        self,
        first: npt.NDArray[np.int8],
        last: npt.NDArray[np.int8],
        table: pa.Table,
    ) -> npt.NDArray[np.float64]:
        """Replace the two names' separate weights by one weight from the full name's TF."""
        correction = np.zeros(first.shape[0], dtype=np.float64)
        first_cmp = next(c for c in COMPARISONS if c.name == "first_name")
        last_cmp = next(c for c in COMPARISONS if c.name == "last_name")
        tf_full = np.asarray(table.column("tf_full_name").fill_null(-1.0).to_numpy())
        tf_last = np.asarray(table.column("tf_last_name").fill_null(1.0).to_numpy())
        u_last = np.maximum(tf_last, self.u["last_name"][3])
        for level in (4, 3):
            mask = (first == level) & (last == 3) & (tf_full >= 0)
            if not mask.any():
                continue
            m_both = first_cmp.m[level] * last_cmp.m[3]
            separate = np.log2(first_cmp.m[level] / self.u["first_name"][level]) + np.log2(
                last_cmp.m[3] / u_last[mask]
            )
            u_both = np.maximum(tf_full[mask], self.u["first_name"][level] * u_last[mask] * 0.5)
            correction[mask] = np.log2(m_both / u_both) - separate
        return correction

    def close(self) -> None:
        """Release the DuckDB connection."""
        self.db.close()
