"""Local stand-ins for Pub/Sub and BigQuery that tests, demos and benchmarks start and stop from Python.

Each runs on 127.0.0.1 on a free port, in its own process group (so stopping it leaves
no stray child), with its output in a log file rather than on the console::

    with PubSubEmulator() as pubsub, BigQueryEmulator() as bq, pubsub.environ(), bq.environ():
        topic = pubsub.create_topic("images")
        ...  # Beam ReadFromPubSub / WriteToBigQuery and the official clients now use them

``environ()`` sets the variables the Google clients read (``PUBSUB_EMULATOR_HOST``,
``BIGQUERY_EMULATOR_HOST``) and restores the old values on exit; ``env`` holds the same
variables for a subprocess. Pub/Sub is Google's own emulator from the gcloud SDK (Java);
BigQuery is PyPI ``bqemulator`` in its own virtualenv ``.venv-emulators`` (``make
emulators``), as it pins a DuckDB of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from google.cloud import bigquery, pubsub_v1

REPO_ROOT = Path(__file__).resolve().parents[1]
EMULATORS_VENV = REPO_ROOT / ".venv-emulators"
"""bqemulator's own virtualenv; ``make emulators`` creates it."""

SDK_ROOTS = ("/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", "/opt/google-cloud-sdk")
"""Where Debian's and Google's packages put the gcloud SDK; ``gcloud info`` is asked otherwise."""

DEFAULT_PROJECT = "test-proj"


class EmulatorError(RuntimeError):
    """An emulator is not installed, or did not start in time."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent(parent: int) -> Any:
    """A ``preexec_fn`` that has Linux SIGTERM the child when the thread that started it ends.

    The child runs in a session of its own (so stopping it can take its whole group), which
    also shields it from the terminal's and ``timeout``'s signals: without this, a test run
    killed from outside would leave the emulator running for good.
    """

    prctl = (
        ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
    )  # looked up before fork

    def preexec() -> None:
        if prctl is not None:
            prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG; survives exec
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return preexec


class _Emulator:
    """A server process in its own session and process group, with its output in a log file.

    Use as a context manager (``start()`` on entry, ``stop()`` on exit); the attributes
    ``host``, ``port``, ``env`` and ``log_path`` are set once it has started. Should this
    process die without stopping it, Linux ends it too (it is tied to the starting thread:
    start it from the main thread or one that lives as long as it is needed).
    """

    name = "emulator"
    env_var = ""

    def __init__(
        self, project: str = DEFAULT_PROJECT, *, startup_timeout: float = 60.0, log_dir: str | Path | None = None
    ) -> None:
        self.project = project
        self.startup_timeout = startup_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._own_log_dir = False
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- what subclasses provide ------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _process_env(self) -> dict[str, str]:
        return dict(os.environ)

    def _ready(self) -> bool:
        """True once the server answers a request."""
        raise NotImplementedError

    @property
    def env(self) -> dict[str, str]:
        """The variables that point the Google clients at this emulator."""
        raise NotImplementedError

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Self:
        """Start the server and wait, at most ``startup_timeout`` seconds, until it answers."""
        if self._proc is not None:
            return self
        self.port = free_port()
        command = self._command()  # raises EmulatorError before anything is created
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix=f"imgclf-{self.name}-"))
            self._own_log_dir = True
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self._log_dir / f"{self.name}.log"
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._process_env(),
                cwd=self._log_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._stop_group()
                raise EmulatorError(
                    f"the {self.name} emulator exited with code {code} on start-up; see {self.log_path}:\n{self._log_tail()}"
                )
            if self._ready():
                return self
            if time.monotonic() > deadline:
                self._stop_group()
                raise EmulatorError(
                    f"the {self.name} emulator did not answer on port {self.port} within {self.startup_timeout:g} s;"
                    f" see {self.log_path}:\n{self._log_tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the whole process group; the log goes too unless the caller chose its folder."""
        self._stop_group()
        if self._own_log_dir and self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
            self._own_log_dir = False

    def _stop_group(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):  # children that outlived the leader
            os.killpg(proc.pid, signal.SIGKILL)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @contextlib.contextmanager
    def environ(self) -> Iterator[dict[str, str]]:
        """Set ``env`` in this process's environment for the block, then restore what was there."""
        previous = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            self._after_environ()
            yield self.env
        finally:
            for k, v in previous.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _after_environ(self) -> None:
        pass

    def _http_ok(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}{path}", timeout=1) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False


def _sdk_root() -> Path | None:
    for root in SDK_ROOTS:
        if Path(root, "platform", "pubsub-emulator").is_dir():
            return Path(root)
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    try:
        out = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


class PubSubEmulator(_Emulator):
    """Google's Pub/Sub emulator from the gcloud SDK (Debian package ``google-cloud-cli-pubsub-emulator``).

    The official client and Beam's ``ReadFromPubSub``/``WriteToPubSub`` use it, unpatched,
    when ``PUBSUB_EMULATOR_HOST`` is set (``environ()``); ``publisher()``/``subscriber()``
    reach it whatever the environment says.
    """

    name = "pubsub"
    env_var = "PUBSUB_EMULATOR_HOST"

    def _command(self) -> list[str]:
        root = _sdk_root()
        script = root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator" if root else None
        if script is None or not script.is_file():
            raise EmulatorError(
                "the Pub/Sub emulator is not installed: no cloud-pubsub-emulator under the gcloud SDK's"
                " platform/pubsub-emulator/bin (apt-get install google-cloud-cli-pubsub-emulator)"
            )
        return [str(script), f"--host={self.host}", f"--port={self.port}"]

    def _ready(self) -> bool:
        return self._http_ok("/")

    @property
    def target(self) -> str:
        """``host:port``, the form gRPC clients and ``PUBSUB_EMULATOR_HOST`` take."""
        return f"{self.host}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {self.env_var: self.target}

    def topic_path(self, topic: str) -> str:
        return f"projects/{self.project}/topics/{topic}"

    def subscription_path(self, subscription: str) -> str:
        return f"projects/{self.project}/subscriptions/{subscription}"

    def publisher(self, **kwargs: Any) -> pubsub_v1.PublisherClient:
        """An official publisher client on this emulator (insecure channel, no credentials)."""
        import grpc
        from google.cloud import pubsub_v1
        from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport

        transport = PublisherGrpcTransport(channel=grpc.insecure_channel(self.target), host=self.target)
        return pubsub_v1.PublisherClient(transport=transport, **kwargs)

    def subscriber(self, **kwargs: Any) -> pubsub_v1.SubscriberClient:
        """An official subscriber client on this emulator (insecure channel, no credentials)."""
        import grpc
        from google.cloud import pubsub_v1
        from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

        transport = SubscriberGrpcTransport(channel=grpc.insecure_channel(self.target), host=self.target)
        return pubsub_v1.SubscriberClient(transport=transport, **kwargs)

    def create_topic(self, topic: str) -> str:
        """Create ``topic`` (a short name) in this project; returns its full path."""
        path = self.topic_path(topic)
        publisher = self.publisher()
        try:
            publisher.create_topic(name=path, timeout=30)
        finally:
            publisher.transport.close()
        return path

    def create_subscription(self, subscription: str, topic: str, *, ack_deadline_seconds: int = 60) -> str:
        """Create a pull subscription on ``topic`` (short names); returns its full path."""
        path = self.subscription_path(subscription)
        with self.subscriber() as subscriber:
            subscriber.create_subscription(
                request={
                    "name": path,
                    "topic": self.topic_path(topic),
                    "ack_deadline_seconds": ack_deadline_seconds,
                },
                timeout=30,
            )
        return path


class BigQueryEmulator(_Emulator):
    """PyPI ``bqemulator`` (DuckDB-backed, in memory) from its own virtualenv ``.venv-emulators``.

    The official client reaches it through ``models.bigquery.client(project)`` with
    ``BIGQUERY_EMULATOR_HOST`` set; Beam's ``WriteToBigQuery`` once
    ``models.bigquery.use_emulator_if_configured()`` has run, which ``environ()`` does.
    ``ReadFromBigQuery`` does not work against it: read back with the official client.
    """

    name = "bigquery"
    env_var = "BIGQUERY_EMULATOR_HOST"

    def __init__(
        self,
        project: str = DEFAULT_PROJECT,
        *,
        startup_timeout: float = 60.0,
        log_dir: str | Path | None = None,
        venv: str | Path = EMULATORS_VENV,
        log_level: str = "warning",
    ) -> None:
        super().__init__(project, startup_timeout=startup_timeout, log_dir=log_dir)
        self.venv = Path(venv)
        self.log_level = log_level
        self.grpc_port = 0

    @property
    def home(self) -> Path:
        """The HOME it runs with: DuckDB finds its spatial extension under it, offline."""
        return self.venv / "home"

    def _command(self) -> list[str]:
        exe = self.venv / "bin" / "bqemulator"
        if not exe.is_file() or not (self.home / ".duckdb").is_dir():
            raise EmulatorError(
                f"the BigQuery emulator's virtualenv {self.venv} is missing or incomplete: `make emulators` creates it"
            )
        self.grpc_port = free_port()
        return [
            str(exe),
            "start",
            "--rest-host",
            self.host,
            "--rest-port",
            str(self.port),
            "--grpc-host",
            self.host,
            "--grpc-port",
            str(self.grpc_port),
            "--project",
            self.project,
            "--ephemeral",
            "--log-level",
            self.log_level,
            "--log-format",
            "json",  # its console format is coloured even into a file
        ]

    def _process_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["HOME"] = str(self.home)
        for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # this process's venv is not the emulator's
            env.pop(name, None)
        return env

    def _ready(self) -> bool:
        return self._http_ok(f"/bigquery/v2/projects/{self.project}/datasets")

    @property
    def url(self) -> str:
        """``http://host:port``, the form ``BIGQUERY_EMULATOR_HOST`` takes."""
        return f"http://{self.host}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {self.env_var: self.url}

    def _after_environ(self) -> None:
        from models import bigquery as bq

        bq.use_emulator_if_configured()

    def client(self) -> bigquery.Client:
        """The official client on this emulator for ``project``, anonymous."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.project, client_options={"api_endpoint": self.url}, credentials=AnonymousCredentials()
        )

    def create_dataset(self, dataset: str) -> str:
        """Create ``dataset`` in this project if it is not there; returns ``project.dataset``."""
        with self.client() as c:
            c.create_dataset(f"{self.project}.{dataset}", exists_ok=True, timeout=30)
        return f"{self.project}.{dataset}"


class PostgresServer:
    """A throwaway PostgreSQL server (Debian's ``postgresql`` package), as Cloud SQL would be.

    ``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
    user. It listens on loopback only, from a temporary folder removed on stop::

        with PostgresServer() as pg:
            url = pg.create_database("labels")  # postgresql://imgclf@127.0.0.1:PORT/labels
    """

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        initdb = str(found[-1]) if found else shutil.which("initdb")
        if initdb is None:
            raise EmulatorError("PostgreSQL is not installed: apt-get install -y postgresql (make system-deps)")
        self.bindir = Path(initdb).parent
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.root = Path(tempfile.mkdtemp(prefix="imgclf-pg-"))
        self.port = free_port()
        self.url = f"postgresql://imgclf@127.0.0.1:{self.port}"

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.as_user, *command], capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise EmulatorError(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout).strip()[-1000:]}")

    def start(self) -> Self:
        if self.as_user:
            shutil.chown(self.root, "postgres")
        data = self.root / "data"
        self._run(str(self.bindir / "initdb"), "-D", str(data), "-U", "imgclf", "--auth=trust", "-E", "UTF8")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -F"  # -F: no fsync, a throwaway server
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "log"), "-w", "-o", options, "start"
        )
        return self

    def create_database(self, name: str) -> str:
        """A fresh, empty database (an existing one of that name is dropped); returns its URL."""
        from sqlalchemy import create_engine, text

        engine = create_engine(
            f"postgresql+psycopg://imgclf@127.0.0.1:{self.port}/postgres", isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return f"{self.url}/{name}"

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
