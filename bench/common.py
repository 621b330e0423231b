"""What the benchmark scripts share: paths, measured subprocesses, result files, markdown tables, the machine.

Imported by every script in bench/; not a script itself. It uses the standard library only (psutil is
imported while a measurement runs): a driver that forks measured steps must stay small, because Linux
counts the forking parent's resident pages in the child's peak RSS (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
PYTHON = sys.executable
MIB = 2**20
PROGRESS_EVERY = 30.0  # seconds between progress files of a measured run
PACKAGES = ("numpy", "scipy", "pandas", "tables", "scikit-learn", "lightgbm", "xgboost", "catboost", "torch", "optuna")


# ----------------------------------------------------------------------------- commands


def mmscel_command() -> list[str]:
    """The ``mmscel`` command of this interpreter's environment."""
    exe = Path(PYTHON).with_name("mmscel")
    return [str(exe)] if exe.exists() else [PYTHON, "-m", "mmscel.cli"]


def bench_script(name: str) -> list[str]:
    """The command that runs ``bench/<name>`` with this interpreter."""
    return [PYTHON, str(BENCH / name)]


def run_command(cmd: list, *, log: Path | None = None, cwd: Path = ROOT) -> str:
    """Run ``cmd`` unmeasured; return its output (also written to ``log``). Fails with the output's tail."""
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, check=False)
    output = proc.stdout + proc.stderr
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(output)
    if proc.returncode:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{output[-3000:]}")
    return proc.stdout


# ----------------------------------------------------------------------------- measured subprocesses


def run_measured(
    cmd: list, *, log: Path | None = None, poll: float = 0.2, cwd: Path = ROOT, progress: Path | None = None
) -> dict:
    """Run ``cmd`` in a fresh process: wall and CPU seconds, peak RSS, mean load while it ran.

    Peak RSS is the kernel's ``ru_maxrss`` of the child (``os.wait4``); a poller also sums the RSS
    of the child's process tree every ``poll`` seconds as a cross-check. With ``progress``, the poller
    also keeps the figures so far (wall, the tree's CPU, polled peak RSS, mean load) in that JSON file,
    from its first poll on and every :data:`PROGRESS_EVERY` seconds, and removes it when the command
    ends: what is left there after a kill is the measured part of an interrupted attempt. Raises
    ``RuntimeError`` with the log's tail when the command fails.
    """
    cmd = [str(c) for c in cmd]
    if log:
        log.parent.mkdir(parents=True, exist_ok=True)
    sink = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed after wait4)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=cwd)
    poller = _TreePoller(proc.pid, poll, progress, started)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    polled_peak, mean_load = poller.stop()
    if progress:
        progress.unlink(missing_ok=True)
    if log:
        sink.close()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log else ""
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{tail}")
    return {
        "cmd": cmd,
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "polled_peak_rss_mib": polled_peak / MIB,
        "mean_loadavg": mean_load,  # 1-minute load average while it ran: > 1 means other work shared the cores
        "driver_rss_mib": _own_rss_mib(),
    }


def combined_measures(measures: list[dict]) -> dict:
    """One measure of work done in several attempts: wall and CPU summed, the largest peak RSS, the load
    weighted by wall time; attempts that were never measured (no ``wall_s``) are counted apart."""
    measured = [m for m in measures if "wall_s" in m]
    wall = sum(m["wall_s"] for m in measured)
    return {
        "wall_s": wall,
        "cpu_s": sum(m["cpu_s"] for m in measured),
        "peak_rss_mib": max(m["peak_rss_mib"] for m in measured),
        "mean_loadavg": sum((m["mean_loadavg"] or 0) * m["wall_s"] for m in measured) / wall if wall else None,
        "attempts": len(measures),
        "unmeasured_attempts": len(measures) - len(measured),
    }


def stage_totals(stage: dict) -> dict:
    """A measured stage's figures over all its attempts: the completed one plus the measured part of each one
    killed before it (its ``interrupted`` list, filled by :func:`collect_interrupted`).

    An interrupted attempt's work up to its last checkpoint is not redone, the rest is, so the sums
    bound from above what one uninterrupted attempt would have taken.
    """
    return combined_measures([stage, *stage.get("interrupted", [])])


def collect_interrupted(progress: Path, attempts: list[dict]) -> None:
    """Move what a killed attempt left in ``progress`` (see :func:`run_measured`) into ``attempts``.

    The caller saves ``attempts`` before it runs the command again, so that a second kill loses neither.
    """
    if not progress.exists():
        return
    attempt = json.loads(progress.read_text())
    attempt.setdefault("peak_rss_mib", attempt["polled_peak_rss_mib"])  # files holding the polled key only
    attempts.append(attempt)
    progress.unlink()


def measured_step(cmd: list, log: Path, cwd: Path = ROOT, progress: Path | None = None) -> dict:
    """``run_measured``, merged with the last JSON object the step printed (its own timings)."""
    result = run_measured(cmd, log=log, cwd=cwd, progress=progress)
    printed = last_json_line(log.read_text(errors="replace"))
    return {**result, **printed} if printed else result


def print_step_result(result: dict) -> None:
    """What a step script prints last: one JSON line, which ``measured_step`` merges into its measurement."""
    print(json.dumps(result, default=float), flush=True)


def last_json_line(text: str) -> dict | None:
    """The last line of ``text`` that parses as a JSON object."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def best_of(results: list[dict], key: str = "loop_s") -> dict:
    """The fastest of repeated measurements, carrying the worst peak RSS of them."""
    fastest = dict(min(results, key=lambda r: r.get(key, r["wall_s"])))
    fastest["peak_rss_mib"] = max(r["peak_rss_mib"] for r in results)
    fastest["repeats"] = len(results)
    return fastest


class _TreePoller:
    """Samples the summed RSS of a process tree and the load average in a background thread."""

    def __init__(self, pid: int, interval: float, progress: Path | None = None, started: float = 0.0):
        self.pid, self.interval = pid, interval
        self.progress, self.started, self.written = progress, started, None
        self.peak, self.loads, self.cpu = 0, [], 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self) -> tuple[int, float | None]:
        self.done.set()
        self.thread.join()
        return self.peak, (sum(self.loads) / len(self.loads) if self.loads else None)

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self.done.is_set():
            try:
                processes = [root] + root.children(recursive=True)
            except psutil.Error:
                break
            self.peak = max(self.peak, sum(_rss(p) for p in processes))
            self.loads.append(os.getloadavg()[0])
            if self.progress and (self.written is None or time.perf_counter() - self.written >= PROGRESS_EVERY):
                self._write_progress(processes)
            self.done.wait(self.interval)

    def _write_progress(self, processes: list) -> None:
        # A reaped child's CPU lives on in its parent's children_* times; the live ones count their own.
        self.cpu = max(self.cpu, sum(_cpu_s(p, p is processes[0]) for p in processes))
        self.written = time.perf_counter()
        figures = {
            "wall_s": self.written - self.started,
            "cpu_s": self.cpu,
            "peak_rss_mib": self.peak / MIB,  # the kernel's figure comes only once the child is reaped
            "polled_peak_rss_mib": self.peak / MIB,
            "mean_loadavg": sum(self.loads) / len(self.loads),
            "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        write_json(self.progress, figures)


def _rss(process) -> int:
    import psutil

    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def _cpu_s(process, with_children: bool) -> float:
    import psutil

    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    reaped = times.children_user + times.children_system if with_children else 0.0
    return times.user + times.system + reaped


def _own_rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / MIB


# ----------------------------------------------------------------------------- files and data


def warm_page_cache(path: Path) -> float:
    """Read a file once, so that every measured step starts from a warm page cache; seconds taken."""
    started = time.perf_counter()
    with open(path, "rb") as handle:
        while handle.read(16 * MIB):
            pass
    return time.perf_counter() - started


def synthetic_competition(scale: str, out_dir: Path, seed: int = 0) -> Path:
    """``OUT/<scale>``: the synthetic competition, generated by ``mmscel synth`` unless already there."""
    data = out_dir / scale
    if not (data / "truth" / "truth.json").exists():
        print(f"generating the {scale} synthetic competition in {data} ...", flush=True)
        command = mmscel_command() + ["synth", "--scale", scale, "--seed", seed, "--out", data, "--overwrite"]
        run_command(command, log=out_dir / "logs" / f"synth_{scale}.log")
    return data


def prepared(data: Path, out_dir: Path) -> Path:
    """``data`` after ``mmscel prepare`` (a no-op when its cache is current)."""
    run_command(mmscel_command() + ["prepare", "--data", data], log=out_dir / "logs" / f"prepare_{data.name}.log")
    return data


def seeded_competition(scale: str, seed: int, out: Path) -> Path:
    """``OUT/<scale>`` (seed 0) or ``OUT/<scale>_seed<S>``: the synthetic competition, made and prepared if needed.

    Parameters
    ----------
    scale, seed
        ``mmscel synth --scale`` and ``--seed``.
    out
        The bench output folder.

    Returns
    -------
    Path
        The competition folder, prepared (default cache).
    """
    data = out / (scale if seed == 0 else f"{scale}_seed{seed}")
    truth = data / "truth" / "truth.json"
    if not truth.exists():
        print(f"generating the {scale} synthetic competition (seed {seed}) in {data} ...", flush=True)
        command = mmscel_command() + ["synth", "--scale", scale, "--seed", seed, "--out", data, "--overwrite"]
        run_command(command, log=out / "logs" / f"synth_{data.name}.log")
    made = json.loads(truth.read_text())
    if (made.get("scale"), made.get("seed")) != (scale, seed):
        raise SystemExit(f"{data} holds scale {made.get('scale')} seed {made.get('seed')}, not {scale} seed {seed}")
    return prepared(data, out)


SHIPPED_TASKS = ("cite", "multi")
SHIPPED_LEARNERS = ("ridge", "lgbm", "xgb", "catboost", "mlp")  # configs/<task>/<learner>.yaml


def shipped_pipeline(stored: list, submission: Path) -> list[tuple[str, list]]:
    """The shipped pipeline after ``prepare``: each step's name and ``mmscel`` arguments, in order.

    ``mmscel level1`` of every ``configs/<task>/<learner>.yaml`` (``level1_<task>_<learner>``),
    ``mmscel level2 configs/blend.yaml`` and ``mmscel submit --blend blend --out SUBMISSION``;
    ``stored`` is the ``--data``/``--cache``/``--oof`` arguments they share.
    """
    steps = [
        (f"level1_{task}_{learner}", ["level1", ROOT / "configs" / task / f"{learner}.yaml", *stored])
        for task in SHIPPED_TASKS
        for learner in SHIPPED_LEARNERS
    ]
    steps.append(("level2", ["level2", ROOT / "configs" / "blend.yaml", *stored]))
    steps.append(("submit", ["submit", "--blend", "blend", "--out", submission, *stored]))
    return steps


_SCORE = (
    "import json, sys\n"
    "from mmscel.scoring import score_submission\n"
    "scores, _ = score_submission(sys.argv[1], sys.argv[2])\n"
    "print(json.dumps({**scores.by_task, 'pooled': scores.pooled}))\n"
)


def submission_scores(data: Path, submission: Path) -> dict:
    """Task (``cite``, ``multi``, ``pooled``) -> split -> score of a submission, as ``mmscel score`` computes them.

    Scored in a subprocess, so that a driver that measures other processes never imports numpy or mmscel
    (Linux charges a forking parent's resident pages to the children it measures).
    """
    return last_json_line(run_command([PYTHON, "-c", _SCORE, submission, data]))


def save_result(out_dir: Path, name: str, section: str, result: dict) -> Path:
    """Write ``result`` as section ``section`` of ``OUT/<name>.json`` (other sections are kept)."""
    path = out_dir / f"{name}.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved["machine"] = machine()
    saved.setdefault("sections", {})[section] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "result": result,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, saved)
    return path


def write_json(path: Path, value) -> None:
    """Write ``value`` as JSON through a temporary file: a run killed while writing keeps the old file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(value, indent=2, default=float) + "\n")
    os.replace(partial, path)


def publish(out_dir: Path, name: str, section: str, result: dict, text: str) -> int:
    """Save ``result`` (see :func:`save_result`), print its report ``text`` and where it went; exit code 0."""
    path = save_result(out_dir, name, section, result)
    print(text)
    print(f"\nwrote {path}")
    return 0


def load_result(out_dir: Path, name: str, section: str) -> dict | None:
    """The saved result of ``section`` in ``OUT/<name>.json``, if any."""
    path = out_dir / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("sections", {}).get(section, {}).get("result")


def add_out_argument(parser: argparse.ArgumentParser) -> None:
    """``--out DIR``: where datasets, logs and result JSON go (default bench/out; smoke runs use /tmp)."""
    parser.add_argument("--out", type=Path, default=OUT, help="results, logs and datasets (default bench/out)")


# ----------------------------------------------------------------------------- tables


def markdown_table(headers: list[str], rows: list[list], left: int = 1) -> str:
    """A markdown table: the first ``left`` columns left-aligned, the others right-aligned.

    Cells: None is empty, floats get two decimals and thousands separators, ints thousands
    separators; anything else is shown as ``str`` (format it first for other precisions).
    """
    align = ["---" if i < left else "---:" for i in range(len(headers))]
    lines = [_row(headers), _row(align)]
    lines += [_row([_cell(value) for value in row]) for row in rows]
    return "\n".join(lines)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# ----------------------------------------------------------------------------- the machine

_MACHINE: dict | None = None
_HDF5_PROBE = "import json, tables; print(json.dumps({'hdf5': tables.hdf5_version, 'blosc_threads': \
tables.parameters.MAX_BLOSC_THREADS}))"


def machine() -> dict:
    """CPU, memory, kernel and library versions (HDF5 probed in a subprocess, so this process stays small)."""
    global _MACHINE
    if _MACHINE is None:
        _MACHINE = {
            "cpu": _cpu_model(),
            "logical_cpus": os.cpu_count(),
            "ram_gib": _ram_gib(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            **{name: _version(name) for name in PACKAGES},
        }
        probe = subprocess.run([PYTHON, "-c", _HDF5_PROBE], capture_output=True, text=True, check=False)
        _MACHINE.update(last_json_line(probe.stdout) or {})
    return _MACHINE


def machine_markdown() -> str:
    """The machine as the two-column table of BENCHMARKS.md."""
    m = machine()
    libraries = ", ".join(f"{name} {m[name]}" for name in PACKAGES if m.get(name))
    rows = [
        ["CPU", f"{m['cpu']}, {m['logical_cpus']} logical CPUs"],
        ["RAM", f"{m['ram_gib']} GiB"],
        ["Software", f"Python {m['python']}, kernel {m['kernel']}, HDF5 {m.get('hdf5')}, {libraries}"],
    ]
    return markdown_table(["", ""], rows, left=2)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
