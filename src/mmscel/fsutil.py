"""Small file-system helpers: atomic (and durable) writes, sweeping what killed processes left, file fingerprints,
parquet reads."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

#: names of the temporaries a process writes (``.<name>.<pid>.tmp``; whole folders ``.<name>.partial-<pid>``
#: and ``.<name>.import-<pid>.tmp``) or moves aside (``.<name>.old-<pid>``)
_TEMPORARY = re.compile(r"^\..+\.(?:(\d+)\.tmp|old-(\d+)|partial-(\d+)|import-(\d+)\.tmp)$")


@contextlib.contextmanager
def atomic_path(path: str | Path, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched, so
    a crash or a bad input never leaves a half-written file under the final name.

    Parameters
    ----------
    path
        The final file; its folder is created when missing.
    durable
        Flush the file to disk before the rename and the folder after it, so
        that a power cut cannot leave the new name on an empty file (manifests
        and checkpoints, which mark work as done).

    Yields
    ------
    Path
        The temporary path to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sweep_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries that killed processes left under ``folder`` (their process is gone).

    Parameters
    ----------
    folder
        Where to look, recursively (a missing folder holds nothing).

    Returns
    -------
    list of Path
        What was removed.
    """
    return _remove_dead(sorted(Path(folder).rglob(".*")) if Path(folder).is_dir() else [])


def sweep_leftovers(target: str | Path) -> list[Path]:
    """Remove what killed processes left beside ``target`` while writing it (their process is gone).

    A dataset or folder written whole goes to ``.<name>.partial-<pid>`` (or another temporary name
    of the same ``.<name>.`` prefix) and is renamed into place at the end; a process killed before
    that leaves the temporary behind, GBs of it for a full-size dataset.

    Parameters
    ----------
    target
        The file or folder being written.

    Returns
    -------
    list of Path
        What was removed.
    """
    target = Path(target)
    return _remove_dead(sorted(target.parent.glob(f".{glob.escape(target.name)}.*")))


def _remove_dead(paths: list[Path]) -> list[Path]:
    removed = []
    for path in paths:
        match = _TEMPORARY.match(path.name)
        pid = next((int(group) for group in match.groups() if group), None) if match else None
        if pid is not None and not _alive(pid) and path.exists():
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON, atomically.

    Parameters
    ----------
    path
        The file to write.
    payload
        JSON data; NumPy scalars and arrays and paths are converted.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError
        For a value JSON cannot hold (the file is left untouched).
    """
    with atomic_path(path, durable=True) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_jsonable) + "\n")
    return Path(path)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def file_checksum(path: str | Path, block: int = 2**22, limit: int | None = None) -> str:
    """Fingerprint a file by its size and contents.

    Parameters
    ----------
    path
        The file.
    block
        Bytes read at a time.
    limit
        Hash only the first ``limit`` bytes (None: all).

    Returns
    -------
    str
        The hex SHA-256 of the size (decimal text) followed by the (first ``limit``) bytes.
    """
    path = Path(path)
    digest = hashlib.sha256()
    digest.update(str(path.stat().st_size).encode())
    remaining = limit
    with path.open("rb") as handle:
        while remaining is None or remaining > 0:
            chunk = handle.read(block if remaining is None else min(block, remaining))
            if not chunk:
                break
            digest.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
    return digest.hexdigest()


def replace_dir(tmp: Path, out_dir: Path) -> None:
    """Move the finished folder ``tmp`` onto ``out_dir``.

    An existing ``out_dir`` is moved aside first, so a crash at any point leaves
    either the old or the new folder under the final name.

    Parameters
    ----------
    tmp
        The finished folder, on the same file system.
    out_dir
        The final name.
    """
    tmp, out_dir = Path(tmp), Path(out_dir)
    if out_dir.is_dir():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def read_parquet_frame(path: str | Path, columns: list[str] | None = None):
    """A parquet file as a pandas DataFrame, read through Arrow's own file reader.

    ``pandas.read_parquet`` opens a local path as a Python file object, so Arrow's I/O threads read
    it by calling back into Python. One of them still running when the interpreter shuts down
    cannot take the GIL and aborts the whole process ("terminate called without an active
    exception", exit -6) after the work is done. Given the path itself, Arrow reads the file
    natively and its threads never enter Python.

    Parameters
    ----------
    path
        The parquet file.
    columns
        The columns to read (None: all).

    Returns
    -------
    pandas.DataFrame
        The table, with the index pandas stored in it, as ``pandas.read_parquet`` returns it.
    """
    import pyarrow.parquet as pq

    return pq.read_table(os.fspath(path), columns=columns, use_pandas_metadata=True).to_pandas()
