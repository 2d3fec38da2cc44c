"""Batch models: what a model is, its declared config, and the project of all models.

A model builds ONE target table. SQL models are files under ``sql/01_staging`` …
``sql/05_marts`` whose header comment declares the config::

    -- target: staging.stg_stripe_charges
    -- strategy: merge
    -- keys: charge_id
    -- order_by: _source_occurred_at, _source_log_offset
    -- partition_by: month(created_at)
    -- description: Stripe charges, latest state per charge.

Python models (the semantic layer's entity resolution) declare the same config in code and
compute an Arrow table from relations the engine already holds. :func:`load_project` reads
every model, derives each model's inputs from the tables its SQL references (sqlglot), and
orders them so that every model runs after the models it reads.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import sqlglot
from sqlglot import exp

from lakehook.errors import ConfigurationError
from lakehook.resources import sql_root

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehook.transform.engine import BatchEngine

#: layers in data-flow order, with the folder of their SQL models
LAYERS: tuple[str, ...] = ("staging", "semantic", "core", "analytics", "marts")
LAYER_FOLDERS: dict[str, str] = {
    "staging": "01_staging",
    "semantic": "02_semantic",
    "core": "03_core",
    "analytics": "04_analytics",
    "marts": "05_marts",
}
#: namespaces a model may read without a model producing them
SOURCE_NAMESPACES: frozenset[str] = frozenset({"raw", "ref"})

Strategy = Literal["append", "merge", "overwrite"]
Incremental = Literal["delta", "affected_keys", "full"]

#: the column every lakehook table carries: when the lake committed the row; it is also
#: the watermark column downstream models read their deltas by
LOADED_AT = "_loaded_at"

_CONFIG_LINE = re.compile(r"^--\s*([a-z_]+)\s*:\s*(.*?)\s*$")
_PARTITION = re.compile(r"^(month|day|identity)\((\w+)\)$")


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """The declared config of one model.

    Attributes:
        target: ``namespace.table`` the model builds.
        strategy: ``overwrite`` (replace the table), ``merge`` (candidates replace target
            rows with the same keys; with ``order_by`` the newest of target and candidate
            wins) or ``append`` (add rows whose keys are new).
        keys: columns identifying a row (the merge keys).
        order_by: columns ordering versions of a row, newest = greatest (merge only).
        incremental: how an incremental run reads inputs: ``delta`` (only rows newer than
            the watermark), ``affected_keys`` (every row of the keys found in the delta,
            see ``affected_by``) or ``full`` (everything; the model is cheap).
        affected_by: input columns naming the keys an ``affected_keys`` model recomputes.
        keep_first: columns a merge keeps the earliest value of (merge with ``order_by``):
            the newest version of a row wins, except that these columns take the least
            value of every version seen, so a late-arriving older version still lowers
            them (a Shopify guest record is created by its first order).
        partition_by: ``(transform, column)`` pairs, e.g. ``("month", "created_at")``.
        description: one line for the catalog and the docs.
    """

    target: str
    strategy: Strategy = "overwrite"
    keys: tuple[str, ...] = ()
    order_by: tuple[str, ...] = ()
    incremental: Incremental = "full"
    affected_by: tuple[str, ...] = ()
    keep_first: tuple[str, ...] = ()
    partition_by: tuple[tuple[str, str], ...] = ()
    description: str = ""

    @property
    def layer(self) -> str:
        return self.target.split(".", 1)[0]

    @property
    def table_name(self) -> str:
        return self.target.split(".", 1)[1]

    def validate(self) -> None:
        """Raise ConfigurationError when the config cannot be run."""
        if self.target.count(".") != 1:
            raise ConfigurationError(f"model target must be namespace.table: {self.target!r}")
        if self.strategy in ("merge", "append") and not self.keys:
            raise ConfigurationError(f"{self.target}: strategy {self.strategy} needs keys")
        if self.order_by and self.strategy != "merge":
            raise ConfigurationError(f"{self.target}: order_by only applies to merge")
        if self.keep_first and not self.order_by:
            raise ConfigurationError(f"{self.target}: keep_first needs a merge with order_by")
        if self.incremental == "affected_keys" and not self.affected_by:
            raise ConfigurationError(
                f"{self.target}: incremental {self.incremental} needs affected_by"
            )
        if self.incremental != "full" and self.strategy == "overwrite":
            raise ConfigurationError(
                f"{self.target}: an overwrite model recomputes everything; use incremental: full"
            )


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_config(sql: str, *, origin: str) -> ModelConfig:
    """Read the ``-- key: value`` header of a SQL model.

    Args:
        sql: the model's text; the header is the leading block of ``--`` lines.
        origin: where the text came from, for error messages.

    Returns:
        The validated config.

    Raises:
        ConfigurationError: unknown key, bad value or missing target.
    """
    values: dict[str, str] = {}
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        match = _CONFIG_LINE.match(stripped)
        if match and match.group(1) in _CONFIG_KEYS:
            values[match.group(1)] = match.group(2)
    if "target" not in values:
        raise ConfigurationError(f"{origin}: the header declares no '-- target: ns.table'")
    partition_by: list[tuple[str, str]] = []
    for part in _split_list(values.get("partition_by", "")):
        spec = _PARTITION.match(part)
        if not spec:
            raise ConfigurationError(f"{origin}: bad partition_by {part!r} (month(col) …)")
        partition_by.append((spec.group(1), spec.group(2)))
    strategy = values.get("strategy", "overwrite")
    incremental = values.get("incremental", "delta" if strategy != "overwrite" else "full")
    if strategy not in ("append", "merge", "overwrite"):
        raise ConfigurationError(f"{origin}: unknown strategy {strategy!r}")
    if incremental not in ("delta", "affected_keys", "full"):
        raise ConfigurationError(f"{origin}: unknown incremental {incremental!r}")
    config = ModelConfig(
        target=values["target"],
        strategy=strategy,  # type: ignore[arg-type]
        keys=_split_list(values.get("keys", "")),
        order_by=_split_list(values.get("order_by", "")),
        incremental=incremental,  # type: ignore[arg-type]
        affected_by=_split_list(values.get("affected_by", "")),
        keep_first=_split_list(values.get("keep_first", "")),
        partition_by=tuple(partition_by),
        description=values.get("description", ""),
    )
    try:
        config.validate()
    except ConfigurationError as exc:
        raise ConfigurationError(f"{origin}: {exc}") from exc
    return config


_CONFIG_KEYS = frozenset(
    {
        "target",
        "strategy",
        "keys",
        "order_by",
        "incremental",
        "affected_by",
        "keep_first",
        "partition_by",
        "description",
    }
)


def referenced_tables(sql: str) -> tuple[str, ...]:
    """Qualified tables (``namespace.table``) a SQL model reads, CTE names excluded."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        raise ConfigurationError(f"cannot parse model SQL: {exc}") from exc
    names = {
        f"{table.db}.{table.name}" for table in tree.find_all(exp.Table) if table.db and table.name
    }
    return tuple(sorted(names))


@dataclass(frozen=True)
class Model:
    """One model: its config, the inputs it reads, and how it computes its rows.

    Exactly one of ``sql`` and ``compute`` is set. ``compute`` receives the engine with
    every input registered under its qualified name and returns the model's rows.
    """

    config: ModelConfig
    inputs: tuple[str, ...]
    sql: str | None = None
    compute: Callable[[BatchEngine], pa.Table] | None = None
    path: Path | None = None
    version: str = field(default="")

    @property
    def target(self) -> str:
        return self.config.target

    @property
    def kind(self) -> str:
        return "sql" if self.sql is not None else "python"


@functools.lru_cache(maxsize=512)
def _parsed_sql_model(text: str, origin: str) -> tuple[ModelConfig, tuple[str, ...]]:
    """A SQL model's config and inputs, parsed once per text and process.

    Parsing every model with sqlglot costs 0.04-0.13 s a run; a process that runs the
    batch more than once (``lakehook run --every``, the benchmark's full then incremental
    run) parses each model text once. The key is the text itself, so an edited file is
    parsed again; errors are not cached.
    """
    config = parse_config(text, origin=origin)
    inputs = tuple(name for name in referenced_tables(text) if name != config.target)
    return config, inputs


def sql_model(path: Path) -> Model:
    """Build a model from a SQL file."""
    text = path.read_text(encoding="utf-8")
    config, inputs = _parsed_sql_model(text, str(path))
    return Model(
        config=config,
        inputs=inputs,
        sql=text,
        path=path,
        version=hashlib.sha256(text.encode()).hexdigest()[:16],
    )


def python_model(
    config: ModelConfig,
    inputs: Sequence[str],
    compute: Callable[[BatchEngine], pa.Table],
    *,
    version: str,
) -> Model:
    """Build a Python model (e.g. entity resolution) from its config and function.

    Args:
        config: the declared config, as for SQL models.
        inputs: qualified tables the function reads through the engine.
        compute: returns the model's rows; inputs are registered under their names.
        version: changes when the logic changes, so incremental runs rebuild.

    Returns:
        The model.
    """
    config.validate()
    return Model(config=config, inputs=tuple(inputs), compute=compute, version=version)


@dataclass(frozen=True)
class Project:
    """Every model, in an order where each runs after the models it reads."""

    models: tuple[Model, ...]

    def by_target(self) -> dict[str, Model]:
        return {model.target: model for model in self.models}

    def select(self, layer: str = "all", table: str | None = None) -> list[Model]:
        """Models of one layer (or all), or the one model building ``table``.

        ``table`` may be qualified (``core.orders``) or bare (``orders``).
        """
        chosen = [m for m in self.models if layer == "all" or m.config.layer == layer]
        if table is not None:
            chosen = [m for m in chosen if table in (m.target, m.config.table_name)]
            if not chosen:
                raise ConfigurationError(f"no model builds {table!r} (layer {layer})")
        return chosen


def order_models(models: Iterable[Model]) -> tuple[Model, ...]:
    """Sort models so each one comes after every model that produces one of its inputs.

    Ties keep layer order, then target name, so runs are reproducible.
    """
    by_target: dict[str, Model] = {}
    for model in models:
        if model.target in by_target:
            raise ConfigurationError(f"two models build {model.target}")
        by_target[model.target] = model
    graph: dict[str, set[str]] = {}
    for target, model in by_target.items():
        missing = [
            name
            for name in model.inputs
            if name not in by_target and name.split(".", 1)[0] not in SOURCE_NAMESPACES
        ]
        if missing:
            raise ConfigurationError(f"{target} reads {', '.join(missing)}, which no model builds")
        graph[target] = {name for name in model.inputs if name in by_target}
    sorter = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError as exc:
        raise ConfigurationError(f"models depend on each other in a cycle: {exc.args[1]}") from exc
    layer_rank = {layer: rank for rank, layer in enumerate(LAYERS)}

    def rank(target: str) -> tuple[int, str]:
        return (layer_rank.get(target.split(".", 1)[0], 99), target)

    ordered: list[Model] = []
    ready: list[tuple[int, str]] = []
    while sorter.is_active():
        ready.extend(rank(t) for t in sorter.get_ready())
        ready.sort()
        _, target = ready.pop(0)  # earliest layer first, then name: reproducible runs
        ordered.append(by_target[target])
        sorter.done(target)
    return tuple(ordered)


def _declares_target(path: Path) -> bool:
    head = path.read_text(encoding="utf-8")[:2000]
    return any(_CONFIG_LINE.match(line.strip()) and "target" in line for line in head.splitlines())


def default_sql_root() -> Path:
    """The ``sql/`` folder lakehook ships (checkout or installed copy, see ``resources``)."""
    return sql_root()


def load_project(sql_root: Path | None = None, extra: Iterable[Model] | None = None) -> Project:
    """Read every SQL model of the layer folders, add Python models, order them.

    Args:
        sql_root: folder holding ``01_staging`` … ``05_marts``; default the checkout's.
        extra: Python models (default: the semantic layer's, see ``transform.identity``);
            one whose target a SQL model also builds replaces the SQL one.

    Returns:
        The ordered project.
    """
    root = sql_root or default_sql_root()
    if not root.is_dir():
        raise ConfigurationError(
            f"no SQL models at {root}: set LAKEHOOK_SQL_DIR, or run lakehook from its checkout "
            "or from a wheel (which installs them under <prefix>/share/lakehook/sql)"
        )
    models: dict[str, Model] = {}
    for layer in LAYERS:
        folder = root / LAYER_FOLDERS[layer]
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.sql")):
            if layer == "semantic" and not _declares_target(path):
                continue  # the semantic layer may keep DDL or helpers beside its models
            model = sql_model(path)
            if model.config.layer != layer:
                raise ConfigurationError(f"{path}: target {model.target} is not in layer {layer}")
            models[model.target] = model
    if extra is None:
        from lakehook.transform.identity import semantic_models

        extra = semantic_models()
    for model in extra:
        models[model.target] = model
    return Project(with_lineage_versions(order_models(models.values())))


def with_lineage_versions(ordered: Sequence[Model]) -> tuple[Model, ...]:
    """The models, each with a version that also changes when a model it reads changes.

    A model's own version follows its logic only; an incremental run keeps a table built
    by the same version. When a model upstream changes (a money column goes from 2 to 3
    decimal places, a filter is fixed), every table built from it is stale too, although
    its own SQL is the same: its version here folds in the versions of the models and
    reference tables it reads, so the next run rebuilds the whole chain in full.

    Args:
        ordered: models in dependency order (:func:`order_models`).

    Returns:
        The same models, in the same order, with lineage versions.
    """
    from lakehook.transform.reference import reference_version

    versions: dict[str, str] = {}
    result: list[Model] = []
    for model in ordered:
        parts = [model.version]
        for name in sorted(model.inputs):
            upstream = versions.get(name) or reference_version(name)
            if upstream is not None:
                parts.append(f"{name}={upstream}")
        version = (
            model.version
            if len(parts) == 1
            else hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
        )
        versions[model.target] = version
        result.append(dataclasses.replace(model, version=version))
    return tuple(result)
