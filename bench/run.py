"""Benchmarks of ``mmscel prepare`` and ``mmscel synth`` (issue 2).

    python bench/run.py [--only prepare|synth|variants] [--scale medium] [--repeat N]
                        [--delete-data] [--no-read-floor] [--floor-max-gb G] [--no-h5py] [--report]

Not part of the test suite. Every figure is reported both absolutely and as a
ratio against a baseline measured in the same run on the same machine, and
every measured step runs in its own subprocess (``bench/measure.py``) so that
peak RSS of one step never contaminates another.

prepare (on the synthetic ``--scale``, default medium):
  for each matrix: the PyTables raw-read floor (``block0_values`` in the row
  chunks prepare uses), the same read with h5py + hdf5plugin, a
  read + ``np.nonzero`` diagnostic, the SHA-256 of the source, and prepare
  of that matrix alone (``bench/prepare_one.py``); throughput ratio
  prepare / floor. Then peak RSS of prepare on the first 12.5/25/50/100% rows
  of train_multi_inputs, and the whole ``mmscel prepare`` CLI on the folder.

synth (``--scale``): wall time and peak RSS of ``mmscel synth``; output sizes;
  baseline 1 "write floor": writing the same frames (same shape, names,
  blocks, chunking, compression and content statistics) with the same
  ``FrameWriter`` from cycled sample rows; baseline 2 "read floor": the
  PyTables raw read of every produced file.

variants: candidate fixes of prepare's loop (``bench/prepare_variants.py``):
  boolean-mask scan, prefetch thread, both; against the same PyTables floor;
  and a best-of-5 per-chunk micro-benchmark of the scan (``bench/scan_micro.py``).

Results: ``bench/out/results_<section>_<scale>.json`` per section and the
merge of all of them in ``bench/out/results.json``; a table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
PY = sys.executable
sys.path.insert(0, str(HERE))

from measure import run_measured

MIB = 2**20
PREPARE_MATRICES = [
    "train_multi_inputs",
    "test_multi_inputs",
    "train_cite_inputs",
    "test_cite_inputs",
    "train_multi_targets",
]
SUBSET_FRACTIONS = [0.125, 0.25, 0.5]


def mmscel_cmd() -> list[str]:
    exe = Path(PY).with_name("mmscel")
    return [str(exe)] if exe.exists() else [PY, "-m", "mmscel.cli"]


# ----------------------------------------------------------------- helpers


MACHINE_PROBE = r"""
import json, os, platform
import numpy, psutil, tables
cpu = ""
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
info = {"cpu": cpu, "logical_cpus": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(), "numpy": numpy.__version__, "tables": tables.__version__,
        "hdf5": tables.hdf5_version, "blosc_threads": tables.parameters.MAX_BLOSC_THREADS, "kernel": platform.release()}
try:
    import h5py
    info["h5py"] = h5py.__version__
    import hdf5plugin
    info["hdf5plugin"] = hdf5plugin.version
except ImportError:
    pass
print(json.dumps(info))
"""

_MACHINE: dict | None = None


def machine() -> dict:
    """Machine and library versions, probed in a subprocess (numpy and tables stay out of this process)."""
    global _MACHINE
    if _MACHINE is None:
        _MACHINE = json.loads(
            subprocess.run([PY, "-c", MACHINE_PROBE], capture_output=True, text=True, check=True).stdout
        )
    return _MACHINE


def warm(path: Path) -> float:
    """Read a file once so that the measured steps all start from a warm page cache."""
    started = time.perf_counter()
    with open(path, "rb") as handle:
        while handle.read(16 * MIB):
            pass
    return time.perf_counter() - started


def step(cmd: list[str], log_name: str) -> dict:
    """Run one measured step; merge the JSON line it prints into the measurement."""
    log = OUT / "logs" / f"{log_name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    result = run_measured(cmd, log=log, cwd=str(ROOT))
    result["parent_rss_mib"] = parent_rss_mib()
    result["loadavg_1min_after"] = os.getloadavg()[0]
    for line in reversed(log.read_text(errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                result.update(json.loads(line))
                break
            except json.JSONDecodeError:
                continue
    return result


def parent_rss_mib() -> float:
    """RSS of this driver process. Linux counts the forking parent's resident pages in the child's
    ru_maxrss (the pre-exec address space), so this driver imports neither numpy nor tables and stays
    well below every measured step; recorded with each step as a check."""
    import psutil

    return psutil.Process().memory_info().rss / MIB


def best(results: list[dict]) -> dict:
    """Fastest of several repeats, with the worst peak RSS of them."""
    fastest = dict(min(results, key=lambda r: r.get("loop_s", r["wall_s"])))
    fastest["peak_rss_mib"] = max(r["peak_rss_mib"] for r in results)
    fastest["repeats"] = len(results)
    return fastest


def h5py_usable() -> str | None:
    """None when h5py + hdf5plugin can read blosc, else the reason."""
    code = "import h5py, hdf5plugin"
    probe = subprocess.run([PY, "-c", code], capture_output=True, text=True, check=False)
    if probe.returncode:
        return probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else "import failed"
    return None


def h5py_without_plugin(path: Path) -> str:
    """What h5py says when it reads a blosc dataset without hdf5plugin."""
    code = (
        "import sys, h5py\n"
        "f = h5py.File(sys.argv[1], 'r'); key = list(f)[0]\n"
        "try:\n    f[key]['block0_values'][:1]; print('OK: read without hdf5plugin')\n"
        "except Exception as e:\n    print(type(e).__name__ + ': ' + ' '.join(str(e).split()))\n"
    )
    probe = subprocess.run([PY, "-c", code, str(path)], capture_output=True, text=True, check=False)
    return (probe.stdout or probe.stderr).strip().splitlines()[-1] if (probe.stdout or probe.stderr).strip() else "?"


def mb_s(dense_bytes: int, seconds: float) -> float:
    return dense_bytes / 1e6 / seconds if seconds > 0 else float("nan")


def save(section: str, scale: str, payload: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"results_{section}_{scale}.json").write_text(json.dumps(payload, indent=2) + "\n")
    merged = {
        "machine": machine(),
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "sections": {},
    }
    for path in sorted(OUT.glob("results_*_*.json")):
        merged["sections"][path.stem[len("results_") :]] = json.loads(path.read_text())
    (OUT / "results.json").write_text(json.dumps(merged, indent=2) + "\n")


def table(headers: list[str], rows: list[list]) -> str:
    cells = [
        [
            (
                ""
                if v is None
                else (f"{v:,.2f}" if isinstance(v, float) else (f"{v:,}" if isinstance(v, int) else str(v)))
            )
            for v in row
        ]
        for row in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda values: (
        "| " + " | ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))) + " |"
    )
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep] + [line(r) for r in cells])


def dir_sizes(data: Path) -> dict:
    sizes = {}
    for path in sorted(data.rglob("*")):
        if path.is_file():
            sizes[str(path.relative_to(data))] = path.stat().st_size
    return sizes


def h5_files(data: Path) -> list[Path]:
    return sorted(p for p in data.rglob("*.h5") if p.is_file())


# ----------------------------------------------------------------- synth


def ensure_synth(scale: str, force: bool = False) -> dict:
    """Generate ``bench/out/<scale>`` with a measured ``mmscel synth`` (or reuse the recorded one)."""
    data = OUT / scale
    record = OUT / f"synth_{scale}.json"
    if not force and data.is_dir() and record.exists():
        measured = json.loads(record.read_text())
        if "error" not in measured:
            measured["reused"] = True
            return measured
    if data.exists():
        shutil.rmtree(data)
    cmd = mmscel_cmd() + ["synth", "--scale", scale, "--seed", "0", "--out", str(data)]
    measured = run_measured(cmd, log=OUT / f"synth_{scale}.log", poll=1.0, cwd=str(ROOT))
    record.write_text(json.dumps(measured, indent=2))
    measured["reused"] = False
    return measured


def bench_synth(scale: str, args) -> dict:
    measured = ensure_synth(scale, force=args.force_synth)
    data = OUT / scale
    truth = json.loads((data / "truth" / "truth.json").read_text())
    sizes = dir_sizes(data)
    files = h5_files(data)
    dense = 0
    write_floor, read_floor = {}, {}
    scratch = OUT / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    for path in files:
        rel = str(path.relative_to(data))
        print(f"  write floor {rel} ...", flush=True)
        write_floor[rel] = step(
            [
                PY,
                str(HERE / "h5tools.py"),
                "write-floor",
                str(path),
                str(scratch / path.name),
                "--max-dense-gb",
                str(args.floor_max_gb),
            ],
            f"synth_{scale}_writefloor_{path.stem}",
        )
        dense += write_floor[rel]["dense_bytes"]
    if not args.no_read_floor:
        for path in files:
            rel = str(path.relative_to(data))
            print(f"  read floor {rel} ...", flush=True)
            warm(path)
            read_floor[rel] = step(
                [
                    PY,
                    str(HERE / "floor.py"),
                    "tables",
                    str(path),
                    "--max-dense-gb",
                    str(args.floor_max_gb),
                ],
                f"synth_{scale}_readfloor_{path.stem}",
            )
    write_s = sum(r["loop_s"] for r in write_floor.values())
    # process CPU seconds: less sensitive than wall time to other work on the 2 cores
    synth_cpu = measured["user_s"] + measured["sys_s"]
    write_cpu = (
        sum(r["loop_cpu_s"] for r in write_floor.values())
        if all("loop_cpu_s" in r for r in write_floor.values())
        else None
    )
    read_s = sum(r["loop_s"] for r in read_floor.values()) if read_floor else None
    result = {
        "scale": scale,
        "synth": measured,
        "truth_wall_seconds": truth.get("wall_seconds"),
        "shapes": truth.get("shapes"),
        "sizes_bytes": sizes,
        "total_bytes": sum(sizes.values()),
        "h5_bytes": sum(path.stat().st_size for path in files),
        "dense_bytes": dense,
        "floor_max_gb": args.floor_max_gb,
        "write_floor": write_floor,
        "write_floor_s": write_s,
        "write_floor_peak_rss_mib": max((r["peak_rss_mib"] for r in write_floor.values()), default=None),
        "read_floor": read_floor,
        "read_floor_s": read_s,
        "ratio_synth_to_write_floor": measured["wall_s"] / write_s if write_s else None,
        "synth_cpu_s": synth_cpu,
        "write_floor_cpu_s": write_cpu,
        "ratio_synth_to_write_floor_cpu": synth_cpu / write_cpu if write_cpu else None,
        "ratio_synth_to_read_floor": measured["wall_s"] / read_s if read_s else None,
    }
    if args.delete_data:
        shutil.rmtree(data, ignore_errors=True)
        result["data_deleted"] = True
    save("synth", scale, result)
    print_synth(result)
    return result


def print_synth(r: dict) -> None:
    s = r["synth"]
    print(
        f"\nsynth --scale {r['scale']}: {s['wall_s']:.1f} s wall, peak RSS {s['peak_rss_mib']:.0f} MiB, "
        f"{r['h5_bytes'] / 1e9:.2f} GB of .h5 on disk ({r['total_bytes'] / 1e9:.2f} GB in all), {r['dense_bytes'] / 1e9:.1f} GB dense"
    )
    rows = []
    for rel, w in r["write_floor"].items():
        rd = r["read_floor"].get(rel, {})
        rows.append(
            [
                rel,
                w["rows"],
                w["columns"],
                w["dense_bytes"] / 1e9,
                r["sizes_bytes"][rel] / 1e9,
                w["loop_s"],
                rd.get("loop_s"),
            ]
        )
    print(
        table(
            [
                "file",
                "rows",
                "cols",
                "dense GB",
                "disk GB",
                "write floor s",
                "read floor s",
            ],
            rows,
        )
    )
    if r.get("floor_max_gb"):
        print(f"(floors of files over {r['floor_max_gb']:g} dense GB measured on their first rows and scaled by rows)")
    print(
        f"write floor total {r['write_floor_s']:.1f} s -> synth / write floor = {r['ratio_synth_to_write_floor']:.2f}x"
    )
    if r.get("write_floor_cpu_s"):
        print(
            f"CPU time: synth {r['synth_cpu_s']:.0f} s, write floor {r['write_floor_cpu_s']:.0f} s -> {r['ratio_synth_to_write_floor_cpu']:.2f}x"
        )
    if r.get("read_floor_s"):
        print(
            f"read floor total {r['read_floor_s']:.1f} s -> synth / read floor = {r['ratio_synth_to_read_floor']:.2f}x"
        )


# ----------------------------------------------------------------- prepare


def bench_prepare(scale: str, args) -> dict:
    ensure_synth(scale)
    data = OUT / scale
    caches = OUT / f"cache_{scale}"
    use_h5py = not args.no_h5py and h5py_usable() is None
    sample = data / "train_cite_inputs.h5"
    result = {
        "scale": scale,
        "h5py_without_hdf5plugin": h5py_without_plugin(sample),
        "h5py_used": use_h5py,
        "matrices": {},
        "rss_vs_rows": [],
    }
    # Interpreter + imports alone: the part of every peak RSS below that does not depend on the data.
    result["import_baseline"] = {
        "tables": step(
            [PY, "-c", "import numpy, tables, mmscel.data.h5io"],
            f"prepare_{scale}_import_tables",
        ),
        "prepare": step(
            [PY, "-c", "import pandas, mmscel.data.cache"],
            f"prepare_{scale}_import_prepare",
        ),
    }
    repeat = args.repeat
    for stem in PREPARE_MATRICES:
        source = data / f"{stem}.h5"
        if not source.exists():
            continue
        print(
            f"  {stem}: warm-up read {source.stat().st_size / 1e9:.2f} GB ...",
            flush=True,
        )
        warm(source)
        entry = {"file_bytes": source.stat().st_size}
        modes = ["tables"] + (["h5py"] if use_h5py else []) + ["nonzero", "nonzero_mask", "sha256"]
        for mode in modes:
            print(f"  {stem}: {mode} ...", flush=True)
            runs = [
                step(
                    [PY, str(HERE / "floor.py"), mode, str(source)],
                    f"prepare_{scale}_{stem}_{mode}_{i}",
                )
                for i in range(repeat if mode != "sha256" else 1)
            ]
            entry[mode] = best(runs)
        runs = []
        for i in range(repeat):
            print(f"  {stem}: prepare ...", flush=True)
            cache = caches / f"{stem}_{i}"
            shutil.rmtree(cache, ignore_errors=True)
            runs.append(
                step(
                    [PY, str(HERE / "prepare_one.py"), str(data), stem, str(cache)],
                    f"prepare_{scale}_{stem}_prepare_{i}",
                )
            )
            shutil.rmtree(cache, ignore_errors=True)
        entry["prepare"] = best(runs)
        dense = entry["tables"]["dense_bytes"]
        entry["rows"], entry["columns"], entry["dense_bytes"] = (
            entry["tables"]["rows"],
            entry["tables"]["columns"],
            dense,
        )
        entry["density"] = entry["prepare"]["nnz"] / max(1, entry["rows"] * entry["columns"])
        for mode in modes + ["prepare"]:
            seconds = entry[mode]["loop_s"]
            entry[mode]["dense_mb_s"] = mb_s(dense, seconds)
            entry[mode]["cells_s"] = entry["rows"] / seconds if seconds else None
        entry["ratio_prepare_to_tables"] = entry["prepare"]["dense_mb_s"] / entry["tables"]["dense_mb_s"]
        # the same ratio on process CPU time: less sensitive to other work sharing the cores
        entry["ratio_prepare_to_tables_cpu"] = entry["tables"]["loop_cpu_s"] / entry["prepare"]["loop_cpu_s"]
        if use_h5py:
            entry["ratio_prepare_to_h5py"] = entry["prepare"]["dense_mb_s"] / entry["h5py"]["dense_mb_s"]
        result["matrices"][stem] = entry
        save("prepare", scale, result)

    # Peak RSS against the number of rows: prepare on the first N rows of train_multi_inputs.
    source = data / "train_multi_inputs.h5"
    if source.exists():
        if "train_multi_inputs" in result["matrices"]:
            n_rows = result["matrices"]["train_multi_inputs"]["rows"]
        else:
            n_rows = step([PY, str(HERE / "floor.py"), "tables", str(source)], f"rss_{scale}_rows")["rows"]
        subsets = OUT / f"subsets_{scale}"
        points = []
        for fraction in SUBSET_FRACTIONS:
            rows = max(1, round(n_rows * fraction))
            dest = subsets / f"train_multi_inputs_{rows}.h5"
            if not dest.exists():
                print(f"  subset {rows} rows ...", flush=True)
                step(
                    [
                        PY,
                        str(HERE / "h5tools.py"),
                        "subset",
                        str(source),
                        str(dest),
                        str(rows),
                    ],
                    f"subset_{scale}_{rows}",
                )
            points.append((fraction, rows, dest))
        full = result["matrices"].get("train_multi_inputs")
        for fraction, rows, dest in points:
            print(f"  rss vs rows: {rows} rows ...", flush=True)
            warm(dest)
            floor = step(
                [PY, str(HERE / "floor.py"), "tables", str(dest)],
                f"rss_{scale}_{rows}_tables",
            )
            cache = caches / f"subset_{rows}"
            shutil.rmtree(cache, ignore_errors=True)
            prep = step(
                [
                    PY,
                    str(HERE / "prepare_one.py"),
                    str(data),
                    "train_multi_inputs",
                    str(cache),
                    "--source",
                    str(dest),
                ],
                f"rss_{scale}_{rows}_prepare",
            )
            shutil.rmtree(cache, ignore_errors=True)
            result["rss_vs_rows"].append(_rss_point(fraction, rows, floor, prep))
        if full:
            result["rss_vs_rows"].append(_rss_point(1.0, full["rows"], full["tables"], full["prepare"]))
        if not args.keep_subsets:
            shutil.rmtree(subsets, ignore_errors=True)
        save("prepare", scale, result)

    # The whole CLI on the folder (every matrix, the tables and the duplicate report).
    print("  mmscel prepare (whole folder) ...", flush=True)
    cache = caches / "cli"
    shutil.rmtree(cache, ignore_errors=True)
    cli = run_measured(
        mmscel_cmd() + ["prepare", "--data", str(data), "--cache", str(cache)],
        log=OUT / "logs" / f"prepare_{scale}_cli.log",
        cwd=str(ROOT),
    )
    manifest = json.loads((cache / "manifest.json").read_text())
    cli["cache_bytes"] = sum(p.stat().st_size for p in cache.iterdir() if p.is_file())
    shutil.rmtree(cache, ignore_errors=True)
    files = [p for p in h5_files(data) if "truth" not in p.parts]
    floors = {}
    for path in files:
        print(f"  read floor {path.name} ...", flush=True)
        floors[path.name] = step(
            [PY, str(HERE / "floor.py"), "tables", str(path)],
            f"prepare_{scale}_clifloor_{path.stem}",
        )
    floor_s = sum(f["loop_s"] for f in floors.values())
    dense = sum(f["dense_bytes"] for f in floors.values())
    result["cli"] = {
        **cli,
        "matrices": sorted(k for k, v in manifest["entries"].items() if "shape" in v),
        "dense_bytes": dense,
        "dense_mb_s": mb_s(dense, cli["wall_s"]),
        "read_floor_s": floor_s,
        "read_floor_dense_mb_s": mb_s(dense, floor_s),
        "ratio_to_read_floor": (dense / cli["wall_s"]) / (dense / floor_s),
        "read_floor_files": floors,
        "cite_duplicates": manifest.get("cite_test_duplicates", {}).get("count"),
    }
    shutil.rmtree(caches, ignore_errors=True)
    save("prepare", scale, result)
    result["stages"] = prepare_stages(scale)
    save("prepare", scale, result)
    print_prepare(result)
    return result


def bench_variants(scale: str, args) -> dict:
    """Candidate fixes of prepare's loop (bench/prepare_variants.py) on train_multi_inputs, with the floor again."""
    ensure_synth(scale)
    source = OUT / scale / "train_multi_inputs.h5"
    print(f"  variants on {source.name}: warm-up ...", flush=True)
    warm(source)
    rows = args.variant_rows
    chunk = ["--chunk-rows", "146"]  # rows_per_chunk(228,942), the chunking of prepare
    limit_floor = (
        ["--max-dense-gb", str(rows * 228_942 * 4 / 1e9 + 1e-6)] if rows else []
    )  # + 1e-6: no rounding down a row
    result = {
        "scale": scale,
        "file": source.name,
        "rows": rows or "all",
        "tables": step(
            [PY, str(HERE / "floor.py"), "tables", str(source), *chunk, *limit_floor],
            f"variants_{scale}_tables",
        ),
    }
    if rows:  # compare the measured parts: both read the same first rows
        result["tables"]["loop_s"], result["tables"]["loop_cpu_s"] = (
            result["tables"]["measured_s"],
            result["tables"]["loop_cpu_s"] * result["tables"]["read_rows"] / result["tables"]["rows"],
        )
    scratch = OUT / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    for variant in ("current", "mask", "prefetch", "mask+prefetch"):
        print(f"  variant {variant} ...", flush=True)
        result[variant] = step(
            [
                PY,
                str(HERE / "prepare_variants.py"),
                variant,
                str(source),
                str(scratch / "variant.npz"),
                *(["--max-rows", str(rows)] if rows else []),
            ],
            f"variants_{scale}_{variant.replace('+', '_')}",
        )
    floor_s, floor_cpu = result["tables"]["loop_s"], result["tables"]["loop_cpu_s"]
    for variant in ("current", "mask", "prefetch", "mask+prefetch"):
        result[variant]["ratio_to_tables"] = floor_s / result[variant]["loop_s"]
        result[variant]["ratio_to_tables_cpu"] = floor_cpu / result[variant]["loop_cpu_s"]
    result["scan_micro"] = scan_micro(scale)
    save("variants", scale, result)
    print_variants(result)
    return result


def scan_micro(scale: str) -> list[dict]:
    """Per-chunk best-of-5 times of the read and of the two non-zero scans (bench/scan_micro.py)."""
    out = []
    for stem in ("train_multi_inputs", "train_multi_targets", "train_cite_inputs"):
        path = OUT / scale / f"{stem}.h5"
        if path.exists():
            print(f"  scan micro-benchmark {stem} ...", flush=True)
            out.append(
                step(
                    [PY, str(HERE / "scan_micro.py"), str(path)],
                    f"variants_{scale}_micro_{stem}",
                )
            )
    return out


def print_variants(r: dict) -> None:
    print(
        f"\nprepare loop variants on {r['scale']} {r['file']}, rows: {r.get('rows', 'all')} (PyTables floor {r['tables']['loop_s']:.1f} s wall, {r['tables']['loop_cpu_s']:.1f} s CPU)"
    )
    print(
        table(
            [
                "variant",
                "wall s",
                "CPU s",
                "floor/variant (wall)",
                "floor/variant (CPU)",
                "peak RSS MiB",
            ],
            [
                [
                    v,
                    r[v]["loop_s"],
                    r[v]["loop_cpu_s"],
                    r[v]["ratio_to_tables"],
                    r[v]["ratio_to_tables_cpu"],
                    r[v]["peak_rss_mib"],
                ]
                for v in ("current", "mask", "prefetch", "mask+prefetch")
            ],
        )
    )
    if r.get("scan_micro"):
        print("\nper 128 MiB chunk, best of 5 (s): PyTables read, write_dense's scan as in src/, the boolean-mask scan")
        print(
            table(
                ["file", "density", "read", "scan (src)", "scan (mask)", "src / mask"],
                [
                    [
                        Path(m["file"]).name,
                        f"{m['density']:.2%}",
                        m["read_new_array_s"],
                        m["scan_current_s"],
                        m["scan_mask_s"],
                        m["scan_current_s"] / m["scan_mask_s"],
                    ]
                    for m in r["scan_micro"]
                ],
            )
        )


def prepare_stages(scale: str) -> dict:
    """Whole prepare in one process with per-stage peak RSS (bench/prepare_stages.py)."""
    print("  prepare stages (which stage sets the peak RSS) ...", flush=True)
    cache = OUT / f"cache_{scale}" / "stages"
    shutil.rmtree(cache, ignore_errors=True)
    try:
        return step(
            [PY, str(HERE / "prepare_stages.py"), str(OUT / scale), str(cache)],
            f"prepare_{scale}_stages",
        )
    finally:
        shutil.rmtree(cache.parent, ignore_errors=True)


def print_stages(r: dict) -> None:
    st = r.get("stages")
    if not st:
        return
    print(
        f"\nprepare stages (one process, {st['seconds']:.0f} s, peak RSS {st['peak_rss_mib']:.0f} MiB; after imports {st['peak_rss_after_imports_mib']:.0f} MiB)"
    )
    print(
        table(
            ["stage", "what", "seconds", "peak RSS after MiB", "raised peak by MiB"],
            [
                [
                    x["stage"],
                    x["what"],
                    x["seconds"],
                    x["peak_rss_after_mib"],
                    x["raised_peak_by_mib"],
                ]
                for x in st["stages"]
            ],
        )
    )


def _rss_point(fraction, rows, floor, prep) -> dict:
    return {
        "fraction": fraction,
        "rows": rows,
        "dense_bytes": prep["dense_bytes"],
        "floor_peak_rss_mib": floor["peak_rss_mib"],
        "prepare_peak_rss_mib": prep["peak_rss_mib"],
        "prepare_loop_s": prep["loop_s"],
        "floor_loop_s": floor["loop_s"],
        "ratio_throughput": floor["loop_s"] / prep["loop_s"],
    }


def print_prepare(r: dict) -> None:
    print(f"\nprepare on '{r['scale']}' (h5py without hdf5plugin: {r['h5py_without_hdf5plugin']})")
    rows = []
    for stem, e in r["matrices"].items():
        rows.append(
            [
                stem,
                e["rows"],
                e["columns"],
                f"{e['density']:.2%}",
                e["dense_bytes"] / 1e9,
                e["tables"]["dense_mb_s"],
                e.get("h5py", {}).get("dense_mb_s"),
                e["prepare"]["dense_mb_s"],
                e["prepare"]["cells_s"],
                e["ratio_prepare_to_tables"],
                e["tables"]["peak_rss_mib"],
                e["prepare"]["peak_rss_mib"],
            ]
        )
    print(
        table(
            [
                "matrix",
                "rows",
                "cols",
                "density",
                "dense GB",
                "tables MB/s",
                "h5py MB/s",
                "prepare MB/s",
                "prepare cells/s",
                "prepare/tables",
                "floor RSS MiB",
                "prepare RSS MiB",
            ],
            rows,
        )
    )
    base = r.get("import_baseline", {})
    print(
        "\nprepare time breakdown (s): read_rows and convert summed over the reader threads (they overlap), write / close / checksum in the main thread; floors: tables read, read+nonzero, read+mask"
    )
    print(
        table(
            [
                "matrix",
                "prepare",
                "read_rows",
                "convert",
                "write",
                "close",
                "checksum",
                "tables",
                "read+nonzero",
                "read+mask",
                "sha256",
                "prepare/tables cpu",
            ],
            [
                [
                    stem,
                    e["prepare"]["loop_s"],
                    *(
                        e["prepare"]["breakdown_s"].get(k, float("nan"))
                        for k in ("read_rows", "convert", "write", "close", "checksum")
                    ),
                    e["tables"]["loop_s"],
                    e["nonzero"]["loop_s"],
                    e["nonzero_mask"]["loop_s"],
                    e["sha256"]["loop_s"],
                    e["ratio_prepare_to_tables_cpu"],
                ]
                for stem, e in r["matrices"].items()
            ],
        )
    )
    if base:
        print(
            f"import baseline peak RSS: numpy+tables {base['tables']['peak_rss_mib']:.0f} MiB, pandas+mmscel.data.cache {base['prepare']['peak_rss_mib']:.0f} MiB"
        )
    if r["rss_vs_rows"]:
        print("\npeak RSS vs rows (train_multi_inputs, first N rows)")
        print(
            table(
                [
                    "fraction",
                    "rows",
                    "dense GB",
                    "floor RSS MiB",
                    "prepare RSS MiB",
                    "prepare/tables",
                ],
                [
                    [
                        p["fraction"],
                        p["rows"],
                        p["dense_bytes"] / 1e9,
                        p["floor_peak_rss_mib"],
                        p["prepare_peak_rss_mib"],
                        p["ratio_throughput"],
                    ]
                    for p in r["rss_vs_rows"]
                ],
            )
        )
    print_stages(r)
    if "cli" in r:
        c = r["cli"]
        print(
            f"\nmmscel prepare (whole folder): {c['wall_s']:.1f} s, {c['dense_mb_s']:.0f} dense MB/s, peak RSS {c['peak_rss_mib']:.0f} MiB; "
            f"read floor {c['read_floor_s']:.1f} s -> {c['ratio_to_read_floor']:.2f} of the floor"
        )


# ----------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--only",
        choices=["prepare", "synth", "variants", "stages"],
        default=None,
        help="one section (default: synth, prepare and variants; 'stages' is part of prepare)",
    )
    parser.add_argument("--scale", default="medium")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="repeats of each prepare-section step (best time, worst RSS)",
    )
    parser.add_argument(
        "--delete-data",
        action="store_true",
        help="delete bench/out/<scale> after the synth section (for full)",
    )
    parser.add_argument(
        "--force-synth",
        action="store_true",
        help="regenerate even if bench/out/<scale> exists",
    )
    parser.add_argument(
        "--no-read-floor",
        action="store_true",
        help="synth section: skip the raw read of the produced files",
    )
    parser.add_argument(
        "--variant-rows",
        type=int,
        default=0,
        help="variants section: use the first N rows of train_multi_inputs (0: all)",
    )
    parser.add_argument(
        "--floor-max-gb",
        type=float,
        default=0.0,
        help="synth floors: write/read only the first rows worth this many dense GB per file and scale by rows (0: whole files)",
    )
    parser.add_argument("--no-h5py", action="store_true", help="prepare section: skip the h5py floor")
    parser.add_argument(
        "--keep-subsets",
        action="store_true",
        help="keep the row-subset files of the RSS benchmark",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="only print the tables of the saved results",
    )
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.report:
        printers = {
            "synth": print_synth,
            "prepare": print_prepare,
            "variants": print_variants,
        }
        for path in sorted(OUT.glob("results_*_*.json")):
            section = path.stem.split("_")[1]
            if args.only in (None, section):
                printers[section](json.loads(path.read_text()))
        return 0
    if args.only == "stages":  # only the per-stage RSS of the whole prepare, merged into the prepare results
        path = OUT / f"results_prepare_{args.scale}.json"
        result = (
            json.loads(path.read_text()) if path.exists() else {"scale": args.scale, "matrices": {}, "rss_vs_rows": []}
        )
        result["stages"] = prepare_stages(args.scale)
        save("prepare", args.scale, result)
        print_stages(result)
        return 0
    if args.only in (None, "synth"):
        print(f"== synth --scale {args.scale}", flush=True)
        bench_synth(args.scale, args)
    if args.only in (None, "prepare"):
        print(f"== prepare --scale {args.scale}", flush=True)
        bench_prepare(args.scale, args)
    if args.only in (None, "variants"):
        print(f"== prepare loop variants --scale {args.scale}", flush=True)
        bench_variants(args.scale, args)
    print(f"\nresults in {OUT / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
