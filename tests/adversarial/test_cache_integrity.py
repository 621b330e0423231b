"""A damaged cache is rebuilt by ``prepare`` and refused by the readers; sources are fingerprinted by content.

Each case damages one file of a prepared tiny competition the way a kill, a
full disk, a bad copy or an editor that keeps the file's time would, then
checks that ``prepare`` says what it rebuilds and ends with the very bytes it
wrote the first time, and that a reader (``load``, ``baseline``) refuses the
damaged cache in one line naming the file, with exit 2 and nothing written.
Also here: NumPy reprs never reach a message, and ``submit``'s row-count check.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import TINY_AS_FULL, cache_snapshot

from conftest import run_cli
from mmscel.data import layout
from mmscel.data.cache import LEAK_REPORT, MANIFEST, idxcol_path, prepare, values_path
from mmscel.data.cache_integrity import BLOCK_BYTES, EDGE_BYTES, sampled_checksum, source_is_current, source_record
from mmscel.data.cache_tables import EVALUATION_TYPES, SUBMISSION_TYPES, stream_csv, table_entry
from mmscel.data.error_text import plain, shown
from mmscel.data.h5_reader import FrameReader
from mmscel.data.h5_writer import write_frame
from mmscel.data.load import check_cache, load
from mmscel.errors import InputError
from mmscel.fsutil import write_json
from mmscel.submission import evaluation_rows

SRC = Path(__file__).resolve().parents[2] / "src" / "mmscel"


def manifest_of(data: Path) -> dict:
    return json.loads((data / ".cache" / MANIFEST).read_text())


def one_line_refusal(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2 and a single stderr line without a traceback or a NumPy repr, holding every fragment."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "np." not in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def refused_baseline(data: Path, *fragments: str) -> str:
    """``mmscel baseline`` on a damaged cache: refused in one line, nothing written anywhere."""
    before = cache_snapshot(data)
    out = data.parent / "baseline.csv"
    line = one_line_refusal(run_cli("baseline", "--data", data, "--out", out, "--oof", data.parent / "oof"), *fragments)
    assert cache_snapshot(data) == before
    assert not out.exists() and not (data.parent / "oof").exists()
    assert not [p for p in data.parent.iterdir() if p.name.startswith(".")]
    return line


def rebuilt_by_prepare(data: Path, original: dict[str, str], *fragments: str) -> str:
    """``mmscel prepare`` rebuilds the damage, says so on stderr, and the cache is byte-identical to ``original``."""
    result = run_cli("prepare", "--data", data)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    assert cache_snapshot(data) == original
    return result.stderr


def flip_middle(path: Path, count: int = 8) -> None:
    """Invert ``count`` bytes in the middle of a file, keeping its size and modification time."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + count] = bytes(255 - b for b in data[middle : middle + count])
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# ----------------------------------------------------------------------------- damaged outputs


def test_a_truncated_npz_is_refused_by_load_and_rebuilt_by_prepare(tiny_copy):
    original = cache_snapshot(tiny_copy)
    path = values_path(tiny_copy / ".cache", layout.CITE.train_targets)
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(InputError, match="cut short") as info:
        load("cite", "train", tiny_copy)
    assert info.value.where == str(path)
    refused_baseline(tiny_copy, str(path), f"{size // 2:,} bytes, {size:,} when written", "mmscel prepare")
    rebuilt_by_prepare(tiny_copy, original, "train_cite_targets: rebuilt: damaged", path.name)


def test_bytes_flipped_inside_an_npz_are_refused_when_read_and_rebuilt_by_prepare(tiny_copy):
    original = cache_snapshot(tiny_copy)
    path = values_path(tiny_copy / ".cache", layout.CITE.train_targets)
    flip_middle(path)
    check_cache(tiny_copy)  # same size: the quick check before every load passes ...
    with pytest.raises(InputError, match="damaged or unreadable cache file") as info:
        load("cite", "train", tiny_copy)  # ... and the zip member's CRC-32 refuses it as it is read
    assert info.value.where == str(path)
    refused_baseline(tiny_copy, str(path), "damaged or unreadable cache file", "run mmscel prepare")
    stderr = rebuilt_by_prepare(tiny_copy, original, "train_cite_targets: rebuilt: damaged", "checksum")
    assert len(stderr.strip().splitlines()) == 1
    assert run_cli("baseline", "--data", tiny_copy, "--out", tiny_copy.parent / "b.csv").returncode == 0


def test_a_damaged_idxcol_is_refused_when_read_with_how_to_rebuild_it(tiny_copy):
    original = cache_snapshot(tiny_copy)
    path = idxcol_path(tiny_copy / ".cache", layout.MULTI.test_inputs)
    flip_middle(path)
    with pytest.raises(InputError, match="delete it and run mmscel prepare") as info:
        load("multi", "test", tiny_copy)
    assert info.value.where == str(path)
    rebuilt_by_prepare(tiny_copy, original, "test_multi_inputs: rebuilt: damaged", path.name)


def test_a_deleted_output_is_refused_and_rebuilt(tiny_copy):
    original = cache_snapshot(tiny_copy)
    path = idxcol_path(tiny_copy / ".cache", layout.MULTI.test_inputs)
    path.unlink()
    with pytest.raises(InputError, match="missing") as info:
        load("multi", "test", tiny_copy)
    assert info.value.where == str(path)
    refused_baseline(tiny_copy, str(path), "missing", "run: mmscel prepare")
    rebuilt_by_prepare(tiny_copy, original, "test_multi_inputs: rebuilt: missing", path.name)


@pytest.mark.parametrize(
    "name, entry",
    [
        ("evaluation.parquet", "evaluation"),
        ("metadata.parquet", "metadata"),
        (f"{layout.CITE.train_inputs}_rowdigest.npy", layout.CITE.train_inputs),
        (f"{layout.MULTI.train_inputs}_idxcol.npz", layout.MULTI.train_inputs),
        (LEAK_REPORT, "cite_test_duplicates"),
    ],
)
def test_every_kind_of_cache_file_is_verified_by_prepare(tiny_copy, name, entry):
    original = cache_snapshot(tiny_copy)
    flip_middle(tiny_copy / ".cache" / name)
    report = prepare(tiny_copy)
    assert report.rebuilt[entry].startswith("damaged") and report.status(entry) == "rebuilt: damaged"
    assert cache_snapshot(tiny_copy) == original
    assert prepare(tiny_copy).built == []


def test_an_undamaged_cache_is_reused_whole(tiny_copy):
    original = cache_snapshot(tiny_copy)
    result = run_cli("prepare", "--data", tiny_copy)
    assert result.returncode == 0 and "rebuilt" not in result.stderr and "built" not in result.stdout
    assert cache_snapshot(tiny_copy) == original


# ----------------------------------------------------------------------------- the manifest


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda manifest: [1, 2], "not a cache manifest"),
        (lambda manifest: {**manifest, "format": 2}, "cache format 2"),
        (lambda manifest: {**manifest, "entries": {**manifest["entries"], "metadata": {"source": {}}}}, "differs"),
    ],
)
def test_a_foreign_or_damaged_manifest_is_refused_by_load_and_rebuilt_by_prepare(tiny_copy, damage, fragment):
    original = cache_snapshot(tiny_copy)
    path = tiny_copy / ".cache" / MANIFEST
    write_json(path, damage(json.loads(path.read_text())))
    refused_baseline(tiny_copy, fragment, "mmscel prepare")
    result = run_cli("prepare", "--data", tiny_copy)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert {k: v for k, v in cache_snapshot(tiny_copy).items() if k != MANIFEST} == {
        k: v for k, v in original.items() if k != MANIFEST
    }


# ----------------------------------------------------------------------------- sources


def edit_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Replace the first ``old`` by ``new`` (same length) and put the modification time back."""
    assert len(old) == len(new)
    stat = path.stat()
    content = path.read_bytes()
    assert old in content
    path.write_bytes(content.replace(old, new, 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


def test_metadata_edited_in_place_with_its_time_restored_is_noticed(tiny_copy):
    original = cache_snapshot(tiny_copy)
    path = tiny_copy / layout.METADATA
    saved = path.read_bytes()
    stat = path.stat()
    frame = pd.read_csv(path, dtype=str)
    row = frame.iloc[5]
    line = ",".join(row).encode()
    other_day = "3" if row["day"] != "3" else "4"
    edit_in_place(path, line, line.replace(f",{row['day']},".encode(), f",{other_day},".encode(), 1))
    with pytest.raises(InputError, match=r"built from other data \(metadata.csv differs\)"):
        load("cite", "train", tiny_copy)
    refused_baseline(tiny_copy, "metadata.csv differs", "run: mmscel prepare")
    report = prepare(tiny_copy)
    assert "metadata" in report.built and "metadata" not in report.rebuilt
    cached = pd.read_parquet(tiny_copy / ".cache" / "metadata.parquet").set_index("cell_id")
    assert str(cached.loc[row["cell_id"], "day"]) == other_day
    path.write_bytes(saved)  # the original back, time and all: the cache is the original again
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert prepare(tiny_copy).built == ["metadata"]
    assert cache_snapshot(tiny_copy) == original


def test_a_matrix_edited_in_place_with_its_time_restored_is_noticed(tiny_copy):
    path = tiny_copy / f"{layout.CITE.train_inputs}.h5"
    record = manifest_of(tiny_copy)["entries"][layout.CITE.train_inputs]["source"]
    flip_middle(path, count=1)  # the tiny files are smaller than the sample: every byte is seen
    assert not source_is_current(path, record)
    with pytest.raises(InputError, match="train_cite_inputs.h5 differs"):
        check_cache(tiny_copy)


def test_what_the_sampled_fingerprint_of_a_large_file_sees(tmp_path):
    path = tmp_path / "large.h5"
    size = 4 * EDGE_BYTES + 12_345
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    record = source_record(path)
    assert "sampled_sha256" in record and source_is_current(path, record)
    unsampled = EDGE_BYTES + BLOCK_BYTES + 1_000  # past the first interior block, before the second
    for offset, seen in [(10, True), (size - 10, True), (EDGE_BYTES + 100, True), (unsampled, False)]:
        content = bytearray(path.read_bytes())
        content[offset] ^= 0xFF
        stat = path.stat()
        path.write_bytes(bytes(content))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert source_is_current(path, record) is not seen, offset  # time restored: only the sample is compared
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert not source_is_current(path, record), offset  # another time: the whole file is hashed
        content[offset] ^= 0xFF
        path.write_bytes(bytes(content))
        os.utime(path, ns=(stat.st_atime_ns, record["mtime_ns"]))
    assert sampled_checksum(path) == record["sampled_sha256"]
    with path.open("ab") as handle:
        handle.write(b"x")
    assert not source_is_current(path, record)


def test_a_touched_source_is_rehashed_once_then_checked_quickly_again(tiny_copy):
    path = tiny_copy / f"{layout.MULTI.train_inputs}.h5"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert prepare(tiny_copy).built == []
    assert (
        manifest_of(tiny_copy)["entries"][layout.MULTI.train_inputs]["source"]["mtime_ns"] == stat.st_mtime_ns + 10**9
    )


# ----------------------------------------------------------------------------- submit's row count


def forge_cached_table(data: Path, name: str, keep_rows: int) -> Path:
    """Cut a scoring CSV to ``keep_rows`` rows and cache it as an older ``prepare`` would have, unchecked."""
    csv_name, types, columns = {
        "evaluation": (layout.EVALUATION_IDS, EVALUATION_TYPES, layout.EVALUATION_COLUMNS),
        "sample_submission": (layout.SAMPLE_SUBMISSION, SUBMISSION_TYPES, layout.SUBMISSION_COLUMNS),
    }[name]
    source = data / csv_name
    lines = source.read_text().splitlines(keepends=True)
    source.write_text("".join(lines[: keep_rows + 1]))
    out = data / ".cache" / f"{name}.parquet"
    stream_csv(source, out, columns, types)
    manifest = manifest_of(data)
    manifest["entries"][name] = table_entry(source, out)
    write_json(data / ".cache" / MANIFEST, manifest)
    return source


def test_submit_refuses_cached_evaluation_rows_that_the_sample_submission_does_not_have(tiny_copy):
    rows = len(pd.read_csv(tiny_copy / layout.SAMPLE_SUBMISSION))
    source = forge_cached_table(tiny_copy, "evaluation", rows // 2)
    with pytest.raises(InputError, match="sample_submission.csv has"):
        evaluation_rows(tiny_copy)
    refused_baseline(tiny_copy, str(source), f"{rows // 2:,} rows but sample_submission.csv has {rows:,}")


def test_submit_refuses_a_cut_evaluation_on_the_competitions_full_shapes(tiny_copy):
    rows = len(pd.read_csv(tiny_copy / layout.SAMPLE_SUBMISSION)) - 100
    source = forge_cached_table(tiny_copy, "evaluation", rows)
    forge_cached_table(tiny_copy, "sample_submission", rows)
    evaluation_rows(tiny_copy)  # equal counts, and not the competition's shapes: accepted
    out = tiny_copy.parent / "full.csv"
    result = subprocess.run(
        [sys.executable, "-c", TINY_AS_FULL, "baseline", "--data", str(tiny_copy), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    one_line_refusal(result, str(source), f"{rows:,} rows; the competition's has {layout.FULL_SUBMISSION_ROWS:,}")
    assert not out.exists()


def test_submit_refuses_an_evaluation_ids_csv_changed_since_prepare(tiny_copy):
    path = tiny_copy / layout.EVALUATION_IDS
    content = path.read_bytes()
    stat = path.stat()
    path.write_bytes(content[:-30] + content[-30:].swapcase())
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    refused_baseline(tiny_copy, "evaluation_ids.csv differs", "run: mmscel prepare")


# ----------------------------------------------------------------------------- NumPy reprs


def test_plain_values_for_messages():
    assert shown(np.str_("x")) == "'x'" and shown(np.int64(480)) == "480"
    assert shown([np.str_("a"), np.int32(2)]) == "['a', 2]" and shown((np.float64(0.5),)) == "(0.5,)"
    assert shown(np.array(["a", "b"])) == "['a', 'b']" and shown(np.array(["a"], dtype=object)) == "['a']"
    assert plain({1}) == {1} and plain("x") == "x" and shown(None) == "None"


def test_no_message_of_the_data_side_formats_with_repr():
    """Every ``!r`` in an f-string of the data side goes through ``shown`` instead (NumPy scalars print plainly)."""
    files = [*sorted((SRC / "data").rglob("*.py")), SRC / "submission.py"]
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FormattedValue) and node.conversion == ord("r"):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, found


def test_a_cell_id_read_from_a_file_is_shown_plainly(tiny_copy):
    path = tiny_copy / f"{layout.CITE.train_inputs}.h5"
    with FrameReader(path) as reader:
        values, index, columns = reader.read_rows(0, reader.shape[0]), reader.index.copy(), reader.columns
    index[3] = "not_a_known_cell"
    write_frame(path, path.stem, index, columns, values)
    result = run_cli("prepare", "--data", tiny_copy)
    one_line_refusal(result, str(path), "(first: 'not_a_known_cell')")
