"""Optional MLflow logging of level-1 runs, blends and tuning trials; off by default.

``--mlflow`` (or ``--mlflow-uri URI``) on ``mmscel level1``, ``level2`` and ``tune`` switches it
on, as does ``MMSCEL_MLFLOW=1`` (or ``=URI``) for the command line and the Python API alike;
without either, nothing imports mlflow. The default store is an SQLite database in the store,
``<oof>/mlflow/mlflow.db`` (the kind MLflow 3 defaults to; its ``./mlruns`` file store is legacy),
its artifacts in ``<oof>/mlflow/artifacts/``. Work is logged once finished and written; when
logging fails it stays finished and one warning says why. Nothing here enters a hash or fingerprint.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from mmscel.errors import InputError

ENV = "MMSCEL_MLFLOW"
FOLDER = "mlflow"  # in the store's root
DATABASE = "mlflow.db"
ARTIFACTS = "artifacts"
INSTALL = "pip install 'mmscel[mlflow]'"
ON = ("1", "true", "yes", "on")
OFF = ("", "0", "false", "no", "off")
LEVEL2_EXPERIMENT = "level2"

log = logging.getLogger(__name__)
_setting: bool | str | None = None  # what :func:`enabled` decided; None: the environment decides
_announced: set[str] = set()
_failed: dict[str, str] = {}  # tracking URI -> why logging to it failed


def from_environment() -> bool | str:
    """What ``MMSCEL_MLFLOW`` asks for: False (unset, 0, off), True (1, on: the default store) or a tracking URI."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in OFF:
        return False
    return True if value.lower() in ON else value


def current(configured: bool = False) -> bool | str:
    """The tracking in force (:func:`enabled`'s, else the environment's, else ``configured``, a config's
    ``tracking: mlflow``): False, True (the default store) or a URI."""
    setting = from_environment() if _setting is None else _setting
    return setting or configured


@contextlib.contextmanager
def enabled(flag: bool = False, uri: str | None = None) -> Iterator[bool | str]:
    """Track what runs in the block as the command line's ``--mlflow`` and ``--mlflow-uri`` ask.

    Parameters
    ----------
    flag
        ``--mlflow``: log to the default store (``<oof>/mlflow/mlflow.db``).
    uri
        ``--mlflow-uri``: log to this tracking URI (implies ``flag``).

    Yields
    ------
    bool or str
        The tracking in force (the environment's when neither is given).

    Raises
    ------
    InputError
        When tracking is on and mlflow is not installed (checked before anything runs).
    """
    global _setting
    setting = uri or flag or from_environment()
    if setting:
        import_mlflow()
    before, _setting = _setting, setting
    try:
        yield setting
    finally:
        _setting = before


def import_mlflow():
    """The mlflow module; an :class:`InputError` saying how to install it when it is missing."""
    try:
        import mlflow
    except ImportError:
        raise InputError("--mlflow", f"mlflow is not installed: {INSTALL}") from None
    return mlflow


def tracking_uri(setting: bool | str, root: str | Path) -> str:
    """The tracking URI of ``setting``: True, the default store in the store's ``root``; else the URI given."""
    if setting is True:
        return f"sqlite:///{(Path(root) / FOLDER / DATABASE).resolve()}"
    return str(setting)


def log_level1(record, configured: bool = False) -> None:
    """Log a finished level-1 run when tracking is on (see the module's description).

    Params are its validated config flattened (``params.alpha``, ``features.svd_components``, ...);
    metrics its CV, per-fold and last-day scores, the mean-profile floor and its time; tags its
    task, learner, name, config hash and fingerprints; artifacts its manifest and log file.

    Parameters
    ----------
    record : mmscel.store.RunRecord
        The run, as the store wrote it.
    configured : bool
        The run's config asks for it (``tracking: mlflow``).
    """
    from mmscel.level1 import RUN_LOG

    setting = current(configured)
    if not setting:
        return
    manifest = record.manifest
    metrics = {key: manifest.get(key) for key in ("cv", "cv_mean_profile", "last_day", "last_day_mean_profile")}
    metrics.update(wall_seconds=manifest.get("wall_seconds"), peak_rss_mb=manifest.get("peak_rss_mb"))
    for name, fold in manifest.get("folds", {}).items():
        metrics.update({f"fold.{name}.score": fold.get("score"), f"fold.{name}.seconds": fold.get("seconds")})
    tags = {key: manifest.get(key) for key in ("task", "learner", "run", "fold_scheme", "test_predictions")}
    keys = ("config_hash", "data_fingerprint", "feature_fingerprint", "fold_fingerprint")
    tags.update({key: manifest.get(key) for key in keys}, kind="level1", path=str(record.path))
    entry = {
        "experiment": f"level1-{record.task}",
        "name": record.name,
        "params": flatten(manifest.get("config", {})),
        "metrics": metrics,
        "tags": tags,
        "artifacts": [record.path / "manifest.json", record.path / RUN_LOG],
    }
    _log_entry(f"{record.task}/{record.name}", setting, record.store.root, entry)


def log_blend(record, store, configured: bool = False) -> None:
    """Log a finished blend when tracking is on: per task its scores and weights.

    Metrics are ``<task>.in_sample`` (the blend's CV), ``<task>.nested``, ``<task>.last_day``,
    ``<task>.best_single``, ``<task>.weight.<run>``, ``<task>.cis_gain`` (when the blend has a cis
    correction) and the pooled scores; params its config.

    Parameters
    ----------
    record : mmscel.store.BlendRecord
        The blend, as the store wrote it.
    store : mmscel.store.RunStore
        The store holding it.
    configured : bool
        The blend's config asks for it (``tracking: mlflow``).
    """
    from mmscel.blend.run import BLEND_LOG

    setting = current(configured)
    if not setting:
        return
    metrics = {f"pooled.{key}": value for key, value in record.pooled.items()}
    tags = {"kind": "level2", "blend": record.name, "method": record.method, "path": str(record.path)}
    for task, info in record.tasks.items():
        metrics.update({f"{task}.{key}": getattr(info, key) for key in ("in_sample", "nested", "last_day")})
        metrics[f"{task}.best_single"] = info.best_single["score"]
        metrics.update({f"{task}.weight.{run}": weight for run, weight in zip(info.runs, info.weights)})
        if info.cis and "gain" in info.cis:
            metrics[f"{task}.cis_gain"] = info.cis["gain"]  # the cis correction on held-out folds
        tags[f"{task}.runs"] = ",".join(info.runs)
    entry = {
        "experiment": LEVEL2_EXPERIMENT,
        "name": record.name,
        "params": flatten(record.manifest.get("config", {})),
        "metrics": {**metrics, "wall_seconds": record.wall_seconds},
        "tags": tags,
        "artifacts": [record.path / name for name in ("manifest.json", "weights.json", BLEND_LOG)],
    }
    _log_entry(f"blend {record.name}", setting, store.root, entry)


def trial_callbacks(store, configured: bool = False) -> list:
    """The Optuna callbacks that log the trials of a session on ``store``: ``[TrialLogger]``, or none when off.

    ``configured`` is the tuned config's ``tracking: mlflow``.
    """
    setting = current(configured)
    return [TrialLogger(setting, store.root)] if setting else []


class TrialLogger:
    """An Optuna callback: one MLflow run per finished trial, in the experiment named after the study.

    Params: the trial's (dotted config keys); metrics: ``value`` (the objective) and ``fold_score``
    (per fold, step = fold); tags: its number and state and the study's facts (task, learner,
    objective, fingerprints). After a failure it stops for the rest of the session (one warning).
    Not optuna-integration's ``MLflowCallback``: it is deprecated (4.9, removed in 6.0) and sets
    MLflow's process-wide tracking URI and experiment.

    Parameters
    ----------
    setting
        True (the default store) or a tracking URI.
    root
        The store's root folder.
    """

    def __init__(self, setting: bool | str, root: str | Path):
        self.setting, self.root = setting, Path(root)
        self.tracker: Tracker | None = None
        self.failed = False

    def __call__(self, study, trial) -> None:
        if self.failed:
            return
        what, uri = f"study {study.study_name} trial {trial.number}", tracking_uri(self.setting, self.root)
        self.failed = not _guarded(what, uri, lambda: self._log(study, trial))

    def _log(self, study, trial) -> None:
        if self.tracker is None:
            self.tracker = Tracker(self.setting, self.root)
        facts = {key: value for key, value in study.user_attrs.items() if isinstance(value, str | int | float)}
        tags = {**facts, "kind": "tune", "study": study.study_name, "number": trial.number, "state": trial.state.name}
        status = {"COMPLETE": "FINISHED", "FAIL": "FAILED", "PRUNED": "KILLED"}.get(trial.state.name, "FINISHED")
        self.tracker.log(
            experiment=study.study_name,
            name=f"trial {trial.number}",
            params=trial.params,
            metrics={"value": trial.value if trial.values is not None and len(trial.values) == 1 else None},
            tags=tags,
            steps={"fold_score": trial.intermediate_values},
            status=status,
            level=logging.DEBUG,
        )


class Tracker:
    """Writes runs to one MLflow tracking store, through its client (no process-wide MLflow state).

    Parameters
    ----------
    setting
        True (the default store, in ``root``) or a tracking URI.
    root
        The store's root folder.
    """

    def __init__(self, setting: bool | str, root: str | Path):
        mlflow = import_mlflow()
        self.uri = tracking_uri(setting, root)
        self.artifacts = None
        if self.uri.startswith("sqlite:///"):  # MLflow would put its artifacts in ./mlruns of the working folder
            database = Path(self.uri.removeprefix("sqlite:///"))
            database.parent.mkdir(parents=True, exist_ok=True)
            self.artifacts = database.parent / ARTIFACTS
        with _mlflow_quiet():
            self.client = mlflow.MlflowClient(tracking_uri=self.uri)
        if self.uri not in _announced:
            from mmscel.tune.storage import redacted

            _announced.add(self.uri)
            shown = redacted(self.uri)
            log.info(f"MLflow tracking store {shown} (to browse it: mlflow ui --backend-store-uri {shown})")

    def _experiment(self, name: str) -> str:
        """The id of experiment ``name``, created (its artifacts beside the database) when missing."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        location = None if self.artifacts is None else (self.artifacts / _plain(name)).as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except Exception:
            found = self.client.get_experiment_by_name(name)  # another process created it meanwhile
            if found is None:
                raise
            return found.experiment_id

    def log(
        self, experiment, name, params, metrics, tags, artifacts=(), steps=None, status="FINISHED", level=logging.INFO
    ):
        """Log one finished run; metrics that are None or not finite are left out.

        Parameters
        ----------
        experiment, name
            The experiment's name and the run's.
        params, metrics, tags
            Mappings of names to values (tags are prefixed ``mmscel.``).
        artifacts
            Files to copy into the run's artifacts (missing ones are skipped).
        steps
            Per-step metrics: name -> {step: value}.
        status
            The run's final status (``FINISHED``, ``FAILED``, ``KILLED``).
        level
            The level of the line that says where it went (INFO; a tuning trial's: DEBUG).

        Returns
        -------
        str
            The MLflow run id.
        """
        from mlflow.entities import Metric, Param

        with _mlflow_quiet():
            experiment_id = self._experiment(experiment)
            tags = {f"mmscel.{key}": _text(value, 8000) for key, value in tags.items() if value is not None}
            run = self.client.create_run(experiment_id, run_name=name, tags=tags)
            run_id = run.info.run_id
            now = int(time.time() * 1000)
            try:
                values = [Metric(key, float(v), now, 0) for key, v in metrics.items() if _finite(v)]
                for key, series in (steps or {}).items():
                    values += [Metric(key, float(v), now, int(step)) for step, v in series.items() if _finite(v)]
                entries = [Param(key, _text(value, 6000)) for key, value in params.items()]
                for start in range(0, max(len(entries), len(values)), 100):  # MLflow's batch limits
                    self.client.log_batch(
                        run_id, metrics=values[start : start + 100], params=entries[start : start + 100]
                    )
                for path in artifacts:
                    if Path(path).is_file():
                        self.client.log_artifact(run_id, str(path))
            except BaseException:
                self.client.set_terminated(run_id, "FAILED")
                raise
            self.client.set_terminated(run_id, status)
        log.log(level, f"{experiment}/{name}: logged to MLflow (run {run_id})")
        return run_id


def flatten(mapping: Mapping, prefix: str = "") -> dict[str, object]:
    """A nested mapping as dotted keys: ``{"params": {"alpha": 1}}`` -> ``{"params.alpha": 1}``.

    Parameters
    ----------
    mapping
        The nested mapping (a config's ``model_dump()``).
    prefix
        Put before every key.

    Returns
    -------
    dict
        Dotted keys to leaf values (lists and empty mappings are leaves).
    """
    flat: dict[str, object] = {}
    for key, value in mapping.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _log_entry(what: str, setting: bool | str, root, entry: dict) -> None:
    _guarded(what, tracking_uri(setting, root), lambda: Tracker(setting, root).log(**entry))


def _guarded(what: str, uri: str, action) -> bool:
    """Run ``action``; on any failure log one warning line, so that the finished work stays finished.

    A store that failed is not tried again in this process: a tracking server that does not
    answer costs MLflow's HTTP retries (minutes) once, not after every run of a command.
    """
    problem = _failed.get(uri)
    if problem is None:
        try:
            action()
            return True
        except Exception as exc:
            problem = _failed[uri] = f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"
    log.warning(f"{what}: not logged to MLflow ({problem})")
    return False


@contextlib.contextmanager
def _mlflow_quiet():
    """MLflow's and Alembic's INFO lines (creating and migrating the database) held back; warnings pass."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
