"""Run one benchmark step in a fresh subprocess and measure wall time and peak RSS.

Each step is its own child process, so the peak RSS of one step never
contaminates another. Peak RSS comes from ``os.wait4`` on that child: the
kernel's ``ru_maxrss`` of the child (and of any grandchildren it waited for),
in KiB on Linux. A psutil poller also samples the RSS of the child's whole
process tree every ``poll`` seconds, as a cross-check and to catch
grandchildren that are not waited for.

Usable as a module (``run_measured``) or as a script:
``python bench/measure.py OUT.json -- CMD ARGS...`` writes the measurement
as JSON (used to time the long ``synth --scale full`` run in the background).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil


def _poll_tree(pid: int, stop: threading.Event, peak: list[int], interval: float, load: list[float]) -> None:
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        total = 0
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            break
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total)
        load.append(os.getloadavg()[0])
        stop.wait(interval)


def run_measured(
    cmd: list[str],
    *,
    log: Path | None = None,
    poll: float = 0.2,
    env: dict | None = None,
    cwd: str | None = None,
) -> dict:
    """Run ``cmd``; return wall seconds, peak RSS (MiB) and the exit code.

    Raises ``RuntimeError`` (with the log's tail) when the command fails.
    """
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below, after wait4)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    stop, peak, load = threading.Event(), [0], []
    poller = threading.Thread(target=_poll_tree, args=(proc.pid, stop, peak, poll, load), daemon=True)
    poller.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stop.set()
    poller.join()
    if log:
        out.close()
    result = {
        "cmd": [str(c) for c in cmd],
        "wall_s": wall,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "polled_peak_rss_mib": peak[0] / 2**20,
        "user_s": usage.ru_utime,
        "sys_s": usage.ru_stime,
        "returncode": proc.returncode,
        # 1-minute load average sampled while the step ran: > 1 means other work shared the 2 cores
        "mean_loadavg": sum(load) / len(load) if load else None,
    }
    if proc.returncode != 0:
        tail = Path(log).read_text(errors="replace")[-3000:] if log else ""
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return result


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__)
        return 2
    out_json = Path(argv[0])
    log = out_json.with_suffix(".log")
    try:
        result = run_measured(argv[2:], log=log, poll=1.0)
    except RuntimeError as exc:
        out_json.write_text(json.dumps({"cmd": argv[2:], "error": str(exc)}, indent=2))
        return 1
    out_json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
