"""A throwaway PostgreSQL server for the label store's tests (Debian's postgresql package).

``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
user. The server listens on loopback only, in a temporary folder removed afterwards.
"""

import glob
import os
import shutil
import subprocess
import tempfile

import pytest

from imgclf.emulators import free_port


def _bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install -y postgresql (.ci/run does this)")
    return os.path.dirname(initdb)


@pytest.fixture(scope="session")
def postgres_url():
    bindir, root = _bindir(), tempfile.mkdtemp(prefix="imgclf-pg-")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
    data, port = os.path.join(root, "data"), free_port()
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)  # noqa: E731
    run(f"{bindir}/initdb", "-D", data, "-U", "imgclf", "--auth=trust", "-E", "UTF8")
    run(
        f"{bindir}/pg_ctl",
        "-D",
        data,
        "-l",
        os.path.join(root, "log"),
        "-w",
        "start",
        "-o",
        f"-h 127.0.0.1 -p {port} -k {root} -F",
    )
    try:
        run(f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "imgclf", "labels")
        yield f"postgresql://imgclf@127.0.0.1:{port}/labels"
    finally:
        subprocess.run([*as_user, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """Each test that takes it runs on both databases; PostgreSQL gets a fresh schema per test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'labels.db'}"
    base = request.getfixturevalue("postgres_url")
    from sqlalchemy import create_engine, text

    name = f"t{abs(hash(request.node.nodeid)) % 10**9}"
    engine = create_engine(base.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        c.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        c.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return base.rsplit("/", 1)[0] + f"/{name}"
