"""A temporary PostgreSQL server for the tests: its own cluster, on a free loopback port.

``initdb`` refuses to run as root, so as root the cluster belongs to the
unprivileged ``nobody`` and every server command runs through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "mmscel"


def server_binaries() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl`` (on PATH, or Debian's versioned folder), or None."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    """A TCP port nobody listens on at 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TemporaryPostgres:
    """A PostgreSQL cluster in a temporary folder, listening on 127.0.0.1 only (trust authentication).

    Parameters
    ----------
    binaries
        The folder of ``initdb`` and ``pg_ctl``.
    """

    def __init__(self, binaries: Path):
        self.binaries = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="mmscel-pg-", dir="/tmp"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._as_owner = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        if self._as_owner:
            shutil.chown(self.folder, "nobody")

    @property
    def url(self) -> str:
        """The URL of the server's default database."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        """The URL of database ``name`` on this server."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    def start(self) -> TemporaryPostgres:
        """Create the cluster and start the server; wait until it accepts connections."""
        self._run("initdb", "-D", self.data, "-U", USER, "-A", "trust", "--no-locale", "-E", "UTF8")
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", self.data, "-l", self.folder / "server.log", "-o", options, "-w", "-t", "60", "start")
        return self

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return self.database_url(name)

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        if self.data.exists():
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        """The server's log (for a failing test's message)."""
        path = self.folder / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, program: str, *args, check: bool = True) -> None:
        command = [*self._as_owner, str(self.binaries / program), *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder)
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}\n{self.log()}")
