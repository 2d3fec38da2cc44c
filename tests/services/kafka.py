"""A real single-node Kafka broker (KRaft, broker + controller in one JVM) for the test session.

Started from the pinned jars (``lakehook jars fetch kafka``, fetched here when missing):
``kafka.tools.StorageTool format --standalone`` then ``kafka.Kafka server.properties``, on
loopback and two free ports, with a small heap. The session fixture waits until the broker
answers a metadata request and kills it at the end. Crash tests use
:meth:`KafkaBroker.kill` (SIGKILL) and :meth:`KafkaBroker.start` to restart it on the same
ports and data, so clients reconnect by themselves.

Fixtures: ``kafka_broker`` (the :class:`KafkaBroker`) and ``kafka_bootstrap`` (its
``host:port``); ``tests/conftest.py`` marks every test using them ``kafka``.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehook.jvm import ensure_jars, java_executable

_READY_TIMEOUT_S = 90.0
_HEAP = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC"]

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{ISO8601}} %p %c{{1}}: %m%n
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
"""


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class KafkaBroker:
    """One KRaft broker process on loopback; its data folder survives kill + start."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.classpath = ensure_jars("kafka").classpath
        self.config = workdir / "server.properties"
        self.log_file = workdir / "broker.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._write_config()

    def _write_config(self) -> None:
        data = self.workdir / "data"
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={data}",
                    "num.partitions=1",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "num.network.threads=2",
                    "num.io.threads=2",
                    "log.segment.bytes=16777216",
                    "",
                ]
            )
        )
        log4j = self.workdir / "log4j2.properties"
        log4j.write_text(_LOG4J2.format(log=self.log_file))
        self._jvm = [
            str(java_executable()),
            *_HEAP,
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            self.classpath,
        ]
        cluster_id = uuid.uuid4().hex[:22]
        subprocess.run(
            [
                *self._jvm,
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(self.config),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        """Start the broker (again) and wait until it answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        out = (self.workdir / "broker.out").open("ab")
        self.process = subprocess.Popen(
            [*self._jvm, "kafka.Kafka", str(self.config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        out.close()
        self.wait_ready()

    def wait_ready(self, timeout: float = _READY_TIMEOUT_S) -> None:
        """Block until a metadata request lists this broker, or fail with its log."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            try:
                if admin.list_topics(timeout=1.0).brokers:
                    return
            except Exception:
                time.sleep(0.2)
        log = self.log_file.read_text() if self.log_file.exists() else ""
        raise RuntimeError(f"Kafka broker did not come up on {self.bootstrap}:\n{log[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the broker (a crash: no clean shutdown, no flush)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the broker for good (SIGTERM, then SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A running single-node KRaft broker for the whole session."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"))
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: KafkaBroker) -> str:
    """Bootstrap servers of the session broker (``127.0.0.1:<port>``)."""
    return kafka_broker.bootstrap
