"""What several adversarial test modules share: a cache snapshot and a CLI that takes the tiny data as full-size."""

from __future__ import annotations

from pathlib import Path

from mmscel.fsutil import file_checksum

# The tiny competition's test inputs, claimed to be the competition's full shapes.
TINY_AS_FULL = """
import sys
from mmscel.data import layout
layout.FULL_SHAPES = {
    "cite": {**layout.FULL_SHAPES["cite"], "test": 360, "inputs": 400},
    "multi": {**layout.FULL_SHAPES["multi"], "test": 420, "inputs": 1000},
}
from mmscel.cli import main
sys.argv = ["mmscel", *sys.argv[1:]]
main()
"""


def cache_snapshot(data: Path) -> dict[str, str]:
    """Every file in the cache (temporary ones included) with its checksum."""
    return {p.name: file_checksum(p) for p in sorted((data / ".cache").iterdir())}
