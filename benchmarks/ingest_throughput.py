"""Ingestion throughput: signed webhooks per second with durable acknowledgement.

Runs ``lakehook``'s ingestion app under uvicorn (uvloop + httptools, one process, exactly
as ``lakehook serve``) with the benchmark-only no-op route enabled, and drives it from a
separate load-generator process speaking raw HTTP/1.1 over keep-alive connections:

1. ceiling: the same signed requests to ``POST /_benchmark/noop`` (reads the body, answers
   200, verifies and stores nothing): what the server stack alone can do;
2. ingest: ``POST /webhooks/{shopify,stripe,hubspot}`` (verify, split, dedupe, append with
   group commit + fsync, 2xx only once durable), closed loop, as fast as it goes;
3. ingest at half the measured maximum rate, open loop (latency counted from the scheduled
   send time, so queueing is not hidden), and the no-op route at that same rate as the
   latency baseline of the stack and the machine;
4. the server is killed with SIGKILL and every event that got a 2xx is looked up in the
   SQLite log: each must be there exactly once.

Requests rotate Shopify / Stripe / HubSpot (HubSpot batches carry 5 events), every one with a
fresh delivery id. Shopify and Stripe ids are random, as the providers' are (a UUID, an
``evt_`` token), so dedupe meets keys spread over its whole index; ``--ids sequential``
numbers them instead (the figures before 2026-11-26 21:30 UTC were measured that way).
Figures are printed as a table and as ratios to the no-op ceiling.

    .venv/bin/python benchmarks/ingest_throughput.py [--duration 8] [--connections 128] [--rounds 2]
        [--ids random|sequential] [--log-writer process|thread]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from lakehook.contracts import STREAMS
from lakehook.ingest.signing import hubspot_headers, shopify_headers, stripe_headers

NOOP_PATH = "/_benchmark/noop"
HUBSPOT_BATCH = 5
#: requests prebuilt per second of a closed-loop run (above what the server answers)
CLOSED_LOOP_BUDGET_RPS = 16_000


# --- server ------------------------------------------------------------------------------


def serve(port: int) -> None:
    """Run the ingestion app (secrets and home from LAKEHOOK_* env) with the no-op route."""
    import uvicorn

    from lakehook.ingest.app import create_app, tune_gc_for_serving
    from lakehook.settings import load_settings

    app = create_app(load_settings(), benchmark_noop_route=True)
    tune_gc_for_serving()  # as `lakehook serve` does
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


# --- requests ----------------------------------------------------------------------------


@dataclass(slots=True)
class SignedRequest:
    raw: bytes  # the whole HTTP/1.1 request
    keys: tuple[str, ...]  # "stream\tevent_id" of every event it carries


def build_request(
    i: int,
    tag: str,
    run: int,
    port: int,
    noop: bool,
    keys: dict[str, bytes],
    random_ids: bool = True,
) -> SignedRequest:
    """The i-th signed delivery of a run (rotating providers, unique delivery ids).

    ``run`` is a random number of the load process: it is the HubSpot subscription id, so
    the composite keys of different runs never collide (a collision would be a duplicate,
    answered without a write, and flatter the figures).
    """
    base = f"http://127.0.0.1:{port}"
    kind = i % 3
    if kind == 0:
        provider = "shopify"
        wid = str(uuid.uuid4()) if random_ids else f"{tag}-{i}"
        body = orjson.dumps(
            {
                "id": 5_000_000 + i,
                "email": f"customer{i}@example.com",
                "total_price": "129.90",
                "currency": "EUR",
                "updated_at": "2026-11-26T12:00:00+01:00",
                "line_items": [{"id": i, "sku": "SKU-1", "quantity": 2, "price": "64.95"}],
            }
        )
        headers = shopify_headers(body, keys["shopify"], topic="orders/create", webhook_id=wid)
        event_keys: tuple[str, ...] = (f"shopify\t{wid}",)
    elif kind == 1:
        provider = "stripe"
        eid = f"evt_{secrets.token_urlsafe(18)}" if random_ids else f"evt_{tag}_{i}"
        body = orjson.dumps(
            {
                "id": eid,
                "object": "event",
                "api_version": "2024-06-20",
                "created": int(time.time()),
                "type": "charge.succeeded",
                "data": {"object": {"id": f"ch_{tag}_{i}", "amount": 12990, "currency": "eur"}},
            }
        )
        headers = stripe_headers(body, [keys["stripe"]])
        event_keys = (f"stripe\t{eid}",)
    else:
        provider = "hubspot"
        events = [
            {
                "objectId": i * 10 + j,
                "propertyName": "lifecyclestage",
                "propertyValue": "customer",
                "eventId": i * 10 + j,
                "subscriptionId": run,
                "portalId": 4242,
                "occurredAt": 1_764_000_000_000 + i,
                "subscriptionType": "contact.propertyChange",
                "attemptNumber": 0,
            }
            for j in range(HUBSPOT_BATCH)
        ]
        body = orjson.dumps(events)
        headers = hubspot_headers(f"{base}/webhooks/hubspot", body, keys["hubspot"])
        event_keys = tuple(
            f"hubspot\t4242:{run}:{e['eventId']}:{e['occurredAt']}:{e['objectId']}" for e in events
        )
    path = NOOP_PATH if noop else f"/webhooks/{provider}"
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    return SignedRequest(raw, () if noop else event_keys)


# --- load generator (separate process) ---------------------------------------------------


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _load(args: argparse.Namespace) -> dict[str, Any]:
    keys = {
        p: os.environ[f"BENCH_{p.upper()}_KEY"].encode() for p in ("shopify", "stripe", "hubspot")
    }
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    acked: list[str] = []
    counter = 0
    tag = f"{args.tag}{secrets.token_hex(3)}"
    run = secrets.randbits(40)

    def next_request() -> SignedRequest:
        nonlocal counter
        counter += 1
        return build_request(
            counter, tag, run, args.port, args.noop, keys, random_ids=args.ids == "random"
        )

    # pre-build requests so signing does not compete with sending inside the timed window;
    # a closed loop is sized for 16,000 req/s (the no-op route does ~11,000 here)
    budget = int((args.rate * 1.2 if args.rate else CLOSED_LOOP_BUDGET_RPS) * args.duration) + 1000
    prebuilt = [next_request() for _ in range(budget)]
    prebuilt.reverse()
    built_late = 0

    def take() -> SignedRequest:
        nonlocal built_late
        if prebuilt:
            return prebuilt.pop()
        built_late += 1
        return next_request()

    async def one(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scheduled: float
    ) -> None:
        req = take()
        status = await _exchange(reader, writer, req.raw)
        latencies.append(time.perf_counter() - scheduled)
        statuses[status] = statuses.get(status, 0) + 1
        if 200 <= status < 300:
            acked.extend(req.keys)

    connections = [
        await asyncio.open_connection("127.0.0.1", args.port) for _ in range(args.connections)
    ]
    start = time.perf_counter()
    cpu_start = time.process_time()  # the load generator's own CPU in the timed window
    end = start + args.duration
    if not args.rate:  # closed loop: every connection sends back to back

        async def closed(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
            while time.perf_counter() < end:
                await one(*conn, time.perf_counter())

        await asyncio.gather(*(closed(c) for c in connections))
    else:  # open loop at a fixed rate over a pool of idle connections
        idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        for c in connections:
            idle.put_nowait(c)
        tasks: set[asyncio.Task[None]] = set()

        async def scheduled_send(at: float) -> None:
            conn = await idle.get()
            try:
                await one(*conn, at)
            finally:
                idle.put_nowait(conn)

        k = 0
        while True:
            at = start + k / args.rate
            if at >= end:
                break
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(scheduled_send(at))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        if tasks:
            await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    client_cpu = time.process_time() - cpu_start
    for _, writer in connections:
        writer.close()
    Path(args.acked_file).write_text("\n".join(acked) + ("\n" if acked else ""))
    latencies.sort()
    n = len(latencies)
    events = sum(1 for _ in acked)
    return {
        "requests": n,
        "seconds": elapsed,
        "rps": n / elapsed,
        "events_per_s": events / elapsed,
        "p50_ms": latencies[n // 2] * 1000 if n else 0.0,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        "statuses": statuses,
        "client_cpu_us": client_cpu / max(n, 1) * 1e6,
        "built_late": built_late,
    }


def load_main(args: argparse.Namespace) -> None:
    import uvloop

    result = uvloop.run(_load(args))
    print(json.dumps(result))


# --- orchestration -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("server did not become ready")


def _run_load(
    port: int,
    env: dict[str, str],
    *,
    noop: bool,
    duration: float,
    connections: int,
    rate: float,
    acked_file: Path,
    tag: str,
    server_pid: int,
    ids: str = "random",
) -> dict[str, Any]:
    """One load-generator run; adds the server's CPU time per request to its figures (the
    server process and its children: the event log's writer process)."""
    import psutil

    server = psutil.Process(server_pid)
    children = server.children(recursive=True)

    def cpu(process: psutil.Process) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    before = cpu(server)
    before_children = [cpu(child) for child in children]
    cmd = [
        sys.executable,
        __file__,
        "load",
        "--port",
        str(port),
        "--duration",
        str(duration),
        "--connections",
        str(connections),
        "--rate",
        str(rate),
        "--acked-file",
        str(acked_file),
        "--tag",
        tag,
        "--ids",
        ids,
    ]
    if noop:
        cmd.append("--noop")
    out = subprocess.run(cmd, env=env, capture_output=True, check=True, timeout=duration * 10 + 120)
    parent_cpu = cpu(server) - before
    children_cpu = sum(cpu(c) - b for c, b in zip(children, before_children, strict=True))
    result = dict(json.loads(out.stdout))
    requests = max(result["requests"], 1)
    result["server_cpu_us"] = (parent_cpu + children_cpu) / requests * 1e6
    result["writer_cpu_us"] = children_cpu / requests * 1e6
    return result


def _fsync_ms(folder: Path, rounds: int = 100) -> tuple[float, float]:
    """p50 and p99 of fsync after a 4 KiB write on the log's file system: the floor of a
    durable acknowledgement on this machine."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    samples = []
    try:
        for _ in range(rounds):
            os.write(fd, b"\0" * 4096)
            start = time.perf_counter()
            os.fsync(fd)
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    samples.sort()
    return samples[rounds // 2], samples[min(rounds - 1, int(rounds * 0.99))]


def _cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def orchestrate(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="lakehook-bench-"))
    keys = {p: secrets.token_hex(16) for p in ("shopify", "stripe", "hubspot")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOOK_")}
    env.update(
        {
            "LAKEHOOK_HOME": str(work / "home"),
            "LAKEHOOK_SHOPIFY_SECRET": keys["shopify"],
            "LAKEHOOK_STRIPE_SECRETS": "whsec_" + keys["stripe"],
            "LAKEHOOK_HUBSPOT_CLIENT_SECRET": keys["hubspot"],
            "BENCH_SHOPIFY_KEY": keys["shopify"],
            "BENCH_STRIPE_KEY": "whsec_" + keys["stripe"],
            "BENCH_HUBSPOT_KEY": keys["hubspot"],
        }
    )
    if args.log_writer:
        env["LAKEHOOK_LOG_WRITER"] = args.log_writer
    port = _free_port()
    server = subprocess.Popen([sys.executable, __file__, "serve", "--port", str(port)], env=env)
    acked_files: list[Path] = []
    try:
        _wait_ready(port)
        common = {
            "duration": args.duration,
            "connections": args.connections,
            "server_pid": server.pid,
            "ids": args.ids,
        }
        load_before = os.getloadavg()[0]
        # warm-up (imports, caches, SQLite pages), not measured
        _run_load(
            port,
            env,
            noop=True,
            rate=0,
            acked_file=work / "w0",
            tag="w0",
            duration=1.5,
            connections=args.connections,
            server_pid=server.pid,
        )
        noop_runs, ingest_runs = [], []
        for r in range(args.rounds):
            noop_runs.append(
                _run_load(
                    port, env, noop=True, rate=0, acked_file=work / f"n{r}", tag=f"n{r}", **common
                )
            )
            acked_files.append(work / f"i{r}")
            ingest_runs.append(
                _run_load(
                    port, env, noop=False, rate=0, acked_file=acked_files[-1], tag=f"i{r}", **common
                )
            )
        noop = max(noop_runs, key=lambda x: x["rps"])
        ingest = max(ingest_runs, key=lambda x: x["rps"])
        half_rate = ingest["rps"] / 2
        acked_files.append(work / "h")
        half = _run_load(
            port, env, noop=False, rate=half_rate, acked_file=acked_files[-1], tag="h", **common
        )
        # the same open-loop rate on the no-op route: the latency the stack and the machine
        # add without any durability (the baseline for the p99 goal)
        half_noop = _run_load(
            port, env, noop=True, rate=half_rate, acked_file=work / "hn", tag="hn", **common
        )
    finally:
        server.send_signal(signal.SIGKILL)  # acked means durable: prove it the hard way
        server.wait(timeout=10)

    acked = [line for f in acked_files for line in f.read_text().splitlines() if line]
    conn = sqlite3.connect(work / "home" / "log" / "events.db")
    stored: dict[str, int] = {}
    every_event = " UNION ALL ".join(
        f"SELECT '{stream}', event_id FROM events_{stream}" for stream in STREAMS
    )  # the log keeps one table per stream (log/sqlite.py)
    for stream, event_id in conn.execute(every_event):
        key = f"{stream}\t{event_id}"
        stored[key] = stored.get(key, 0) + 1
    conn.close()
    lost = sum(1 for key in acked if stored.get(key, 0) != 1)
    fsync_p50, fsync_p99 = _fsync_ms(work)
    shutil.rmtree(work, ignore_errors=True)  # the log of a default run is a few hundred MB

    print(
        f"machine: {_cpu_model()}, {os.cpu_count()} CPUs; server: 1 uvicorn process "
        f"(uvloop, httptools); load: 1 process, {args.connections} keep-alive connections, "
        f"{args.ids} delivery ids"
    )
    print(
        f"load average before the run: {load_before:.1f}; fsync of 4 KiB on the log's disk: "
        f"p50 {fsync_p50:.1f} ms, p99 {fsync_p99:.1f} ms"
    )
    print(
        f"{'run':<34}{'req/s':>9}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'server CPU/req':>16}{'of it writer':>14}{'client CPU/req':>16}{'late':>7}  statuses"
    )
    rows = [
        ("no-op route (ceiling)", noop),
        ("ingest, max rate (durable ack)", ingest),
        (f"ingest at half max ({half_rate:.0f}/s)", half),
        (f"no-op at the same rate ({half_rate:.0f}/s)", half_noop),
    ]
    for name, res in rows:
        print(
            f"{name:<34}{res['rps']:>9.0f}{res['events_per_s']:>10.0f}{res['p50_ms']:>9.1f}"
            f"{res['p99_ms']:>9.1f}{res['server_cpu_us']:>13.0f} us{res['writer_cpu_us']:>11.0f} us"
            f"{res['client_cpu_us']:>13.0f} us{res['built_late']:>7}  {res['statuses']}"
        )
    ratio = ingest["rps"] / noop["rps"]
    print(f"ingest / no-op ceiling: {ratio:.2f} (goal >= 0.6)")
    cpu_ratio = noop["server_cpu_us"] / ingest["server_cpu_us"]
    print(f"server CPU per request, no-op / ingest: {cpu_ratio:.2f} (the CPU-bound ceiling ratio)")
    print(
        f"p99 at half max rate: {half['p99_ms']:.1f} ms (goal <= 50 ms; no-op route at the "
        f"same rate: {half_noop['p99_ms']:.1f} ms)"
    )
    print(f"acknowledged events: {len(acked)}, lost or doubled after kill -9: {lost} (goal 0)")
    median_ratio = statistics.median(r["rps"] for r in ingest_runs) / statistics.median(
        r["rps"] for r in noop_runs
    )
    print(
        f"noop runs req/s: {[round(r['rps']) for r in noop_runs]}, "
        f"ingest runs req/s: {[round(r['rps']) for r in ingest_runs]}, "
        f"median ratio {median_ratio:.2f}"
    )
    ok = lost == 0 and all(set(r["statuses"]) <= {"200"} for _, r in rows)
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--port", type=int, required=True)
    p_load = sub.add_parser("load")
    p_load.add_argument("--port", type=int, required=True)
    p_load.add_argument("--duration", type=float, required=True)
    p_load.add_argument("--connections", type=int, required=True)
    p_load.add_argument("--rate", type=float, default=0.0)
    p_load.add_argument("--noop", action="store_true")
    p_load.add_argument("--acked-file", required=True)
    p_load.add_argument("--tag", required=True)
    p_load.add_argument("--ids", choices=("random", "sequential"), default="random")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="alternating no-op/ingest rounds")
    parser.add_argument(
        "--log-writer",
        choices=("process", "thread"),
        default=None,
        help="LAKEHOOK_LOG_WRITER of the server (default: the setting's default)",
    )
    parser.add_argument(
        "--ids",
        choices=("random", "sequential"),
        default="random",
        help="Shopify/Stripe delivery ids: random like the providers', or numbered",
    )
    args = parser.parse_args()
    if args.cmd == "serve":
        serve(args.port)
    elif args.cmd == "load":
        load_main(args)
    else:
        sys.exit(orchestrate(args))


if __name__ == "__main__":
    main()
