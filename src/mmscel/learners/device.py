"""Where a learner fits: ``params.device``, ``cpu`` (the default) or ``cuda``.

Three learners take the key: XGBoost (``device="cuda"``, still ``hist``),
CatBoost (``task_type="GPU"``) and the torch MLP (network and batches on
``torch.device("cuda")``). Whether this machine can honour ``cuda`` is asked of
the learner's own library before any fit (see
:meth:`~mmscel.learners.base.BaseLearner.check_device`: ``mmscel level1`` asks
before it writes anything, every fold again before it fits); the answers here
are one-line reasons, or None when the GPU can be used.

``device`` is a parameter like any other, so it is part of a run's config and
hash: GPU fits are not bit-identical to CPU fits, and a run fitted on one is
never reused for the other.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Iterator
from importlib.metadata import version
from typing import Literal

#: the values of ``params.device``
Device = Literal["cpu", "cuda"]


@functools.cache  # asked before the run and again before every fold: the machine does not change
def torch_cuda_problem() -> str | None:
    """Why torch cannot fit on a CUDA GPU here.

    Returns
    -------
    str or None
        A one-line reason, or None when ``torch.cuda.is_available()``.
    """
    import torch

    if torch.cuda.is_available():
        return None
    build = "a CPU build of torch" if torch.version.cuda is None else f"torch {torch.__version__}"
    return f"{build} sees no CUDA GPU (torch.cuda.is_available() is False)"


@functools.cache  # asked before the run and again before every fold: the machine does not change
def xgboost_cuda_problem() -> str | None:
    """Why XGBoost cannot fit on a CUDA GPU here.

    XGBoost does not refuse ``device="cuda"`` without a GPU: it warns and fits
    on the CPU. A tiny booster asked for ``cuda`` shows which device it settled on.

    Returns
    -------
    str or None
        A one-line reason, or None when XGBoost is built with CUDA and finds a GPU.
    """
    import json

    import numpy as np
    import xgboost as xgb

    if not xgb.build_info().get("USE_CUDA", False):
        return f"XGBoost {xgb.__version__} is built without CUDA (xgboost.build_info())"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = xgb.DMatrix(np.zeros((1, 1), dtype=np.float32))  # held: the booster keeps only a weak reference
        probe = xgb.Booster({"device": "cuda"}, [rows])
        settled = json.loads(probe.save_config())["learner"]["generic_param"]["device"]
    if settled.startswith("cuda"):
        return None
    return f"XGBoost {xgb.__version__} finds no CUDA GPU (it would fall back to the CPU)"


@functools.cache  # asked before the run and again before every fold: the machine does not change
def catboost_cuda_problem() -> str | None:
    """Why CatBoost cannot fit on a GPU here.

    Returns
    -------
    str or None
        A one-line reason, or None when ``catboost.utils.get_gpu_device_count()`` is positive.
    """
    from catboost.utils import get_gpu_device_count

    with _quiet_stderr():  # without a driver, CatBoost's CUDA runtime prints its own error line
        count = get_gpu_device_count()
    if count > 0:
        return None
    return f"CatBoost {version('catboost')} finds no GPU (catboost.utils.get_gpu_device_count() is 0)"


def older_than(installed: str, needed: str) -> bool:
    """Whether a library version is older than ``needed``.

    Parameters
    ----------
    installed
        The installed version (``"1.2"``, ``"3.2.0rc1"``); its release numbers count, so a
        pre-release or local build of a version has what that version has.
    needed
        The first version that has the feature (``"1.2.1"``).

    Returns
    -------
    bool
    """
    from packaging.version import InvalidVersion, Version

    try:
        return Version(installed).release < Version(needed).release
    except InvalidVersion:
        return True  # an unreadable version is not trusted to have the feature


def gpu_version_problem(library: str, needed: str, setting: str, installed: str | None = None) -> str | None:
    """Why a setting cannot be fitted on a GPU by the installed version of its library.

    Parameters
    ----------
    library
        The distribution (``"catboost"``).
    needed
        The first version that fits ``setting`` on a GPU.
    setting
        What is asked, as the config says it (``"loss MultiRMSE"``: the key, then the value).
    installed
        The installed version (None: the distribution's).

    Returns
    -------
    str or None
        A one-line reason naming the versions and the ways out, or None when the version suffices.
    """
    installed = version(library) if installed is None else installed
    if not older_than(installed, needed):
        return None
    return (
        f"cuda with {setting} needs {library} >= {needed} (installed: {installed}); "
        f"upgrade {library}, change params.{setting.split()[0]}, or use device cpu"
    )


def check_gpu_setting(device: str, params: dict, key: str, value: str, library: str, needed: str) -> str:
    """``device`` as validated: refused when it is ``cuda`` and ``params[key] == value`` needs a newer ``library``.

    Parameters
    ----------
    device
        The ``device`` field being validated.
    params
        The fields validated before it (pydantic's ``info.data``).
    key, value
        The setting that needs ``library >= needed`` on a GPU.
    library, needed
        See :func:`gpu_version_problem`.

    Returns
    -------
    str
        ``device``.

    Raises
    ------
    ValueError
        With :func:`gpu_version_problem`'s reason.
    """
    if device == "cuda" and params.get(key) == value:
        problem = gpu_version_problem(library, needed, f"{key} {value}")
        if problem is not None:
            raise ValueError(problem)
    return device


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to /dev/null for the block."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
