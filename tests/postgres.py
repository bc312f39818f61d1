"""A throwaway PostgreSQL cluster from Debian's `postgresql` package: initdb and pg_ctl in a temporary folder, on a
free port of 127.0.0.1. initdb refuses to run as root, so as root it runs as the package's `postgres` user. Used by
the test session (tests/conftest.py) and by benchmarks/store_scale.py."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def bindir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not installed:
        raise FileNotFoundError("PostgreSQL is not installed: the store tests run on a real server "
                                "(`apt-get install postgresql`)")
    return installed[-1].parent


@contextlib.contextmanager
def throwaway_cluster(fsync: bool = False):
    """Yields postgresql://medvqa@127.0.0.1:PORT (no database name); the cluster is deleted afterwards. fsync off by
    default: tests kill client processes, never the machine, and it saves seconds on a slow disk."""
    binaries = bindir()
    root = Path(tempfile.mkdtemp(prefix="medvqa-pg-"))
    as_user = []
    if os.geteuid() == 0:
        import pwd

        account = pwd.getpwnam("postgres")
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run([*as_user, binaries / "initdb", "-D", data, "-U", "medvqa", "--auth=trust", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True)
    options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
               + ("" if fsync else " -c fsync=off"))
    subprocess.run([*as_user, binaries / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-o", options,
                    "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://medvqa@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def new_database(server_url: str) -> str:
    """A fresh, empty database on the server; returns its URL."""
    import uuid

    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return f"{server_url}/{name}"
