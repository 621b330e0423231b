"""The benchmark suite: every current benchmark, one after the other (``make bench``).

    python bench/run_all.py [--only SECTION,...] [--skip SECTION,...] [--smoke] [--out DIR] [--list] [--peer-repo DIR]

Sections, in order (``--list`` prints their commands): synth, prepare, level1, overhead, blend, tune,
ceiling, and two that run only when named: peer (the 1st-place pipeline beside mmscel's; it needs ``--peer-repo``,
a checkout of shu65/open-problems-multimodal) and fullscale (~40 GB of disk and hours). ``--smoke`` runs every
chosen section on its smallest setting (tiny synthetic scale, few rows and trials) into /tmp/bench_smoke
unless ``--out`` says otherwise: a check that the scripts run, not a measurement. Each command runs in
its own process; a failed section is reported and the suite goes on. Prints the machine first and a
summary last; writes ``OUT/run_all.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import OUT, PYTHON, ROOT, machine, machine_markdown, markdown_table, save_result

SMOKE_OUT = Path("/tmp/bench_smoke")
OPT_IN = ("peer", "fullscale")


def sections(out: Path, smoke: bool, peer_repo: str = "DIR") -> dict[str, list[list[str]]]:
    """Section -> the commands it runs (bench/ scripts, each given ``--out``)."""
    peer = ["peers/first_place.py", "--peer-repo", peer_repo]
    if smoke:
        return {
            "synth": [["synth.py", "--scale", "tiny"]],
            "prepare": [["prepare.py", "--scale", "tiny"]],
            "level1": [["level1_quality.py", "--scale", "tiny", "--learners", "ridge,mlp"]],
            "overhead": [["learner_overhead.py", "--rows", "500", "--repeats", "1", "--only", "ridge", "mlp"]],
            "dask": [["dask_overhead.py", "--repeats", "1"]],
            "blend": [
                ["blend_bench.py", "--section", "methods", "--scale", "tiny", "--trials", "30"],
                ["blend_bench.py", "--section", "component", "--cells", "2000", "--genes", "500", "--components", "16"],
                ["cis_bench.py", "--cells", "2000", "--genes", "300"],
            ],
            "tune": [["tune_bench.py", "--smoke"]],
            "ceiling": [["multi_ceiling.py", "--data", str(out / "tiny")]],
            "peer": [[*peer, "--smoke"]],
            "fullscale": [
                ["prepare.py", "--scale", "tiny", "--parts", "whole"],
                ["fullscale.py", "--data", str(out / "tiny"), "--learners", "ridge"],
            ],
        }
    full_component = ["--cells", "105942", "--genes", "23418", "--components", "128", "--runs", "5"]
    return {
        "synth": [["synth.py", "--scale", "medium", "--floor-max-gb", "4"]],
        "prepare": [["prepare.py", "--scale", "medium"]],
        "level1": [["level1_quality.py"]],
        "overhead": [
            ["learner_overhead.py", "--rows", "4000", "--repeats", "3", "--only", "lgbm", "xgb", "catboost"],
            ["learner_overhead.py", "--rows", "4000", "--repeats", "9", "--only", "ridge", "mlp", "--threads", "1"],
            ["learner_overhead.py", "--rows", "20000", "--repeats", "5", "--only", "ridge", "mlp"],
        ],
        "dask": [["dask_overhead.py", "--repeats", "7"]],
        "blend": [
            ["blend_bench.py", "--section", "methods"],
            ["blend_bench.py", "--section", "component", *full_component, "--density", "0.32", "--basis", "random"],
            ["cis_bench.py"],
        ],
        "tune": [  # the budgeted settings of BENCHMARKS.md; bench/tune_bench.py alone runs the full ones
            ["tune_bench.py", "--section", "mlp", "--pruners", "wilcoxon,median"],
            ["tune_bench.py", "--section", "lgbm", "--pruners", "none,median", "--lgbm-timeout", "540"],
            ["tune_bench.py", "--section", "workers", "--workers-timeout", "240"],
            ["tune_bench.py", "--section", "objective", "--objective-trials", "20"],
        ],
        "ceiling": [["multi_ceiling.py"]],
        "peer": [[*peer, "--scale", "small", "--seeds", "0,1"]],
        "fullscale": [
            ["synth.py", "--scale", "full", "--floor-max-gb", "1"],
            ["prepare.py", "--scale", "full", "--parts", "whole"],
            ["fullscale.py"],
        ],
    }


def run(command: list[str], out: Path) -> dict:
    """One bench script in its own process, its output streamed; seconds and exit code."""
    full = [PYTHON, str(ROOT / "bench" / command[0]), *command[1:], "--out", str(out)]
    print(f"\n$ {' '.join(full[1:])}", flush=True)
    started = time.perf_counter()
    code = subprocess.run(full, cwd=ROOT, check=False).returncode
    return {
        "command": " ".join(["bench/" + command[0], *command[1:]]),
        "seconds": time.perf_counter() - started,
        "exit": code,
    }


def chosen(names: dict, only: str | None, skip: str | None) -> list[str]:
    wanted = only.split(",") if only else [name for name in names if name not in OPT_IN]
    unknown = set(wanted + (skip.split(",") if skip else [])) - set(names)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; choose from {', '.join(names)}")
    return [name for name in names if name in wanted and name not in (skip or "").split(",")]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated sections to run")
    parser.add_argument("--skip", help="comma-separated sections to leave out")
    parser.add_argument("--smoke", action="store_true", help="smallest settings, into /tmp/bench_smoke")
    parser.add_argument("--out", type=Path, default=None, help="results (default bench/out, /tmp/bench_smoke)")
    parser.add_argument("--list", action="store_true", help="print the sections' commands and stop")
    parser.add_argument("--peer-repo", help="a checkout of shu65/open-problems-multimodal (section peer)")
    args = parser.parse_args(argv)
    out = args.out or (SMOKE_OUT if args.smoke else OUT)
    plan = sections(out, args.smoke, args.peer_repo or "DIR")
    names = chosen(plan, args.only, args.skip)
    if "peer" in names and not args.peer_repo and not args.list:
        parser.error("section peer needs --peer-repo DIR (a checkout of shu65/open-problems-multimodal)")
    if args.list:
        for name in plan:
            for command in plan[name]:
                print(f"{name:10} python bench/{' '.join(command)}")
        return 0
    print(machine_markdown(), flush=True)
    results = [{"section": name, **run(command, out)} for name in names for command in plan[name]]
    rows = [[r["section"], r["command"], f"{r['seconds']:,.0f}", r["exit"]] for r in results]
    print("\n" + markdown_table(["section", "command", "seconds", "exit code"], rows, left=2))
    save_result(out, "run_all", "smoke" if args.smoke else "full", {"machine": machine(), "runs": results})
    return 1 if any(r["exit"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
