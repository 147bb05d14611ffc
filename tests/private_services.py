"""Private PostgreSQL and RabbitMQ instances for the disruptive tests (session-scoped fixtures).

The shared services on 5432/5672 are used by other runs at the same time, so a test that stops the
database, restarts the broker or kills it with SIGKILL does it to instances it started itself:

* ``private_postgres``: a throw-away cluster (``initdb`` + ``pg_ctl``, run as the ``postgres`` user when the
  test runs as root, since initdb refuses root) on a free port, with the schema upgraded; durability
  settings are off (fsync, synchronous_commit) because the cluster dies with the session;
* ``private_rabbitmq``: a single RabbitMQ node (``rabbitmq-server``) with its own node name, AMQP and
  distribution ports, data and log directories, Erlang cookie (its own HOME) and no plugins, controlled
  with ``rabbitmqctl -n <node>``; ``kill9`` SIGKILLs the Erlang VM and ``start`` brings it back on the same data.

Missing binaries skip the tests locally and fail them under CI=true, as ``services.py`` does.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.bootstrap import Hub, build
from api.settings import Settings

RABBITMQ_BIN = Path(os.environ.get("RCMHUB_TEST_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


def unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: integration tests must not skip)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary directory; ``stop``/``start`` for outage tests."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found and not shutil.which("initdb"):
            unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        self.bin = Path(found[-1]).parent if found else Path(shutil.which("initdb") or "").parent
        self.root = Path(tempfile.mkdtemp(prefix="rcmhub-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/test"
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        (self.data / "rcmhub-test.opts").write_text(options)
        self.options = options
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "test")

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-500:]}")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", self.options, "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: abort sessions, as an outage does to in-flight transactions)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return listening(self.port)

    def close(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRabbitMQ:
    """One RabbitMQ node of its own: ``stop_app``/``start_app``, ``kill9``/``start``."""

    def __init__(self) -> None:
        if not (RABBITMQ_BIN / "rabbitmq-server").exists() or not (RABBITMQ_BIN / "rabbitmqctl").exists():
            unavailable(f"RabbitMQ server scripts are not installed in {RABBITMQ_BIN}")
        self.root = Path(tempfile.mkdtemp(prefix="rcmhub-rmq-"))
        self.port, dist = free_port(), free_port()
        self.node = f"rcmhub-test-{uuid.uuid4().hex[:8]}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        plugins = self.root / "enabled_plugins"
        plugins.write_text("[].\n")
        self.pid_file = self.root / "node.pid"
        self.env = {
            **os.environ, "HOME": str(self.root),  # its own Erlang cookie, not the shared node's
            "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(dist),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"), "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins), "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq"),  # absent: defaults, not /etc/rabbitmq's
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.root / "rabbitmq-env.conf"),
        }
        self.server: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the node (again, after ``kill9``: same name and data directory) and wait for AMQP."""
        self.pid_file.unlink(missing_ok=True)
        log = (self.root / "server.out").open("ab")
        self.server = subprocess.Popen([str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env, cwd=self.root,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            wait_until(lambda: listening(self.port) or self.server.poll() is not None, 90, "RabbitMQ to listen")
        except RuntimeError:
            self.kill9()
            raise
        if not listening(self.port):
            tail = (self.root / "server.out").read_text(errors="replace")[-800:]
            raise RuntimeError(f"private RabbitMQ node exited: {tail}")

    def ctl(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run([str(RABBITMQ_BIN / "rabbitmqctl"), "-q", "-n", self.node, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr[-500:]}")
        return done.stdout

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        wait_until(lambda: listening(self.port), 60, "RabbitMQ to listen after start_app")

    def checkpoint(self) -> None:
        """A clean ``stop_app``/``start_app``: RabbitMQ 3.10 keeps the registry of quorum-queue (Ra) server
        names in a lazily synced DETS file, so a node SIGKILLed within minutes of declaring a quorum queue
        comes back with that queue leaderless (``timeout`` on every operation; see rabbitmq-server#15725
        for the same ``name_not_registered`` failure). Call this after declaring and before ``kill9``."""
        self.stop_app()
        self.start_app()

    def beam_pid(self) -> int:
        wait_until(self.pid_file.exists, 30, "the node's pid file")
        return int(self.pid_file.read_text().strip())

    def kill9(self) -> None:
        """SIGKILL the Erlang VM: no clean shutdown, connections drop, data is what reached the disk."""
        if self.server is None:
            return
        with_pid = self.pid_file.exists()
        if with_pid:
            os.kill(self.beam_pid(), signal.SIGKILL)
        else:  # not started far enough to write its pid: the whole process group
            os.killpg(self.server.pid, signal.SIGKILL)
        self.server.wait(30)
        wait_until(lambda: not listening(self.port), 30, "the killed node to stop listening")
        self.server = None

    def close(self) -> None:
        if self.server is not None and self.server.poll() is None:
            try:
                self.ctl("stop", timeout=60)
                self.server.wait(60)
            except (RuntimeError, subprocess.SubprocessError):
                self.kill9()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster only this session uses (tests may stop and start it; they must restart it)."""
    try:
        instance = PrivatePostgres()
    except (OSError, RuntimeError, subprocess.SubprocessError, KeyError) as exc:
        unavailable(f"cannot start a private PostgreSQL: {exc}")
        raise
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture(scope="session")
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    """A RabbitMQ node only this session uses (tests may restart or kill it; they must bring it back)."""
    try:
        instance = PrivateRabbitMQ()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        unavailable(f"cannot start a private RabbitMQ node: {exc}")
        raise
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture(scope="session")
def private_hub(private_postgres: PrivatePostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A hub (schema upgraded) on the private PostgreSQL, with the in-process bus for consumers in threads."""
    hub = build(Settings(database_url=private_postgres.url, data_dir=tmp_path_factory.mktemp("private-data"),
                         amqp_url=""))
    try:
        yield hub
    finally:
        hub.close()
