"""Entity resolution benchmark: quality, id stability and scale, against Splink in one run.

Usage::

    .venv/bin/python benchmarks/entity_resolution.py quality   [--people 20000] [--splink]
    .venv/bin/python benchmarks/entity_resolution.py stability [--people 20000]
    .venv/bin/python benchmarks/entity_resolution.py scale     [--records 1000000] [--engine E]

``quality`` prints pairwise precision, recall and F1 over source records on simulator data
(default noise) and the confusion per kind of noise; with ``--splink`` the same records go
through Splink's DuckDB linker (default-style model: EM-trained, threshold 0.95) in the
same run. ``stability`` reruns on unchanged input and after adding 10% new records.
``scale`` resolves N source records in a child process and reports wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lakehook.datagen import SimulationConfig, generate_population
from lakehook.resolve.core import Mode, resolve_identities

START = datetime(2026, 1, 1, tzinfo=UTC)
#: simulator records per person at the default mix (measured: ~1.66)
RECORDS_PER_PERSON = 1.66


def simulator_records(
    people: int, seed: int = 7, noise: dict[str, float] | None = None
) -> pa.Table:
    """Simulator source records in the staging contract's columns, plus truth columns."""
    from dataclasses import replace

    config = SimulationConfig(seed=seed, people=people, events=0)
    if noise:
        config = replace(config, noise=replace(config.noise, **noise))
    population = generate_population(config)
    source = population.source_records()
    n = source.num_rows
    created = pa.array(
        [START + timedelta(seconds=i * 37) for i in range(n)], pa.timestamp("us", tz="UTC")
    )
    return pa.table(
        {
            "source_system": source.column("source_system"),
            "source_id": source.column("source_id"),
            "email": source.column("email"),
            "phone": source.column("phone"),
            "first_name": source.column("first_name"),
            "last_name": source.column("last_name"),
            "company": source.column("company"),
            "address_line1": source.column("address1"),
            "city": source.column("city"),
            "postal_code": source.column("zip"),
            "country_code": source.column("country_code"),
            "created_at": created,
            "updated_at": created,
            "person_id": source.column("person_id"),
            "noise_kinds": source.column("noise_kinds"),
        }
    )


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_quality(
    keys: list[tuple[str, str]],
    truth: list[str],
    predicted: list[str],
    noise: list[list[str]] | None = None,
) -> dict[str, Any]:
    """Pairwise precision/recall/F1 and false pairs per noise kind."""
    cells: Counter[tuple[str, str]] = Counter(zip(predicted, truth, strict=True))
    tp = sum(_pairs(c) for c in cells.values())
    pred = sum(_pairs(c) for c in Counter(predicted).values())
    true = sum(_pairs(c) for c in Counter(truth).values())
    precision = tp / pred if pred else 1.0
    recall = tp / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out: dict[str, Any] = {
        "records": len(keys),
        "true_pairs": true,
        "predicted_pairs": pred,
        "true_positive_pairs": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }
    if noise is None:
        return out
    # confusion by noise kind: false-negative pairs (same person, split) and
    # false-positive pairs (different people, merged) touching a record with that kind
    by_person: dict[str, list[int]] = defaultdict(list)
    by_cluster: dict[str, list[int]] = defaultdict(list)
    for i, (p, c) in enumerate(zip(truth, predicted, strict=True)):
        by_person[p].append(i)
        by_cluster[c].append(i)
    fn: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    true_by_kind: Counter[str] = Counter()
    for members in by_person.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                i, j = members[x], members[y]
                kinds = set(noise[i]) | set(noise[j]) or {"(none)"}
                split = predicted[i] != predicted[j]
                for k in kinds:
                    true_by_kind[k] += 1
                    if split:
                        fn[k] += 1
    for members in by_cluster.values():
        if len(members) > 200:
            continue
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                i, j = members[x], members[y]
                if truth[i] != truth[j]:
                    for k in set(noise[i]) | set(noise[j]) or {"(none)"}:
                        fp[k] += 1
    kinds = sorted(set(true_by_kind) | set(fp))
    out["by_noise"] = {
        k: {"true_pairs": true_by_kind[k], "missed_pairs": fn[k], "false_pairs": fp[k]}
        for k in kinds
    }
    return out


def print_quality(name: str, q: dict[str, Any], seconds: float) -> None:
    print(
        f"{name:<10} records={q['records']:>8} precision={q['precision']:.4f} "
        f"recall={q['recall']:.4f} f1={q['f1']:.4f} time={seconds:.1f}s "
        f"(true pairs {q['true_pairs']}, predicted {q['predicted_pairs']})"
    )
    if "by_noise" in q:
        print(f"  {'noise kind':<22}{'true pairs':>11}{'missed':>8}{'recall':>8}{'false+':>8}")
        for kind, c in q["by_noise"].items():
            r = 1 - c["missed_pairs"] / c["true_pairs"] if c["true_pairs"] else float("nan")
            print(
                f"  {kind:<22}{c['true_pairs']:>11}{c['missed_pairs']:>8}{r:>8.3f}"
                f"{c['false_pairs']:>8}"
            )


#: step timings of the last lakehook run (normalise, calibrate, block, score, cluster)
LAST_TIMINGS: dict[str, float] = {}


def run_lakehook(records: pa.Table, threshold: float = 0.95) -> tuple[list[str], float]:
    tick = time.perf_counter()
    resolution = resolve_identities(
        records, mode="full", resolved_at=START, match_threshold=threshold
    )
    seconds = time.perf_counter() - tick
    LAST_TIMINGS.clear()
    LAST_TIMINGS.update({k: round(v, 1) for k, v in resolution.changes.timings.items()})
    LAST_TIMINGS["candidate_pairs"] = resolution.changes.candidate_pairs
    ids = dict(
        zip(
            zip(
                resolution.identity_map.column("source_system").to_pylist(),
                resolution.identity_map.column("source_id").to_pylist(),
                strict=True,
            ),
            resolution.identity_map.column("unified_customer_id").to_pylist(),
            strict=True,
        )
    )
    keys = _keys(records)
    return [ids[k] for k in keys], seconds


def _keys(records: pa.Table) -> list[tuple[str, str]]:
    return list(
        zip(
            records.column("source_system").to_pylist(),
            records.column("source_id").to_pylist(),
            strict=True,
        )
    )


def run_splink(records: pa.Table, threshold: float = 0.95) -> tuple[list[str], float]:
    """Splink 5 on DuckDB with a default-style model on the normalised columns."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    from lakehook.resolve.normalize import normalize_records

    tick = time.perf_counter()
    norm = normalize_records(records)
    df = pa.table(
        {
            "unique_id": pa.array(np.arange(norm.num_rows, dtype=np.int64)),
            "email": norm.column("email_norm"),
            "phone": norm.column("phone_key"),
            "first_name": norm.column("first_norm"),
            "last_name": norm.column("last_norm"),
            "address": norm.column("address_norm"),
            "postal_code": norm.column("postal_norm"),
        }
    )
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.EmailComparison("email"),
            cl.ExactMatch("phone"),
            cl.NameComparison("first_name"),
            cl.NameComparison("last_name"),
            cl.LevenshteinAtThresholds("address", [2]),
            cl.ExactMatch("postal_code"),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("email"),
            block_on("phone"),
            block_on("last_name", "postal_code"),
            block_on("first_name", "last_name"),
        ],
    )
    db_api = DuckDBAPI()
    linker = Linker(db_api.register(df, table_name="records"), settings, log_level="WARNING")
    linker.training.estimate_probability_two_random_records_match([block_on("email")], recall=0.8)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("email"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("phone"))
    predictions = linker.inference.predict(threshold_match_probability=threshold)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=threshold
    )
    frame = clusters.as_pandas_dataframe()
    seconds = time.perf_counter() - tick
    cluster_of = dict(zip(frame["unique_id"].tolist(), frame["cluster_id"].tolist(), strict=True))
    return [str(cluster_of.get(i, f"single-{i}")) for i in range(norm.num_rows)], seconds


def cmd_quality(args: argparse.Namespace) -> None:
    records = simulator_records(
        args.people, seed=args.seed, noise=json.loads(args.noise) if args.noise else None
    )
    keys = _keys(records)
    truth = records.column("person_id").to_pylist()
    noise = records.column("noise_kinds").to_pylist()
    ids, seconds = run_lakehook(records, args.threshold)
    q = pairwise_quality(keys, truth, ids, noise)
    print_quality("lakehook", q, seconds)
    if args.splink:
        sids, sseconds = run_splink(records)
        sq = pairwise_quality(keys, truth, sids, noise)
        print_quality("splink", sq, sseconds)
        print(
            f"ratio splink/lakehook: time {sseconds / seconds:.2f}x, "
            f"F1 {sq['f1']:.4f} vs {q['f1']:.4f}"
        )


def _id_of(resolution_map: pa.Table) -> dict[tuple[str, str], str]:
    return dict(
        zip(
            zip(
                resolution_map.column("source_system").to_pylist(),
                resolution_map.column("source_id").to_pylist(),
                strict=True,
            ),
            resolution_map.column("unified_customer_id").to_pylist(),
            strict=True,
        )
    )


def cmd_stability(args: argparse.Namespace) -> None:
    records = simulator_records(args.people, seed=args.seed)
    n = records.num_rows
    rng = np.random.default_rng(args.seed)
    held_out = rng.random(n) < 1 / 11  # the held-out share is 10% of the first run
    first_records = records.filter(pa.array(~held_out))
    t0 = START + timedelta(days=1)
    first = resolve_identities(first_records, mode="full", resolved_at=t0)
    before = _id_of(first.identity_map)

    for mode in ("incremental", "full"):
        rerun = resolve_identities(
            first_records,
            first.identity_map,
            mode=mode,
            resolved_at=t0 + timedelta(days=1),
            state=first.state if mode == "incremental" else None,
        )
        after = _id_of(rerun.identity_map)
        same = sum(after[k] == v for k, v in before.items())
        print(
            f"rerun unchanged ({mode:<11}): {same}/{len(before)} ids unchanged "
            f"({100 * same / len(before):.2f}%), map identical: "
            f"{rerun.identity_map.equals(first.identity_map)}, "
            f"merge-log rows {rerun.merge_log.num_rows}"
        )

    grown_ids: dict[str, dict[tuple[str, str], str]] = {}
    grown_maps: dict[str, pa.Table] = {}
    modes: tuple[Mode, ...] = ("incremental", "full")
    for mode in modes:
        tick = time.perf_counter()
        # the incremental run reuses what the first run kept (normalised records and
        # statistics); the full run starts from nothing
        grown = resolve_identities(
            records,
            first.identity_map,
            mode=mode,
            resolved_at=t0 + timedelta(days=2),
            state=first.state if mode == "incremental" else None,
        )
        grown_maps[mode] = grown.identity_map
        seconds = time.perf_counter() - tick
        after = _id_of(grown.identity_map)
        grown_ids[mode] = after
        new_keys = {k for k, h in zip(_keys(records), held_out.tolist(), strict=True) if h}
        touched_ids = {after[k] for k in new_keys}
        clusters: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for k, v in before.items():
            clusters[v].append(k)
        untouched = [
            uc for uc, ks in clusters.items() if not any(after[k] in touched_ids for k in ks)
        ]
        kept = sum(all(after[k] == uc for k in clusters[uc]) for uc in untouched)
        print(
            f"+{held_out.sum()} new records ({mode:<11}): {kept}/{len(untouched)} untouched "
            f"clusters keep their id ({100 * kept / max(len(untouched), 1):.2f}%); "
            f"{len(clusters) - len(untouched)} clusters touched; "
            f"re-resolved {grown.changes.affected_records} records in {seconds:.1f}s; "
            f"log: {Counter(grown.merge_log.column('action').to_pylist())}"
        )
    print(
        f"incremental and full give the same ids: {grown_ids['incremental'] == grown_ids['full']}"
        f", the same map: {grown_maps['incremental'].equals(grown_maps['full'])}"
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dataset_path(records: int, seed: int) -> Path:
    return Path(f"/tmp/lakehook-er-{records}-{seed}.parquet")


def cmd_prepare(args: argparse.Namespace) -> None:
    """Generate the scale dataset once (its own process, so its memory is not counted)."""
    import pyarrow.parquet as pq

    path = _dataset_path(args.records, args.seed)
    if path.exists():
        return
    tick = time.perf_counter()
    records = simulator_records(int(args.records / RECORDS_PER_PERSON), seed=args.seed)
    pq.write_table(records, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)
    print(
        json.dumps({"generated_records": records.num_rows, "seconds": time.perf_counter() - tick})
    )


def cmd_scale_child(args: argparse.Namespace) -> None:
    import pyarrow.parquet as pq

    records = pq.read_table(_dataset_path(args.records, args.seed))
    if args.limit:
        records = records.slice(0, args.limit)
    base_rss = _peak_rss_mib()
    keys = _keys(records)
    truth = records.column("person_id").to_pylist()
    inputs = records.drop_columns(["person_id", "noise_kinds"])
    cpu_before = _cpu_seconds()
    if args.engine == "splink":
        ids, seconds = run_splink(inputs)
    else:
        ids, seconds = run_lakehook(inputs)
    cpu = _cpu_seconds() - cpu_before
    peak = _peak_rss_mib()
    q = pairwise_quality(keys, truth, ids)
    print(
        json.dumps(
            {
                "engine": args.engine,
                "records": records.num_rows,
                "resolve_s": round(seconds, 1),
                "cpu_s": round(cpu, 1),
                "peak_rss_mib": round(peak),
                "steps_s": LAST_TIMINGS,
                "rss_before_resolve_mib": round(base_rss),
                "precision": round(q["precision"], 4),
                "recall": round(q["recall"], 4),
                "f1": round(q["f1"], 4),
            }
        )
    )


def cmd_scale(args: argparse.Namespace) -> None:
    engines: Iterable[str] = [args.engine] if args.engine else ["lakehook", "splink"]
    prepare = [sys.executable, str(Path(__file__)), "prepare", "--records", str(args.records)]
    subprocess.run([*prepare, "--seed", str(args.seed)], check=True, timeout=args.timeout)
    results = {}
    for engine in engines:
        cmd = [
            sys.executable,
            str(Path(__file__)),
            "scale-child",
            "--records",
            str(args.records),
            "--engine",
            engine,
            "--seed",
            str(args.seed),
            "--limit",
            str(args.limit),
        ]
        try:
            out = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.timeout, check=True
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            result = {"engine": engine, "records": args.records, "timeout_s": args.timeout}
        except subprocess.CalledProcessError as exc:
            result = {"engine": engine, "error": exc.stderr[-2000:]}
        results[engine] = result
        print(json.dumps(result))
    if "resolve_s" in results.get("lakehook", {}) and "resolve_s" in results.get("splink", {}):
        ratio = results["splink"]["resolve_s"] / results["lakehook"]["resolve_s"]
        print(f"ratio splink/lakehook resolve time: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--people", type=int, default=20_000)
    q.add_argument("--seed", type=int, default=7)
    q.add_argument("--splink", action="store_true")
    q.add_argument("--threshold", type=float, default=0.95)
    q.add_argument(
        "--noise", default=None, help='NoiseRates overrides as JSON, e.g. {"email_typo": 0.1}'
    )
    s = sub.add_parser("stability")
    s.add_argument("--people", type=int, default=20_000)
    s.add_argument("--seed", type=int, default=7)
    for name in ("scale", "scale-child", "prepare"):
        c = sub.add_parser(name)
        c.add_argument("--limit", type=int, default=0, help="resolve only the first N records")
        c.add_argument("--records", type=int, default=1_000_000)
        c.add_argument("--engine", choices=["lakehook", "splink"], default=None)
        c.add_argument("--seed", type=int, default=7)
        c.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    {
        "quality": cmd_quality,
        "stability": cmd_stability,
        "scale": cmd_scale,
        "scale-child": cmd_scale_child,
        "prepare": cmd_prepare,
    }[args.command](args)


if __name__ == "__main__":
    main()
