"""Whether a prepared cache can be used: it exists, has this format, matches its sources and holds every file."""

from __future__ import annotations

import json
from pathlib import Path

from mmscel.data import layout
from mmscel.data.cache_files import CACHE_FORMAT, MANIFEST, default_cache, matrix_sources
from mmscel.data.cache_integrity import output_problem, source_is_current
from mmscel.errors import InputError


def cache_dir_for(data_dir: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of ``data_dir``.

    Parameters
    ----------
    data_dir : str or pathlib.Path
        The competition folder.
    cache_dir : str or pathlib.Path, optional
        The ``--cache`` option, which wins when given.

    Returns
    -------
    pathlib.Path
        ``cache_dir``, else ``<data_dir>/.cache``.
    """
    return Path(cache_dir) if cache_dir else default_cache(Path(data_dir))


def check_cache(data_dir: str | Path, cache_dir: str | Path | None = None, tables: tuple[str, ...] = ()) -> dict:
    """The cache manifest, once the cache is known to match the files of ``data_dir``.

    Each matrix and ``metadata.csv`` (and the ``tables`` asked for) must be the
    file its entry was built from (:func:`~mmscel.data.cache_integrity.source_is_current`:
    a few MiB read per large file), and every file of those entries must be in
    the cache with the size it was written with (a ``stat``; the bytes are
    checked by ``prepare`` and, for the ``.npz`` files, by their CRC-32 as they are read).

    Parameters
    ----------
    data_dir : str or pathlib.Path
        The competition folder whose files the cache must match.
    cache_dir : str or pathlib.Path, optional
        Where the cache is, when not in ``<data_dir>/.cache``.
    tables : tuple of str
        Tables whose CSV, when present, must match too ('evaluation', 'sample_submission').

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    InputError
        If the cache is missing, corrupt, of another format, cut short (naming
        the first missing or truncated file), or was built from other data or
        another version of these files (naming the first file that differs).
    """
    data_dir, cache = Path(data_dir), cache_dir_for(data_dir, cache_dir)
    rerun = f"run: mmscel prepare --data {data_dir}"
    manifest_path = cache / MANIFEST
    if not manifest_path.exists():
        raise InputError(cache, f"no prepared cache here; {rerun}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(manifest_path, f"corrupt manifest; {rerun}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("entries"), dict):
        raise InputError(manifest_path, f"corrupt manifest (not a cache manifest); {rerun}")
    if manifest.get("format") != CACHE_FORMAT:
        raise InputError(
            manifest_path, f"cache format {manifest.get('format')}, this mmscel reads {CACHE_FORMAT}; {rerun}"
        )
    entries = manifest["entries"]
    sources = dict(matrix_sources(data_dir))
    sources["metadata"] = data_dir / layout.METADATA
    for name in tables:
        if (data_dir / _TABLE_SOURCES[name]).exists():
            sources[name] = data_dir / _TABLE_SOURCES[name]
    for name, source in sources.items():
        entry = entries.get(name)
        if not isinstance(entry, dict):
            raise InputError(cache, f"{source.name} is not in the cache; {rerun}")
        if not source_is_current(source, entry.get("source")):
            raise InputError(cache, f"built from other data ({source.name} differs); {rerun}")
        _check_outputs(cache, entry, rerun)
    return manifest


_TABLE_SOURCES = {"evaluation": layout.EVALUATION_IDS, "sample_submission": layout.SAMPLE_SUBMISSION}


def _check_outputs(cache: Path, entry: dict, rerun: str) -> None:
    """Every file of the entry is in the cache with the size it was written with."""
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        raise InputError(cache / MANIFEST, f"corrupt manifest (an entry lists no files); {rerun}")
    for name, record in outputs.items():
        problem = output_problem(cache / str(name), record, thorough=False)
        if problem is not None:
            raise InputError(cache / str(name), f"{problem[0]}: {problem[1]}; {rerun}")


def dataset_tasks(data_dir: str | Path, cache_dir: str | Path | None = None) -> list[str]:
    """The tasks whose matrices the prepared cache holds (an import may hold one).

    Parameters
    ----------
    data_dir, cache_dir : str or pathlib.Path
        The competition folder and, when not ``<data_dir>/.cache``, its cache.

    Returns
    -------
    list of str
        Some of 'cite' and 'multi', in that order.

    Raises
    ------
    InputError
        As :func:`check_cache`.
    """
    entries = check_cache(data_dir, cache_dir).get("entries", {})
    return [name for name in ("cite", "multi") if all(stem in entries for stem in layout.task(name).stems())]
