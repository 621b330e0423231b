"""Which cells exist: split, donor and day of every synthetic cell, in file order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mmscel.data import layout
from mmscel.data.synth.biology import allocate

PUBLIC_SHARE = 0.45


def plan_task(
    rng: np.random.Generator, task: layout.Task, n_train: int, n_test: int, leak_rows: int = 0
) -> pd.DataFrame:
    """Cells of one task in file order: train rows, then test rows.

    Train: the three training donors on every day but the last. Public test:
    donor 27678 on the training days (Multiome lacks its day 4). Private test:
    all four donors on the last day. For CITEseq, the public day-2 group holds
    ``leak_rows`` rows that will duplicate train rows, as in the competition.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws group sizes and the shuffles.
    task : layout.Task
        The task.
    n_train, n_test : int
        Numbers of training and test cells.
    leak_rows : int
        CITEseq public-test rows that duplicate train rows.

    Returns
    -------
    pandas.DataFrame
        One row per cell: split ('train', 'public', 'private'), donor, day, leak (bool).
    """
    train_days = task.days[:-1]
    train_groups = [(d, day) for d in layout.TRAIN_DONORS for day in train_days]
    public_days = [day for day in train_days if not (task.name == "multi" and day == 4)]
    n_public = round(PUBLIC_SHARE * n_test)
    n_private = n_test - n_public
    frames = [
        _groups("train", train_groups, allocate(n_train, rng.uniform(0.8, 1.2, len(train_groups)), rng)),
        _public_groups(rng, task, public_days, n_public, leak_rows),
        _groups(
            "private",
            [(d, task.last_day) for d in layout.DONORS],
            allocate(n_private, rng.uniform(0.8, 1.2, len(layout.DONORS)), rng),
        ),
    ]
    train = frames[0].sample(frac=1.0, random_state=_seed(rng)).reset_index(drop=True)
    test = pd.concat(frames[1:]).sample(frac=1.0, random_state=_seed(rng)).reset_index(drop=True)
    return pd.concat([train, test], ignore_index=True)


def _public_groups(rng, task, public_days, n_public, leak_rows):
    if task.name == "cite" and leak_rows and 2 in public_days:
        leak_rows = min(leak_rows, n_public)
        others = [day for day in public_days if day != 2]
        counts = allocate(n_public - leak_rows, rng.uniform(0.8, 1.2, len(others)), rng)
        frame = _groups("public", [(layout.PUBLIC_DONOR, day) for day in others], counts)
        leak = _groups("public", [(layout.PUBLIC_DONOR, 2)], [leak_rows])
        leak["leak"] = True
        return pd.concat([leak, frame], ignore_index=True)
    counts = allocate(n_public, rng.uniform(0.8, 1.2, len(public_days)), rng)
    return _groups("public", [(layout.PUBLIC_DONOR, day) for day in public_days], counts)


def _groups(split: str, groups, counts) -> pd.DataFrame:
    donor = np.concatenate([[g[0]] * int(c) for g, c in zip(groups, counts)] or [[]]).astype(np.int64)
    day = np.concatenate([[g[1]] * int(c) for g, c in zip(groups, counts)] or [[]]).astype(np.int64)
    return pd.DataFrame({"split": split, "donor": donor, "day": day, "leak": False})


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))
