"""Shared fixtures: one tiny synthetic competition (with raw files) prepared once per session, a PostgreSQL server."""

from __future__ import annotations

import os

# As the command line does: OpenMP threads that spin while waiting steal the other core of a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmscel.data.cache import prepare
from mmscel.data.synth.generate import generate

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "real-data"


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory) -> Path:
    """A tiny synthetic competition (never modified by tests; copy it first)."""
    out = tmp_path_factory.mktemp("synth") / "tiny"
    generate(out, "tiny", seed=0, raw=True)
    return out


@pytest.fixture(scope="session")
def tiny_prepared(tiny_source) -> Path:
    """The tiny competition with its sparse cache (read-only for tests)."""
    prepare(tiny_source)
    return tiny_source


@pytest.fixture
def tiny_copy(tiny_prepared, tmp_path) -> Path:
    """A private copy of the prepared tiny competition that a test may damage."""
    target = tmp_path / "data"
    shutil.copytree(tiny_prepared, target)
    return target


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The small real datasets beside the project (skip when absent)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data folder {REAL_DATA} is absent")
    return REAL_DATA


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server of the test session's own, on a free loopback port."""
    from postgres_server import TemporaryPostgres, server_binaries

    binaries = server_binaries()
    if binaries is None:
        pytest.fail("PostgreSQL's initdb and pg_ctl are missing: run .ci/ensure-postgres (make test does)")
    server = TemporaryPostgres(binaries).start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres, request) -> str:
    """The URL of a fresh database on the test session's PostgreSQL server."""
    name = "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    return postgres.create_database(f"t_{name}")


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``mmscel`` in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "mmscel.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )
