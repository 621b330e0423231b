"""``--set KEY=VALUE``: settings applied over a config file before it is validated like the file.

``level1``, ``level2`` and ``tune`` take them; a config changed by them is
another config (its hash differs), so its run is never mixed with the file's.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence

import yaml

from mmscel.errors import InputError


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict:
    """A config's mapping with ``KEY=VALUE`` settings applied (``--set params.alpha=10``).

    A dotted key reaches into nested mappings, made where missing; everything after the first
    dot of a ``tune.`` key is one key of the search space (``tune.params.alpha``). The value is
    read with ``yaml.safe_load``, so ``3``, ``0.1``, ``true``, ``null``, ``[1, 2]`` and ``{a: 1}``
    keep their types. The result is validated like the file, by the caller.

    Parameters
    ----------
    raw
        The config's keys and values (not modified).
    overrides
        ``KEY=VALUE`` strings, applied in order.

    Returns
    -------
    dict
        A copy of ``raw`` with the overrides set.

    Raises
    ------
    InputError
        One line naming the setting: no ``=``, an empty key, a value that is not YAML, or a
        key that reaches into a value that is not a mapping.
    """
    merged = copy.deepcopy(raw)
    for setting in overrides:
        key, value = _parse_override(setting)
        parts = ["tune", key.removeprefix("tune.")] if key.startswith("tune.") else key.split(".")
        node = merged
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                reached = ".".join(parts[: depth + 1])
                raise InputError(f"--set {setting}", f"'{reached}' holds a value, not a mapping of keys")
        node[parts[-1]] = value
    return merged


def _parse_override(setting: str) -> tuple[str, object]:
    key, equals, text = setting.partition("=")
    key = key.strip()
    if not equals or not key or any(not part for part in key.split(".")):
        raise InputError(f"--set {setting}", "expected KEY=VALUE, e.g. --set params.alpha=10 (a dotted key)")
    try:
        return key, yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"--set {setting}", f"the value is not YAML: {' '.join(str(exc).split())[:120]}") from None


@contextlib.contextmanager
def blame_overrides(overrides: Sequence[str]):
    """Name the ``--set`` setting, rather than the file, in the error a validation raises about its key.

    Parameters
    ----------
    overrides
        The ``KEY=VALUE`` settings applied before the validation in the block.

    Raises
    ------
    InputError
        The block's error, with ``--set KEY=VALUE`` as its place when its key (or a part of it) is
        one set there.
    """
    try:
        yield
    except InputError as exc:
        for setting in overrides:
            if _names(exc.problem, setting.partition("=")[0].strip()):
                raise InputError(f"--set {setting}", exc.problem) from None
        raise


def _names(problem: str, key: str) -> bool:
    """The problem is about ``key``, a key below it, or the part of it that does not exist."""
    parts = key.split(".")
    reached = (".".join(parts[:depth]) for depth in range(len(parts), 0, -1))
    return f"'{key}." in problem or any(f"'{prefix}'" in problem for prefix in reached)
