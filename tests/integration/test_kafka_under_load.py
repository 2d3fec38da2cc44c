"""``lakehook serve`` on the Kafka log under load from three providers: the broker is killed
and restarted, then the service itself is killed and restarted, while deliveries keep coming.

The providers behave as the real ones do: a delivery is retried until it gets a 2xx (they
wait and retry on a 503, a timeout or a refused connection). Afterwards:

- every delivery answered 2xx is in Kafka; an event is there more than once only when one
  of its delivery attempts failed before the 2xx (the append was cut short after the broker
  kept a record: the documented claim-takeover / half-failed append case), never when the
  first attempt was answered 2xx; after the service's own crash, exactly once (the retry
  that takes a dead process's claim over finds its record in the topic);
- a retry of an acknowledged delivery is answered 2xx as a duplicate;
- the raw loader puts exactly the Kafka records in ``raw.*`` (duplicates included), and the
  staging layer holds each delivered object exactly once;
- while the broker is down the service answers no webhook 2xx: each gets a 503 with
  ``Retry-After`` once the append's bound has passed, and ``/readyz`` answers 503.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner

from lakehook.cli.main import cli
from lakehook.contracts import RAW_TABLES, STREAMS
from lakehook.lake import open_catalog
from lakehook.log.kafka import KafkaEventLog
from lakehook.settings import load_settings
from tests.conftest import TEST_SECRETS
from tests.integration.ingest_helpers import Delivery, IngestServer, deliveries
from tests.services.kafka import KafkaBroker

pytestmark = pytest.mark.timeout(300)

#: a provider gives up on one attempt after this long (Shopify and HubSpot: 5 s); 10 s here
#: leaves room for a loaded CI machine: a 503 must come back well before it
_PROVIDER_TIMEOUT_S = 10.0
#: providers back off between attempts (the real ones wait minutes to hours)
_RETRY_PAUSE_S = 0.2


@dataclass
class Attempt:
    """One HTTP attempt of a delivery, as the provider saw it."""

    sent: float
    done: float
    status: int | None  # None: no answer (refused, reset, timed out)
    retry_after: str | None = None


@dataclass
class Tracked:
    """A delivery and every attempt a provider made until it got a 2xx."""

    delivery: Delivery
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acked(self) -> bool:
        return any(a.status is not None and 200 <= a.status < 300 for a in self.attempts)

    @property
    def clean(self) -> bool:
        """Acknowledged on the first attempt: its events must be stored exactly once."""
        first = self.attempts[0].status if self.attempts else None
        return first is not None and 200 <= first < 300


async def provide(
    url: Callable[[], str],
    tracked: list[Tracked],
    *,
    concurrency: int,
    on_ack: Callable[[int], None] = lambda acks: None,
    give_up_s: float = 150.0,
) -> None:
    """Deliver everything like the providers do: retry each delivery until a 2xx."""
    queue: asyncio.Queue[Tracked] = asyncio.Queue()
    for t in tracked:
        queue.put_nowait(t)
    acks = 0
    deadline = time.monotonic() + give_up_s
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=_PROVIDER_TIMEOUT_S) as client:

        async def provider() -> None:
            nonlocal acks
            while not queue.empty():
                t = queue.get_nowait()
                while not t.acked and time.monotonic() < deadline:
                    base = url()
                    d = t.delivery
                    sent = time.monotonic()
                    try:
                        response = await client.post(
                            f"{base}/webhooks/{d.provider}", content=d.body, headers=d.headers(base)
                        )
                    except httpx.TransportError:
                        t.attempts.append(Attempt(sent, time.monotonic(), None))
                    else:
                        retry_after = response.headers.get("retry-after")
                        status = response.status_code
                        t.attempts.append(Attempt(sent, time.monotonic(), status, retry_after))
                    if t.acked:
                        acks += 1
                        on_ack(acks)
                    else:
                        await asyncio.sleep(_RETRY_PAUSE_S)

        await asyncio.gather(*(provider() for _ in range(concurrency)))


@dataclass
class KafkaService:
    """``lakehook serve`` on the Kafka log, its topics and its home."""

    server: IngestServer
    bootstrap: str
    prefix: str
    home: Path

    def start(self) -> None:
        """Start (again) and keep reading its stderr into ``serve.log``.

        ``IngestServer`` pipes the service's stderr; with the broker down the service logs
        every refused append, and a pipe nobody reads would block it once full.
        """
        self.server.start(timeout=60.0)
        process = self.server.process
        assert process is not None and process.stderr is not None
        stderr = process.stderr

        def drain() -> None:
            with (self.home.parent / "serve.log").open("ab") as log:
                for line in stderr:
                    log.write(line)

        threading.Thread(target=drain, daemon=True).start()

    def env(self) -> dict[str, str]:
        return {
            "LAKEHOOK_LOG_BACKEND": "kafka",
            "LAKEHOOK_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "LAKEHOOK_KAFKA_TOPIC_PREFIX": self.prefix,
        }


@pytest.fixture
def service(
    kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KafkaService]:
    prefix = f"t{uuid.uuid4().hex[:10]}."
    home = tmp_path / "home"
    svc = KafkaService(IngestServer(home), kafka_bootstrap, prefix, home)
    # the service reads the .env of its working directory (the test's tmp_path); the
    # in-process CLI runs (stream, batch) read the same variables
    Path(".env").write_text("".join(f"{k}={v}\n" for k, v in svc.env().items()))
    secrets = {f"LAKEHOOK_{k.upper()}": v for k, v in TEST_SECRETS.items()}
    for key, value in {**svc.env(), **secrets}.items():
        monkeypatch.setenv(key, value)
    svc.start()
    yield svc
    svc.server.kill()


def _kafka_counts(svc: KafkaService, tmp_path: Path) -> Counter[tuple[str, str]]:
    log = KafkaEventLog(svc.bootstrap, tmp_path / "reader-dedupe.db", topic_prefix=svc.prefix)
    try:
        counts: Counter[tuple[str, str]] = Counter()
        for stream in STREAMS:
            for partition in log.partitions(stream):
                for record in log.read(stream, partition, 0, 1_000_000):
                    counts[(stream, record.envelope.event_id)] += 1
        return counts
    finally:
        log.close()


def _invoke(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _check_stored_once_per_acknowledgement(
    svc: KafkaService, tracked: list[Tracked], tmp_path: Path
) -> Counter[tuple[str, str]]:
    """Kafka holds every delivered event; more than once only after a failed attempt."""
    assert all(t.acked for t in tracked), "a provider gave up on a delivery"
    counts = _kafka_counts(svc, tmp_path)
    assert set(counts) == {key for t in tracked for key in t.delivery.keys}
    for t in tracked:
        for key in t.delivery.keys:
            if t.clean:
                assert counts[key] == 1, f"{key} answered 2xx at once, stored {counts[key]}x"
    return counts


def _check_retries_are_duplicates(svc: KafkaService, tracked: list[Tracked]) -> None:
    url = svc.server.url
    for t in tracked[:12]:
        d = t.delivery
        response = httpx.post(
            f"{url}/webhooks/{d.provider}", content=d.body, headers=d.headers(url), timeout=10
        )
        assert response.status_code == 200
        assert response.json() == {"accepted": 0, "duplicates": len(d.keys), "quarantined": 0}


def _check_raw_and_staging(
    svc: KafkaService, tracked: list[Tracked], counts: Counter[tuple[str, str]]
) -> None:
    """The raw loader copies Kafka exactly; staging keeps one row per delivered object."""
    home = str(svc.home)
    _invoke("--home", home, "stream", "--until-idle", "--quiet", "--commit-interval", "0.05")
    catalog = open_catalog(load_settings(home=svc.home))
    raw: Counter[tuple[str, str]] = Counter()
    for stream, identifier in RAW_TABLES.items():
        ids = catalog.load_table(identifier).scan(selected_fields=("_event_id",)).to_arrow()
        raw.update((stream, i) for i in ids.column("_event_id").to_pylist())
    assert raw == counts  # every Kafka record once: offsets in the snapshot, not re-read

    models = (
        "shopify_orders",
        "stripe_charges",
        "hubspot_property_values",
        "hubspot_merged_values",
        "hubspot_contacts",
    )
    for table in (f"stg_{m}" for m in models):
        _invoke("--home", home, "batch", "--table", f"staging.{table}", "--format", "json")
    staged = {
        table: Counter(
            str(v)
            for v in catalog.load_table(f"staging.{table}")
            .scan(selected_fields=(key,))
            .to_arrow()
            .column(key)
            .to_pylist()
        )
        for table, key in (
            ("stg_shopify_orders", "order_id"),
            ("stg_stripe_charges", "charge_id"),
            ("stg_hubspot_contacts", "source_id"),
        )
    }
    expected = _delivered_objects(tracked)
    for table, objects in staged.items():
        assert set(objects) == expected[table], table
        assert set(objects.values()) == {1}, table


def _deliveries(n: int, seed: str) -> list[Tracked]:
    """``n`` deliveries of the three providers; Stripe's carry a charge staging recognises."""
    tracked = []
    for d in deliveries(n, seed=seed):
        if d.provider == "stripe":
            event = orjson.loads(d.body)
            event["data"]["object"].update(object="charge", currency="usd", status="succeeded")
            d = Delivery("stripe", orjson.dumps(event), d.keys)
        tracked.append(Tracked(d))
    return tracked


def _delivered_objects(tracked: list[Tracked]) -> dict[str, set[str]]:
    """Object ids the deliveries carry, per staging table (one event per object)."""
    objects: dict[str, set[str]] = {
        "stg_shopify_orders": set(),
        "stg_stripe_charges": set(),
        "stg_hubspot_contacts": set(),
    }
    for t in tracked:
        body = orjson.loads(t.delivery.body)
        if t.delivery.provider == "shopify":
            objects["stg_shopify_orders"].add(str(body["id"]))
        elif t.delivery.provider == "stripe":
            objects["stg_stripe_charges"].add(str(body["data"]["object"]["id"]))
        else:
            objects["stg_hubspot_contacts"].update(str(e["objectId"]) for e in body)
    return objects


def test_broker_killed_and_restarted_under_load(
    service: KafkaService, kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    tracked = _deliveries(240, seed=f"broker-{service.prefix}")
    enough_acks = threading.Event()
    outage: dict[str, float] = {}
    readyz: list[int] = []

    def crash_the_broker() -> None:
        if not enough_acks.wait(timeout=90):
            return
        kafka_broker.kill()
        outage["down"] = time.monotonic()
        try:
            time.sleep(1.0)
            readyz.append(httpx.get(f"{service.server.url}/readyz", timeout=10).status_code)
            # long enough for appends sent during the outage to run into their bound
            time.sleep(max(0.0, outage["down"] + 8.0 - time.monotonic()))
        finally:
            outage["restarting"] = time.monotonic()
            kafka_broker.start()  # same data folder and ports: clients reconnect by themselves
        outage["up"] = time.monotonic()
        readyz.append(httpx.get(f"{service.server.url}/readyz", timeout=10).status_code)

    chaos = threading.Thread(target=crash_the_broker)
    chaos.start()
    try:
        asyncio.run(
            provide(
                lambda: service.server.url,
                tracked,
                concurrency=12,
                on_ack=lambda acks: acks >= 40 and enough_acks.set(),
            )
        )
    finally:
        chaos.join(timeout=150)
        if kafka_broker.process is None or kafka_broker.process.poll() is not None:
            kafka_broker.start()  # leave the session's broker running for the next tests
    assert {"down", "restarting", "up"} <= set(outage), "the broker was not crashed mid-load"
    assert readyz == [503, 200]

    # while the broker was down nothing was acknowledged: a bounded wait, then 503
    during = [
        a
        for t in tracked
        for a in t.attempts
        if a.sent > outage["down"] and a.done < outage["restarting"]
    ]
    assert during, "the load must keep going while the broker is down"
    assert {a.status for a in during} == {503}
    assert {a.retry_after for a in during} == {"5"}
    assert any(not t.clean for t in tracked) and any(t.clean for t in tracked)

    counts = _check_stored_once_per_acknowledgement(service, tracked, tmp_path)
    _check_retries_are_duplicates(service, tracked)
    _check_raw_and_staging(service, tracked, counts)


def test_service_killed_and_restarted_under_load(service: KafkaService, tmp_path: Path) -> None:
    tracked = _deliveries(240, seed=f"serve-{service.prefix}")
    enough_acks = threading.Event()
    restarted = threading.Event()

    def crash_the_service() -> None:
        if enough_acks.wait(timeout=90):
            service.server.kill()  # SIGKILL with requests in flight
            time.sleep(0.5)  # providers meet a refused connection meanwhile
            service.start()  # same home: its dedupe file survives
            restarted.set()

    chaos = threading.Thread(target=crash_the_service)
    chaos.start()
    try:
        asyncio.run(
            provide(
                lambda: service.server.url,
                tracked,
                concurrency=12,
                on_ack=lambda acks: acks >= 40 and enough_acks.set(),
            )
        )
    finally:
        chaos.join(timeout=90)
    assert restarted.is_set(), "the service was not killed mid-load"
    assert any(a.status is None for t in tracked for a in t.attempts)  # it was really down

    counts = _check_stored_once_per_acknowledgement(service, tracked, tmp_path)
    # the retries took the dead process's claims over and found what it had written
    assert set(counts.values()) == {1}
    _check_retries_are_duplicates(service, tracked)
    _check_raw_and_staging(service, tracked, counts)
