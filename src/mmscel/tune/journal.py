"""Optuna studies kept in journal files: the storage of blend studies and tuning sessions."""

from __future__ import annotations

from pathlib import Path

from mmscel.errors import InputError

JOURNAL_LOCK_GRACE = 10  # seconds a journal lock may stay unchanged before it is taken as left by a kill


def journal_study(path: str | Path, study_name: str | None, *, read_only: bool = False, **create: object):
    """The study ``study_name`` kept in the journal file ``path`` (created when missing, unless ``read_only``).

    The journal and its lock are named by absolute paths, and the lock is a
    plain file that a process killed while holding it leaves behind: after
    ``JOURNAL_LOCK_GRACE`` seconds without change the next session takes it over.

    Parameters
    ----------
    path
        The journal file.
    study_name
        The study's name in it; with ``read_only``, None (or a name the journal lacks) takes its first study.
    read_only
        Load an existing study without writing to the journal, its folder or its lock (a report's reading).
    **create
        Further arguments of :func:`optuna.create_study` (``sampler``, ``pruner``).

    Returns
    -------
    optuna.Study
        A study to maximise, loaded when it exists.

    Raises
    ------
    InputError
        When the journal is not an Optuna journal (damaged or not JSON lines), or, with
        ``read_only``, when it is missing or holds no study.
    """
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = Path(path).resolve()
    if read_only and not path.is_file():
        raise InputError(path, "no Optuna journal here")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    lock = JournalFileOpenLock(str(path), grace_period=JOURNAL_LOCK_GRACE)
    try:
        storage = JournalStorage(JournalFileBackend(str(path), lock_obj=lock))
        if read_only:
            return optuna.load_study(study_name=_stored_name(storage, study_name, path), storage=storage)
        return optuna.create_study(
            study_name=study_name, storage=storage, direction="maximize", load_if_exists=True, **create
        )
    except (ValueError, KeyError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise InputError(path, f"damaged Optuna journal ({type(exc).__name__}); move it away to start afresh") from None


def _stored_name(storage, wanted: str | None, path: Path) -> str:
    """``wanted`` when the journal holds it, else its first study."""
    import optuna

    names = optuna.get_all_study_names(storage)
    if not names:
        raise InputError(path, "holds no study")
    return wanted if wanted in names else names[0]
