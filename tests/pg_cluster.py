"""A private PostgreSQL cluster (initdb, a port of its own) for tests that need a
server-wide setting, a stop, or a restore: no slot or setting of the shared test
server is touched."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                          check=False).stdout.strip() or "/usr/lib/postgresql/15/bin")


def as_postgres(*cmd: str) -> list[str]:
    """``cmd`` as the ``postgres`` user when run as root (the server refuses root)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


@dataclass
class Cluster:
    home: Path
    port: int
    options: str

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def dsn(self) -> str:
        """The URL of its ``postgres`` database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run(as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-o",
                                   self.options, "-w", "-l", str(self.home / "log"), "start"),
                       check=True, capture_output=True)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(as_postgres(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", mode,
                                   "stop"), check=False, capture_output=True)

    def base_backup(self, name: str) -> Path:
        """A base backup (``pg_basebackup``, its WAL streamed with it) beside the data:
        what a DBA restores. Replication slots are not in it, as in every base backup."""
        target = self.home / name
        subprocess.run(as_postgres(str(BIN / "pg_basebackup"), "-d", self.dsn, "-D",
                                   str(target), "-X", "stream", "--no-sync"),
                       check=True, capture_output=True)
        return target

    def cold_copy(self, name: str) -> Path:
        """A copy of the stopped server's data, slots and all (a file-system snapshot);
        the server is started again."""
        self.stop()
        target = self.home / name
        shutil.copytree(self.data, target)
        self.start()
        return target

    def restore(self, backup: Path) -> None:
        """Stop the server, put ``backup`` in place of its data, start it again."""
        self.stop()
        shutil.rmtree(self.data)
        shutil.copytree(backup, self.data)
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres", str(self.data)], check=True)
        self.start()


@contextmanager
def private_cluster(*settings: str) -> Iterator[Cluster]:
    """A running cluster with logical decoding and ``settings`` (``-c`` options)."""
    if not (BIN / "initdb").exists():
        pytest.fail(f"no initdb in {BIN}: install the PostgreSQL server package")
    home = Path(tempfile.mkdtemp(prefix="cdcsync-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(as_postgres(str(BIN / "initdb"), "-D", str(home / "data"), "-A", "trust",
                               "-U", "postgres", "--no-sync"), check=True, capture_output=True)
    options = " ".join([f"-p {port} -c listen_addresses=127.0.0.1",
                        f"-c unix_socket_directories={home} -c wal_level=logical -c fsync=off",
                        *(f"-c {s}" for s in settings)])
    cluster = Cluster(home, port, options)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(home, ignore_errors=True)
