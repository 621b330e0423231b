"""``mmscel synth`` against the cost of writing and of reading the files it produces.

    python bench/synth.py [--scale medium] [--floor-max-gb G] [--no-read-floor] [--delete-data] [--out bench/out]

Measures ``mmscel synth --scale S --seed 0 --out OUT/S`` in its own process (wall and CPU time,
peak RSS) and two baselines on its output, each file in its own process:

write floor  writing frames of the same shapes, names, blocks, chunking and compression with
             the same ``FrameWriter``, from 512 real rows of each file cycled
             (``bench/h5tools.py write-floor``): synth / write floor is the cost of the
             simulation itself;
read floor   the PyTables raw read of every produced ``.h5`` (``bench/floor.py tables``).

``--floor-max-gb G`` measures both floors of a file on its first G dense GB and scales by rows
(4 on medium and 1 on full keep them short). ``--delete-data`` removes ``OUT/S`` afterwards
(the full scale needs ~40 GB free). Writes ``OUT/synth.json`` (section = the scale).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    add_out_argument,
    bench_script,
    markdown_table,
    measured_step,
    mmscel_command,
    publish,
    run_measured,
    warm_page_cache,
)


def measure_synth(scale: str, data: Path, out: Path) -> dict:
    """Generate ``data`` afresh with a measured ``mmscel synth``."""
    shutil.rmtree(data, ignore_errors=True)
    command = mmscel_command() + ["synth", "--scale", scale, "--seed", "0", "--out", data]
    return run_measured(command, log=out / "logs" / f"synth_{scale}.log", poll=1.0)


def write_floors(files: list[Path], data: Path, out: Path, max_gb: float) -> dict:
    scratch = out / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    floors = {}
    for path in files:
        print(f"  write floor {path.relative_to(data)} ...", flush=True)
        command = bench_script("h5tools.py") + ["write-floor", path, scratch / path.name, "--max-dense-gb", max_gb]
        floors[str(path.relative_to(data))] = measured_step(command, out / "logs" / f"synth_writefloor_{path.stem}.log")
    return floors


def read_floors(files: list[Path], data: Path, out: Path, max_gb: float) -> dict:
    floors = {}
    for path in files:
        print(f"  read floor {path.relative_to(data)} ...", flush=True)
        warm_page_cache(path)
        command = bench_script("floor.py") + ["tables", path, "--max-dense-gb", max_gb]
        floors[str(path.relative_to(data))] = measured_step(command, out / "logs" / f"synth_readfloor_{path.stem}.log")
    return floors


def file_sizes(data: Path) -> dict[str, int]:
    return {str(path.relative_to(data)): path.stat().st_size for path in sorted(data.rglob("*")) if path.is_file()}


def summary(synth: dict, write: dict, read: dict, sizes: dict) -> dict:
    write_s = sum(r["loop_s"] for r in write.values())
    write_cpu = sum(r["loop_cpu_s"] for r in write.values())
    read_s = sum(r["loop_s"] for r in read.values()) if read else None
    return {
        "total_bytes": sum(sizes.values()),
        "h5_bytes": sum(size for name, size in sizes.items() if name.endswith(".h5")),
        "dense_bytes": sum(r["dense_bytes"] for r in write.values()),
        "write_floor_s": write_s,
        "write_floor_cpu_s": write_cpu,
        "read_floor_s": read_s,
        "synth_over_write_floor": synth["wall_s"] / write_s,
        "synth_over_write_floor_cpu": synth["cpu_s"] / write_cpu,
        "synth_over_read_floor": synth["wall_s"] / read_s if read_s else None,
    }


def report(result: dict) -> str:
    s, t = result["synth"], result["totals"]
    lines = [
        f"synth --scale {result['scale']}: {s['wall_s']:,.1f} s wall, {s['cpu_s']:,.1f} s CPU, "
        f"peak RSS {s['peak_rss_mib']:,.0f} MiB (polled {s['polled_peak_rss_mib']:,.0f}), "
        f"mean load {s['mean_loadavg'] or 0:.1f}",
        f".h5 {t['h5_bytes'] / 1e9:.2f} GB of {t['total_bytes'] / 1e9:.2f} GB on disk, "
        f"{t['dense_bytes'] / 1e9:.1f} GB dense",
        f"write floor {t['write_floor_s']:,.1f} s wall, {t['write_floor_cpu_s']:,.1f} s CPU: synth / write floor "
        f"{t['synth_over_write_floor']:.1f}x wall, {t['synth_over_write_floor_cpu']:.1f}x CPU",
    ]
    if t["read_floor_s"]:
        lines.append(f"read floor {t['read_floor_s']:,.1f} s: synth / read floor {t['synth_over_read_floor']:.1f}x")
    rows = [
        [
            name,
            w["rows"],
            w["columns"],
            w["dense_bytes"] / 1e9,
            result["sizes"][name] / 1e9,
            w["loop_s"],
            result["read_floor"].get(name, {}).get("loop_s"),
        ]
        for name, w in result["write_floor"].items()
    ]
    headers = ["file", "rows", "cols", "dense GB", "on disk GB", "write floor s", "read floor s"]
    return "\n".join(lines) + "\n\n" + markdown_table(headers, rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="medium", choices=["tiny", "small", "medium", "full"])
    parser.add_argument("--floor-max-gb", type=float, default=0.0, help="floors on the first G dense GB of a file")
    parser.add_argument("--no-read-floor", action="store_true", help="skip the raw read of the produced files")
    parser.add_argument("--delete-data", action="store_true", help="delete OUT/<scale> afterwards")
    add_out_argument(parser)
    args = parser.parse_args(argv)
    data = args.out / args.scale
    print(f"== synth --scale {args.scale}", flush=True)
    synth = measure_synth(args.scale, data, args.out)
    files = sorted(path for path in data.rglob("*.h5") if path.is_file())
    write = write_floors(files, data, args.out, args.floor_max_gb)
    read = {} if args.no_read_floor else read_floors(files, data, args.out, args.floor_max_gb)
    sizes = file_sizes(data)
    truth = json.loads((data / "truth" / "truth.json").read_text())
    result = {
        "scale": args.scale,
        "floor_max_gb": args.floor_max_gb,
        "synth": synth,
        "shapes": truth.get("shapes"),
        "sizes": sizes,
        "write_floor": write,
        "read_floor": read,
        "totals": summary(synth, write, read, sizes),
    }
    if args.delete_data:
        shutil.rmtree(data, ignore_errors=True)
    return publish(args.out, "synth", args.scale, result, report(result))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
