"""One measured step of bench/fullscale.py, alone in its process (the caller measures it from outside).

    python bench/fullscale_step.py load {cite,multi} {inputs,targets} DATA
    python bench/fullscale_step.py svd {cite,multi} {inputs,targets} DATA [--components 128]
    python bench/fullscale_step.py features CONFIG DATA OOF

``load`` reads a matrix from the prepared cache: the inputs as train and test rows stacked in
one CSR (``mmscel.stacked_inputs``, what the input SVD is fitted on), the targets of the
training cells alone. ``svd`` loads it, then fits the randomized TruncatedSVD the features use
(``mmscel.features.compute.truncated_svd``). ``features`` builds and caches the feature set of a run
config under OOF, as ``mmscel level1`` does before its first fold. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mmscel
from common import print_step_result


def load_matrix(task: str, part: str, data: str):
    if part == "inputs":
        return mmscel.stacked_inputs(task, data)
    return mmscel.load(task, "train", data, inputs=False).targets


def load_and_svd(task: str, part: str, data: str, components: int | None) -> dict:
    started = time.perf_counter()
    matrix = load_matrix(task, part, data)
    loaded = time.perf_counter() - started
    if components:
        from mmscel.features.compute import truncated_svd

        truncated_svd(matrix, components, 0)
    shape = [int(n) for n in matrix.shape]
    return {"load_s": loaded, "total_s": time.perf_counter() - started, "shape": shape, "nnz": int(matrix.nnz)}


def build(config_path: str, data: str, oof: str) -> dict:
    started = time.perf_counter()
    config = mmscel.load_run_config(config_path)
    mmscel.build_features(config.task, config.feature_config(), data, store=oof, seed=config.seed)
    return {"seconds": time.perf_counter() - started}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    for name in ("load", "svd"):
        step = steps.add_parser(name)
        step.add_argument("task", choices=["cite", "multi"])
        step.add_argument("part", choices=["inputs", "targets"])
        step.add_argument("data")
        step.add_argument("--components", type=int, default=128)
    features = steps.add_parser("features")
    features.add_argument("config")
    features.add_argument("data")
    features.add_argument("oof")
    args = parser.parse_args(argv)
    if args.step == "features":
        result = build(args.config, args.data, args.oof)
    else:
        result = load_and_svd(args.task, args.part, args.data, args.components if args.step == "svd" else None)
    print_step_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
