"""Level-1 on a ``dask.distributed`` cluster: the folds of one or many runs as tasks.

The driver (``mmscel level1 ... --dask ADDRESS``) checks each run as a local
run does (reuse, refusal, ``--overwrite``), builds its features into the
cache, records it as started and holds its lock; then it sends one task per
unfinished fold to the scheduler. A task runs on a worker that sees the same
data, cache and store under the same paths (a shared folder): it fits its
fold exactly as :func:`mmscel.cv.cross_validate` would and writes the fold's
checkpoint, whose marker is written last, so a fold is done once and a task
that finds its fold done returns at once. Only a few facts travel back; the
predictions travel through the checkpoint files. When every fold is done, the
driver assembles each run from its checkpoints with the local code, so the
predictions are bit-identical to a local run's.

A worker killed in the middle of a fold leaves no completion marker: the
scheduler gives the task to another worker, which fits the fold again from the start.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from threadpoolctl import threadpool_info, threadpool_limits

from mmscel.config import RunConfig
from mmscel.cv import fit_split
from mmscel.errors import InputError
from mmscel.fold_probe import FoldProbe
from mmscel.fsutil import sweep_temporaries
from mmscel.learners import FitFailed, make_learner
from mmscel.level1 import RUN_LOG, RunResult, as_run_config, check_run, finish_run, start_run
from mmscel.level1_inputs import load_inputs
from mmscel.progress import log_file, track
from mmscel.store import RunStore, data_fingerprint, digest

log = logging.getLogger(__name__)

ENV_ADDRESS = "MMSCEL_DASK"  # the scheduler's address when neither the option nor a config names one
RETRIES = 1  # a fold that raised (a file server's hiccup) is tried once more; a dead worker's fold always is


def dask_address(option: str | None, configs: Iterable[RunConfig] = ()) -> str | None:
    """The scheduler to send the folds to: the option, else ``MMSCEL_DASK``, else the configs' ``compute.dask``.

    Parameters
    ----------
    option
        The ``--dask`` address given on the command line, or None.
    configs
        The run configs; their ``compute: {dask: ADDRESS}`` blocks must agree.

    Returns
    -------
    str or None
        The address, or None to fit locally.

    Raises
    ------
    InputError
        When the configs name different schedulers.
    """
    if option:
        return option
    if os.environ.get(ENV_ADDRESS):
        return os.environ[ENV_ADDRESS]
    named = sorted({config.compute.dask for config in configs if config.compute is not None and config.compute.dask})
    if len(named) > 1:
        raise InputError("compute.dask", f"the configs name different schedulers ({', '.join(named)}); pass --dask")
    return named[0] if named else None


def connect(address: str, timeout: float | None = None):
    """A ``dask.distributed`` client of the scheduler at ``address``.

    Parameters
    ----------
    address
        The scheduler's address, e.g. ``tcp://10.0.0.5:8786``.
    timeout
        Seconds to wait for it (None: Dask's ``distributed.comm.timeouts.connect``, 30 s unless
        ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT`` says otherwise).

    Returns
    -------
    distributed.Client

    Raises
    ------
    InputError
        When ``dask.distributed`` is not installed or no scheduler answers at ``address``.
    """
    try:
        import dask
        from dask.utils import parse_timedelta
        from distributed import Client
    except ImportError:
        raise InputError("--dask", "dask.distributed is not installed: pip install 'mmscel[dask]'") from None
    if timeout is None:
        timeout = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="seconds")
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its retry messages would bury the one line that says what is wrong
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except ValueError as exc:
        problem = f"not a Dask scheduler address ({exc})"
    except (OSError, TimeoutError):
        problem = f"no Dask scheduler answers there within {timeout:g} s"
    finally:
        quiet.setLevel(level)
    # the half-made client sits in reference cycles: collected at exit, it would wait a minute for its
    # event loop, which is gone by then
    gc.collect()
    raise InputError(address, problem)


def run_level1_dask(
    configs: Sequence[RunConfig | Mapping | str | Path],
    address: str,
    data_dir="data",
    cache_dir=None,
    oof_root: RunStore | str | Path = "oof",
    overwrite: bool = False,
    timeout: float | None = None,
) -> list[RunResult]:
    """Run (or resume, or reuse) level-1 runs with their folds fitted on a Dask cluster.

    Parameters
    ----------
    configs
        The runs, as :func:`mmscel.level1.run_level1` takes them.
    address
        The scheduler's address.
    data_dir, cache_dir, oof_root
        As in :func:`mmscel.level1.run_level1`; the workers must see them under the same paths.
    overwrite
        Replace runs of the same names made with other configs.
    timeout
        Seconds to wait for the scheduler (see :func:`connect`).

    Returns
    -------
    list of RunResult
        One per config, in order; the predictions are those of a local run.

    Raises
    ------
    InputError
        A bad config, two configs of the same run, no scheduler, or what a fold raised on a worker.
    """
    started = time.perf_counter()
    configs = [as_run_config(config) for config in configs]
    _refuse_duplicates(configs)
    store = oof_root if isinstance(oof_root, RunStore) else RunStore(oof_root)
    data_dir = Path(data_dir).resolve()
    cache_dir = Path(cache_dir).resolve() if cache_dir is not None else None
    client = connect(address, timeout)
    try:
        with contextlib.ExitStack() as locks:
            planned = []
            futures = []
            for config in configs:
                locks.enter_context(store.run_lock(config.task, config.name))
                found, pending, facts = _prepare(config, data_dir, cache_dir, store, overwrite)
                planned.append((config, found, facts))
                for fold in pending:
                    paths = (str(data_dir), None if cache_dir is None else str(cache_dir), str(store.root.resolve()))
                    key = f"mmscel-fold-{config.task}-{config.name}-{fold}-{uuid.uuid4().hex[:12]}"
                    args = (config.model_dump(mode="json"), facts, fold, *paths, thread_pools())
                    futures.append(client.submit(fit_fold, *args, key=key, pure=False, retries=RETRIES))
            _wait(client, futures, address)
            return [found or _assemble(c, data_dir, cache_dir, store, facts, started) for c, found, facts in planned]
    finally:
        client.close()


def _refuse_duplicates(configs: list[RunConfig]) -> None:
    seen = set()
    for config in configs:
        run = (config.task, config.name)
        if run in seen:
            raise InputError(f"{config.task}/{config.name}", "named by two configs; give each run its own name")
        seen.add(run)


def _prepare(config: RunConfig, data_dir, cache_dir, store: RunStore, overwrite: bool):
    """The finished identical run (reused), or None, the folds to fit and the facts the run is marked started with."""
    found, facts = check_run(config, data_dir, cache_dir, store, overwrite)
    if found is not None:
        return found, [], facts
    with log_file(store.run_dir(config.task, config.name) / RUN_LOG):
        inputs = start_run(config, data_dir, cache_dir, store, facts)  # the features land in the cache workers read
        checkpoints = store.checkpoints(config.task, config.name)
        pending = [split.name for split in inputs.plan(config) if not checkpoints.fold(split.name).done]
        log.info(f"{config.task}/{config.name}: {len(pending)} folds to fit on the cluster")
    return None, pending, facts


def _assemble(config: RunConfig, data_dir, cache_dir, store: RunStore, facts: dict, started: float) -> RunResult:
    """The run written from its fold checkpoints with the local code (bit-identical to a local run).

    The inputs are loaded again rather than kept from :func:`_prepare`: the driver then holds one
    run's inputs at a time, however many runs it sends to the cluster.
    """
    sweep_temporaries(store.run_dir(config.task, config.name))  # what workers killed in a fold left
    with log_file(store.run_dir(config.task, config.name) / RUN_LOG):
        return finish_run(config, load_inputs(config, data_dir, cache_dir, store), store, facts, started)


def _wait(client, futures: list, address: str) -> None:
    from distributed import as_completed

    try:
        for future in track(as_completed(futures, loop=client.loop), f"level-1 folds on {address}", total=len(futures)):
            facts = future.result()
            log.info(
                f"{facts['task']}/{facts['run']} fold {facts['fold']}: "
                + ("found done" if facts["reused"] else f"{facts['seconds']:.1f} s")
                + f" on {facts['worker']}"
            )
    except BaseException:
        client.cancel(futures)
        raise


def fit_fold(
    fields: dict,
    facts: dict,
    fold: str,
    data_dir: str,
    cache_dir: str | None,
    oof_root: str,
    threads: dict[str, int] | None = None,
) -> dict:
    """A worker's task: fit one fold of a run and write its checkpoint (nothing when it is done).

    Parameters
    ----------
    fields
        The run config's fields (``RunConfig.model_dump(mode="json")``).
    facts
        The run's ``config_hash``, ``data_fingerprint`` and ``fold_fingerprint`` on the driver: a
        worker that reads the config, the data or the folds otherwise refuses the fold.
    fold
        The split's name (``"0"``, ``"last_day"``, ``"refit"``, ...).
    data_dir, cache_dir, oof_root
        The shared folders, as absolute paths.
    threads
        The driver's BLAS and OpenMP thread pool sizes (see :func:`thread_pools`), or None to keep the worker's.

    Returns
    -------
    dict
        ``task``, ``run``, ``fold``, ``worker`` (host:pid), ``seconds`` and ``reused`` (found done).

    Raises
    ------
    InputError
        When the worker cannot read the data or sees other data, or the fit cannot succeed.
    """
    started = time.perf_counter()
    config = RunConfig(**fields)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    if digest(config.hashed()) != facts["config_hash"]:
        raise InputError(config.name, f"the worker {worker} reads the config otherwise: the same mmscel everywhere?")
    store = RunStore(oof_root)
    checkpoints = store.checkpoints(config.task, config.name)
    checkpoint = checkpoints.fold(fold)
    report = {"task": config.task, "run": config.name, "fold": fold, "worker": worker}
    if checkpoint.done:
        return {**report, "seconds": 0.0, "reused": True}
    checkpoint.folder.mkdir(parents=True, exist_ok=True)
    running = checkpoint.folder / f".running.{os.getpid()}.tmp"  # who fits the fold; swept once that process is gone
    running.write_text(f"{worker}\n")
    try:
        with log_file(store.run_dir(config.task, config.name) / RUN_LOG, this_thread=True), threadpool_limits(threads):
            log.info(f"{config.task}/{config.name} fold {fold}: on the worker {worker}")
            inputs, space, learner_targets = _run_inputs(config, facts, data_dir, cache_dir, store, threads)
            splits = inputs.plan(config)
            split = {split.name: split for split in splits}[fold]
            learner = make_learner(config.learner, config.learner_params(), config.seed, config.n_jobs, config.seeds)
            X, Y, X_test = inputs.features.train, inputs.Y, inputs.features.test
            try:
                # the choice a local run makes once, made again for this fold (deterministic: the same choice)
                learner = learner.adapt_to_folds(FoldProbe(X, Y, splits, space, learner_targets))
                result, fitted, fold_space = fit_split(
                    learner, X, Y, split, X_test, space, learner_targets, config.validation_fraction
                )
            except FitFailed as exc:
                raise InputError(f"{config.name}: params.{exc.param}", exc.problem) from None
        checkpoints.save(result, fitted, fold_space)
    finally:
        running.unlink(missing_ok=True)
    return {**report, "seconds": round(time.perf_counter() - started, 3), "reused": False}


def thread_pools() -> dict[str, int]:
    """The sizes of this process's BLAS and OpenMP thread pools, by kind.

    A product summed over another number of threads can differ in its last bits, and the nanny of
    a ``dask worker`` starts it with one thread each; a fold fitted with the driver's pool sizes
    computes what a local run of the driver computes.

    Returns
    -------
    dict
        ``{"blas": n, "openmp": m}`` for the kinds loaded (the largest pool of each).
    """
    pools: dict[str, int] = {}
    for pool in threadpool_info():
        pools[pool["user_api"]] = max(pools.get(pool["user_api"], 1), pool["num_threads"])
    return pools


_LOADED: dict[tuple, tuple] = {}  # the last run whose inputs this worker process loaded, for its next fold
_LOADING = threading.Lock()


def _run_inputs(config: RunConfig, facts: dict, data_dir, cache_dir, store: RunStore, threads: dict | None) -> tuple:
    """The run's inputs, target space and learner targets, prepared as :func:`mmscel.cv.cross_validate` does.

    A worker keeps those of one run, so that the run's next fold on it neither reloads them nor
    transforms the targets again (a local run does both once).
    """
    worker = f"{socket.gethostname()}:{os.getpid()}"
    if data_fingerprint(config.task, data_dir, cache_dir) != facts["data_fingerprint"]:
        raise InputError(data_dir, f"the worker {worker} sees other data there than the driver")
    key = (*facts.values(), data_dir, cache_dir, store.root, *sorted((threads or {}).items()))
    with _LOADING:
        if key not in _LOADED:
            _LOADED.clear()  # one run's inputs at a time, as in a local run
            inputs = load_inputs(config, data_dir, cache_dir, store)
            if inputs.folds.fingerprint != facts["fold_fingerprint"]:
                raise InputError(store.fold_file(config.task, config.folds.scheme), f"differs on the worker {worker}")
            space = inputs.target_space(config)
            if not space.per_fold and not space.fitted:
                space.fit(inputs.Y)
            _LOADED[key] = (inputs, space, None if space.per_fold else space.transform(inputs.Y))
        return _LOADED[key]


__all__ = ["connect", "dask_address", "fit_fold", "run_level1_dask", "thread_pools"]
