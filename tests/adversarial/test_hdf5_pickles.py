"""A crafted HDF5 file cannot make mmscel unpickle anything.

Each crafted file is a real synthetic frame with one attribute set, with h5py,
to a pickle (protocols 0 to 5) of an object whose unpickling writes a marker
file. Two encodings are planted: PyTables' own (a NUL-terminated fixed-length
string, which h5py's high-level reader cuts at the first NUL) and numpy's
(NUL-padded). The first test shows PyTables does run the payload of such a
file; every other test checks that mmscel refuses the file and the marker never appears.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import tables

from conftest import run_cli
from mmscel.data import layout
from mmscel.data.cache import prepare
from mmscel.data.h5_reader import FrameReader
from mmscel.errors import InputError
from mmscel.fsutil import file_checksum

PROTOCOLS = tuple(range(pickle.HIGHEST_PROTOCOL + 1))
ENCODINGS = ("pytables", "numpy")
# (node, attribute): every position PyTables reads an attribute from; {frame} is the file's group.
POSITIONS = (
    ("/", "TITLE"),
    ("/", "payload"),
    ("/{frame}", "TITLE"),
    ("/{frame}", "pandas_type"),
    ("/{frame}", "payload"),
    ("/{frame}/axis0", "name"),
    ("/{frame}/axis0", "kind"),
    ("/{frame}/axis1", "name"),
    ("/{frame}/block0_items", "name"),
    ("/{frame}/block0_values", "transposed"),
    ("/{frame}/block0_values", "CLASS"),
    ("/extra", "payload"),
)
# The files prepare reads first (test inputs, in the checks of the scoring tables) and later (the rest).
STEMS = (layout.CITE.test_inputs, layout.CITE.train_inputs, layout.MULTI.train_targets, "train_cite_inputs_raw")


class WritesMarker:
    """Unpickling this creates ``marker``: proof that a pickle from the file was loaded."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path: Path, node: str, key: str, value: bytes, encoding: str) -> None:
    """Set attribute ``key`` of ``node`` to the raw bytes ``value``, as PyTables or numpy would store them."""
    with h5py.File(path, "r+") as handle:
        if node not in handle:
            handle.create_dataset(node, data=np.zeros(3, np.float32))
        target = handle[node]
        if key in target.attrs:
            del target.attrs[key]
        if encoding == "numpy":
            target.attrs[key] = np.bytes_(value)
            return
        string = h5py.h5t.C_S1.copy()
        string.set_size(len(value))
        string.set_strpad(h5py.h5t.STR_NULLTERM)
        attribute = h5py.h5a.create(target.id, key.encode(), string, h5py.h5s.create(h5py.h5s.SCALAR))
        attribute.write(np.array(value, dtype=f"S{len(value)}"), mtype=string)


def crafted(source: Path, out: Path, position: tuple[str, str], protocol: int, encoding: str, marker: Path) -> Path:
    """A copy of the frame ``source`` with one attribute holding the marker payload."""
    shutil.copy(source, out)
    node, key = position
    plant(out, node.format(frame=source.stem), key, pickle.dumps(WritesMarker(marker), protocol), encoding)
    return out


def cache_snapshot(data: Path) -> dict[str, str]:
    """Every file in the cache (temporary ones included) with its checksum."""
    return {p.name: file_checksum(p) for p in sorted((data / ".cache").iterdir())}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_crafted_files_run_code_in_pytables(tiny_source, tmp_path, protocol):
    marker = tmp_path / "marker"
    path = crafted(
        tiny_source / f"{STEMS[0]}.h5", tmp_path / "x.h5", ("/{frame}", "payload"), protocol, "pytables", marker
    )
    with h5py.File(path, "r") as handle:
        seen_by_h5py = handle[f"/{STEMS[0]}"].attrs["payload"]
    if protocol >= 1:
        assert b"\0" in pickle.dumps(WritesMarker(marker), protocol)
        assert len(seen_by_h5py) < len(pickle.dumps(WritesMarker(marker), protocol))  # cut at the first NUL
    with tables.open_file(str(path)) as handle:
        handle.get_node(f"/{STEMS[0]}")._v_attrs.payload  # noqa: B018  (reading it unpickles it)
    assert marker.exists()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_attribute_position_and_protocol_is_refused(tiny_source, tmp_path, encoding):
    marker = tmp_path / "marker"
    source = tiny_source / f"{STEMS[0]}.h5"
    for position in POSITIONS:
        for protocol in PROTOCOLS:
            path = crafted(source, tmp_path / "crafted.h5", position, protocol, encoding, marker)
            with pytest.raises(InputError) as info:
                FrameReader(path).close()
            message = str(info.value)
            assert message.startswith(str(path)) and "pickled Python object" in message, (position, protocol)
            assert "\n" not in message
            assert not marker.exists(), (position, protocol)


def test_a_payload_behind_a_nul_is_refused_and_plain_data_pickles_pass(tiny_source, tmp_path):
    marker = tmp_path / "marker"
    source = tiny_source / f"{STEMS[0]}.h5"
    path = tmp_path / "x.h5"
    shutil.copy(source, path)
    for protocol in PROTOCOLS:  # pandas stores an unnamed axis as a pickled None
        plant(path, f"/{STEMS[0]}/axis0", "name", pickle.dumps(None, protocol), "pytables")
        with FrameReader(path) as reader:
            assert reader.shape == (360, 400)
    hidden = pickle.dumps(WritesMarker(marker), 0) + b"\0padding"  # a reader that cuts at the NUL sees a pickle
    plant(path, f"/{STEMS[0]}", "payload", hidden, "numpy")
    with pytest.raises(InputError, match="pickled Python object"):
        FrameReader(path)
    assert not marker.exists()


def test_prepare_refuses_every_position_and_leaves_the_cache_unchanged(tiny_copy, tmp_path):
    marker = tmp_path / "marker"
    before = cache_snapshot(tiny_copy)
    backup = tmp_path / "backup"
    backup.mkdir()
    for i, position in enumerate(POSITIONS):
        stem = STEMS[i % len(STEMS)]
        original = tiny_copy / f"{stem}.h5"
        shutil.copy(original, backup / original.name)
        try:
            crafted(backup / original.name, original, position, PROTOCOLS[i % len(PROTOCOLS)], ENCODINGS[i % 2], marker)
            with pytest.raises(InputError) as info:
                prepare(tiny_copy)
            assert str(info.value).startswith(str(original)) and "pickled" in str(info.value), position
        finally:
            shutil.copy(backup / original.name, original)
        assert not marker.exists(), position
        assert cache_snapshot(tiny_copy) == before, position


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_command_line_refuses_a_crafted_file(tiny_copy, tmp_path, protocol):
    marker = tmp_path / "marker"
    stem = STEMS[protocol % len(STEMS)]
    position = POSITIONS[(2 * protocol + 1) % len(POSITIONS)]
    source = tmp_path / f"{stem}.h5"
    shutil.copy(tiny_copy / f"{stem}.h5", source)
    crafted(source, tiny_copy / f"{stem}.h5", position, protocol, ENCODINGS[protocol % 2], marker)
    before = cache_snapshot(tiny_copy)
    result = run_cli("prepare", "--data", tiny_copy)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{stem}.h5" in lines[0] and "pickled Python object" in lines[0], lines[0]
    assert not marker.exists()
    assert cache_snapshot(tiny_copy) == before
