"""Select level-1 runs for a blend and refuse any that do not belong together."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmscel.errors import InputError
from mmscel.learners.base import TargetBasis
from mmscel.level1 import LAST_DAY
from mmscel.store import data_fingerprint, load_array, oof_path, read_manifest

MUST_MATCH = ("data_fingerprint", "fold_fingerprint")


@dataclass
class RunOutputs:
    """One finished level-1 run's predictions and manifest."""

    name: str
    manifest: dict
    oof: np.ndarray
    test: np.ndarray
    last_day: np.ndarray | None  # the last-day holdout's predictions, when the run has one
    oof_root: Path  # the store it lives in (manifests name their files relative to it)


def select_runs(oof_root: Path, task: str, patterns: list[str]) -> list[str]:
    """Names of finished runs of ``task`` matching any of ``patterns`` (names or globs), sorted."""
    folder = Path(oof_root) / task
    available = sorted(p.parent.name for p in folder.glob("*/manifest.json")) if folder.exists() else []
    chosen = sorted({name for name in available for pattern in patterns if fnmatch.fnmatchcase(name, pattern)})
    if not chosen:
        raise InputError(
            folder, f"no finished {task} run matches {patterns} (available: {', '.join(available) or 'none'})"
        )
    return chosen


def load_runs(oof_root: Path, task: str, names: list[str]) -> list[RunOutputs]:
    """Load the runs and check they share data, folds and target space."""
    runs = []
    for name in names:
        run_dir = Path(oof_root) / task / name
        manifest = read_manifest(run_dir / "manifest.json")
        if not manifest or not manifest.get("completed"):
            raise InputError(run_dir, "not a finished level-1 run")
        last = run_dir / "folds" / f"fold_{LAST_DAY}" / "valid.npy"
        runs.append(
            RunOutputs(
                name,
                manifest,
                load_array(run_dir / "oof.npy"),
                load_array(run_dir / "test.npy"),
                load_array(last) if last.exists() else None,
                Path(oof_root),
            )
        )
    check_compatible(runs)
    return runs


def check_compatible(runs: list[RunOutputs]) -> None:
    """Refuse runs whose data, folds or target space differ, naming the runs and the difference."""
    first = runs[0]
    for run in runs[1:]:
        for key in MUST_MATCH:
            if run.manifest[key] != first.manifest[key]:
                what = key.replace("_fingerprint", "")
                raise InputError(
                    f"runs {first.name} and {run.name}",
                    f"were made from different {what} ({first.manifest[key]} vs {run.manifest[key]}); "
                    f"a blend needs the same {what}",
                )
        if _space(run.manifest) != _space(first.manifest):
            raise InputError(
                f"runs {first.name} and {run.name}",
                f"predict different target spaces ({_space(first.manifest)} vs {_space(run.manifest)})",
            )
        if run.oof.shape != first.oof.shape or run.test.shape != first.test.shape:
            raise InputError(
                f"runs {first.name} and {run.name}", f"prediction shapes differ ({first.oof.shape} vs {run.oof.shape})"
            )


def check_data(task: str, fingerprints: dict[str, str], data_dir, cache_dir=None) -> None:
    """Refuse runs (name -> data fingerprint) made from other data than ``data_dir`` holds now."""
    current = data_fingerprint(task, data_dir, cache_dir)
    for name, fingerprint in fingerprints.items():
        if fingerprint != current:
            raise InputError(
                f"run {task}/{name}",
                f"was made from other data than {data_dir} holds now "
                f"(fingerprint {fingerprint} vs {current}); rerun it",
            )


def _space(manifest: dict) -> tuple:
    space = manifest["target_space"]
    if space["kind"] == "components":
        return ("components", space["features"], space["n_components"])
    return ("proteins", space["n_targets"] if "n_targets" in space else None)


def target_basis(space: dict, oof_root) -> TargetBasis | None:
    """The target basis that coefficients in a manifest's ``target_space`` refer to (None for proteins)."""
    if space["kind"] != "components":
        return None
    components = load_array(oof_path(oof_root, space["components_file"]))
    return TargetBasis(components, np.zeros(components.shape[1], dtype=np.float32))
