"""Which stage of ``mmscel prepare`` sets its peak RSS (a diagnostic).

    python bench/prepare_stages.py DATA_DIR CACHE_DIR

Runs ``mmscel.data.cache.prepare`` once, in this process, with its stages
wrapped (no change to src/): for every call of ``_prepare_table`` (the CSV
tables), ``_prepare_matrix`` (one matrix) and ``_report_duplicates`` (the
CITEseq train/test duplicate search) it records the seconds and the process's
peak RSS (``ru_maxrss``) after the call, and whether the call raised it.
Prints one JSON line.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    data, cache = Path(argv[0]), Path(argv[1])
    from mmscel.data import cache as cache_mod

    stages: list[dict] = []

    def wrap(name, func, label):
        def wrapper(*args, **kwargs):
            before, started = peak_mib(), time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                after = peak_mib()
                stages.append(
                    {
                        "stage": name,
                        "what": label(args),
                        "seconds": round(time.perf_counter() - started, 2),
                        "peak_rss_after_mib": round(after, 1),
                        "raised_peak_by_mib": round(after - before, 1),
                    }
                )

        return wrapper

    cache_mod._prepare_table = wrap("table", cache_mod._prepare_table, lambda a: a[2])
    cache_mod._prepare_matrix = wrap("matrix", cache_mod._prepare_matrix, lambda a: a[2])
    cache_mod._report_duplicates = wrap("duplicates", cache_mod._report_duplicates, lambda a: "cite train vs test")
    start_peak = peak_mib()
    started = time.perf_counter()
    cache_mod.prepare(data, cache)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "peak_rss_after_imports_mib": start_peak,
                "peak_rss_mib": peak_mib(),
                "stages": stages,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
