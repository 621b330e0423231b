"""Whether a cache entry is still what ``prepare`` wrote, from the same source: fingerprints and their checks.

**Outputs.** Every file an entry writes is recorded in the manifest with its
size and a checksum taken right after it was written. ``prepare`` verifies
them before reusing the entry: a file up to ``FULL_OUTPUT_BYTES`` (8 MiB:
tables, row and column names, row digests at most scales, ~12 ms to hash)
is hashed whole; a larger one (the CSR values, GBs at full scale) by its size
and a :func:`sampled_checksum` of its head, its tail and blocks spread
between. The tail is where a zip archive keeps its directory and a parquet
file its footer, so a cut, an appended or a replaced file is always caught.
What the sample cannot see, damage to a few bytes in the middle of a large
``.npz``, is caught when the file is read: each zip member carries a CRC-32
that ``numpy.load``, ``scipy.sparse.load_npz`` and
:func:`mmscel.data.sparse_npz.read_stacked` all verify, and a failed read is
refused with one line saying to delete the file and run ``prepare``. Checking
every byte at each ``prepare`` would read the whole cache (tens of GB at full
scale) to do nothing. An entry whose output does not verify is rebuilt, and
``prepare`` says so on stderr (``rebuilt: damaged`` or ``rebuilt: missing``).
:func:`mmscel.data.load.check_cache`, run before every load, checks only that
each output exists with its recorded size (a ``stat``), so a missing or cut
file is refused in one line instead of failing inside a reader.

**Sources.** A source is the file it was built from when its size matches and
its content does: a table (CSV) up to ``FULL_TABLE_BYTES`` (256 MiB: all of
them below the full scale, and ``metadata.csv`` there) is hashed whole at
every check; a matrix, and a larger table, is compared by its
:func:`sampled_checksum` while its modification time is the recorded one, and
hashed whole (the SHA-256 the manifest has always kept) when the time differs.
So an edit that keeps the size and restores the time is caught in a small
table wherever it is, and in a large file when it touches its head, its tail
or a sampled block (3 MiB in all): another file or another release put in its
place differs there almost surely (compressed chunks differ throughout, and
HDF5 keeps its superblock and root metadata at the head). It misses an edit of
a few bytes in the middle of a large file whose size and time were both put
back; excluding that would mean reading the 100+ GB of sources at every check
(minutes). An edit that changes the time is always caught: the whole file is hashed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mmscel.fsutil import file_checksum
from mmscel.progress import console

FULL_OUTPUT_BYTES = 8 << 20
FULL_TABLE_BYTES = 256 << 20
EDGE_BYTES = 1 << 20
BLOCK_BYTES = 1 << 16
INTERIOR_BLOCKS = 16


def sampled_checksum(path: str | Path) -> str:
    """Fingerprint a large file by its size, head, tail and ``INTERIOR_BLOCKS`` blocks spread between.

    Reads at most 3 MiB whatever the file's size; a file no larger than that is hashed whole.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    str
        The hex SHA-256 of the size and the sampled bytes.
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256(f"sampled {size}".encode())
    with path.open("rb") as handle:
        for start, length in _sample_ranges(size):
            handle.seek(start)
            digest.update(handle.read(length))
    return digest.hexdigest()


def _sample_ranges(size: int) -> list[tuple[int, int]]:
    if size <= 2 * EDGE_BYTES + INTERIOR_BLOCKS * BLOCK_BYTES:
        return [(0, size)]
    first, last = EDGE_BYTES, size - EDGE_BYTES - BLOCK_BYTES
    interior = [(first + (last - first) * i // (INTERIOR_BLOCKS - 1), BLOCK_BYTES) for i in range(INTERIOR_BLOCKS)]
    return [(0, EDGE_BYTES), *interior, (size - EDGE_BYTES, EDGE_BYTES)]


def source_record(path: Path, whole_up_to: int = 0) -> dict:
    """What the manifest remembers of a source file.

    Parameters
    ----------
    path : pathlib.Path
        The source file.
    whole_up_to : int
        Up to this size the file is hashed whole at every check; a larger one
        also gets a sampled checksum, compared while its time is unchanged.

    Returns
    -------
    dict
        Its name, size, modification time (ns) and SHA-256, and ``sampled_sha256`` when larger than ``whole_up_to``.
    """
    stat = path.stat()
    record = {"file": path.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": file_checksum(path)}
    if stat.st_size > whole_up_to:
        record["sampled_sha256"] = sampled_checksum(path)
    return record


def source_is_current(path: Path, record: dict | None, refresh: bool = False) -> bool:
    """Whether ``path`` holds the content ``record`` describes.

    The size must match; then a file recorded with a sampled checksum is
    compared by it while its modification time is the recorded one, and any
    other file by its whole SHA-256.

    Parameters
    ----------
    path : pathlib.Path
        The source file.
    record : dict or None
        What :func:`source_record` returned when the entry was built.
    refresh : bool
        When the file's time changed but its whole SHA-256 matched, record
        the new time (and sample) in ``record``, so the next check is quick again.

    Returns
    -------
    bool
        False when there is no record or no file.
    """
    if not isinstance(record, dict) or not path.is_file():
        return False
    stat = path.stat()
    if stat.st_size != record.get("size"):
        return False
    sampled = record.get("sampled_sha256")
    if sampled is not None and stat.st_mtime_ns == record.get("mtime_ns"):
        return sampled_checksum(path) == sampled
    if file_checksum(path) != record.get("sha256"):
        return False
    if refresh and sampled is not None:
        record.update(mtime_ns=stat.st_mtime_ns, sampled_sha256=sampled_checksum(path))
    return True


def outputs_record(paths: list[Path]) -> dict[str, dict]:
    """Size and checksum of files just written, by file name, for the manifest.

    Parameters
    ----------
    paths : list of pathlib.Path
        The files of one cache entry.

    Returns
    -------
    dict of str to dict
        ``{name: {"size", "sha256"}}`` for files up to ``FULL_OUTPUT_BYTES``,
        ``{name: {"size", "sampled_sha256"}}`` for larger ones.
    """
    records = {}
    for path in paths:
        size = path.stat().st_size
        if size <= FULL_OUTPUT_BYTES:
            records[path.name] = {"size": size, "sha256": file_checksum(path)}
        else:
            records[path.name] = {"size": size, "sampled_sha256": sampled_checksum(path)}
    return records


def output_problem(path: Path, record: object, thorough: bool = True) -> tuple[str, str] | None:
    """What is wrong with one output file of the cache, or None when it verifies.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    record : object
        Its record from :func:`outputs_record` (anything else is unverifiable).
    thorough : bool
        Compare the checksum too; False checks only that the file exists with its size.

    Returns
    -------
    tuple of (str, str) or None
        The kind ('missing' or 'damaged') and a detail.
    """
    if not path.is_file():
        return "missing", "not in the cache"
    if not isinstance(record, dict) or not isinstance(record.get("size"), int):
        return "damaged", "no size or checksum was recorded for it"
    size = path.stat().st_size
    if size != record["size"]:
        return "damaged", f"{size:,} bytes, {record['size']:,} when written (cut short or replaced)"
    if not thorough:
        return None
    if "sha256" in record:
        same = file_checksum(path) == record["sha256"]
    elif "sampled_sha256" in record:
        same = sampled_checksum(path) == record["sampled_sha256"]
    else:
        return "damaged", "no checksum was recorded for it"
    return None if same else ("damaged", "its bytes differ from the checksum taken when it was written")


def entry_problem(entry: object, source: Path, cache: Path, outputs: list[Path]) -> tuple[str, str] | None:
    """Why a cache entry must be (re)built, or None when it can be reused.

    Parameters
    ----------
    entry : object
        The manifest's entry (a dict with ``source`` and ``outputs``), or None.
    source : pathlib.Path
        The file the entry is built from.
    cache : pathlib.Path
        The cache folder.
    outputs : list of pathlib.Path
        The files the entry must have.

    Returns
    -------
    tuple of (str, str) or None
        The kind ('new', 'changed', 'missing' or 'damaged') and a detail.
    """
    if not isinstance(entry, dict):
        return "new", "not in the cache"
    if not source_is_current(source, entry.get("source"), refresh=True):
        return "changed", f"{source.name} changed"
    recorded = entry.get("outputs")
    recorded = recorded if isinstance(recorded, dict) else {}
    for path in outputs:
        problem = output_problem(path, recorded.get(path.name))
        if problem is not None:
            return problem[0], f"{Path(cache) / path.name}: {problem[1]}"
    return None


def announce_rebuild(name: str, problem: tuple[str, str]) -> None:
    """Say on stderr that an entry is rebuilt because its output was missing or damaged.

    Parameters
    ----------
    name : str
        The entry (a matrix stem or table name).
    problem : tuple of (str, str)
        The kind ('missing' or 'damaged') and detail, as :func:`entry_problem` returns them.
    """
    console.print(f"{name}: rebuilt: {problem[0]} ({problem[1]})", markup=False, highlight=False, soft_wrap=True)
