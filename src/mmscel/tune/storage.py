"""Where a tuning study lives: a journal file under the store, or a database shared by many machines.

Without ``--storage`` a study is kept in Optuna's journal file
``oof/tune/<study>/study.journal``: several processes on one machine share it
safely, and a trial left RUNNING by a killed process is found by its pid (a
journal has no heartbeat). With ``--storage postgresql://…`` (any SQLAlchemy
URL Optuna's :class:`~optuna.storages.RDBStorage` accepts) the study lives in
the database: the workers of every machine send heartbeats, and a trial whose
worker stopped beating for ``2 x heartbeat`` seconds is failed by the next
worker that starts a trial, which enqueues its parameters again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from mmscel.errors import InputError
from mmscel.tune.journal import journal_study

JOURNAL = "study.journal"
HEARTBEAT = 60  # seconds between a database worker's heartbeats; a trial is stale after twice that
CONNECT_TIMEOUT = 10  # seconds to reach a database server before the session gives up
MAX_RETRY = 2  # a trial killed this often in a row is not enqueued again


@dataclass(frozen=True)
class StudyStorage:
    """The storage of a session's studies.

    Parameters
    ----------
    url
        A database URL, or None for the journal file in each study's folder.
    folder_of
        Gives a study's folder (``RunStore.study_dir``).
    heartbeat
        Seconds between heartbeats (database storage only).
    """

    url: str | None
    folder_of: object
    heartbeat: int = HEARTBEAT

    @property
    def shared(self) -> bool:
        """Whether the study lives in a database (trials are recovered by heartbeat, not by pid)."""
        return self.url is not None

    def describe(self) -> str:
        """The storage as shown to the user (a database URL without its password)."""
        return redacted(self.url) if self.shared else "journal"

    def connect(self) -> None:
        """Reach the database now (nothing for a journal), so that a bad URL is refused before any work."""
        if self.shared:
            self._backend  # noqa: B018 - the cached connection, made here

    def exists(self, name: str) -> bool:
        """Whether the study ``name`` is already in this storage."""
        if not self.shared:
            return (self.folder_of(name) / JOURNAL).exists()
        import optuna

        return name in optuna.study.get_all_study_names(self._backend)

    def open(self, name: str, **create: object):
        """The study ``name`` (created when missing), to maximise.

        Parameters
        ----------
        name
            The study's name.
        **create
            Further arguments of :func:`optuna.create_study` (``pruner``).

        Returns
        -------
        optuna.Study
        """
        if not self.shared:
            return journal_study(self.folder_of(name) / JOURNAL, name, **create)
        import optuna

        return _connected(
            self.url,
            lambda: optuna.create_study(
                study_name=name, storage=self._backend, direction="maximize", load_if_exists=True, **create
            ),
        )

    @cached_property
    def _backend(self):
        """One RDBStorage (one connection pool, one heartbeat thread) for every study this session opens."""
        import warnings

        import optuna

        engine = {"pool_pre_ping": True}
        if self.url.startswith("postgresql"):
            engine["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}

        def connect():
            return optuna.storages.RDBStorage(
                self.url,
                engine_kwargs=engine,
                heartbeat_interval=self.heartbeat,
                grace_period=2 * self.heartbeat,
                heartbeat_stale_trial_callback=retry_callback(),
            )

        with warnings.catch_warnings():  # the heartbeat arguments are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _connected(self.url, lambda: _creating_tables_together(connect))


def _creating_tables_together(connect, attempts: int = 5):
    """``connect()``, again when another worker created Optuna's tables in an empty database at the same moment.

    Optuna creates its tables when it first connects; two workers started at
    once on an empty database race on that, and the loser's CREATE fails on a
    unique or duplicate-object error although the tables are then there.
    """
    import time

    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            return connect()
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def retry_callback():
    """Optuna's callback that enqueues a failed trial's parameters again (at most ``MAX_RETRY`` times).

    Optuna 4.9 renamed ``RetryFailedTrialCallback`` to ``RetryHeartbeatStaleTrialCallback``; the
    new name is used where it exists.

    Returns
    -------
    callable
        ``callback(study, failed_trial)``.
    """
    import warnings

    import optuna

    storages = optuna.storages
    retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return retry(max_retry=MAX_RETRY)


def redacted(url: str) -> str:
    """A database URL with its password hidden.

    Parameters
    ----------
    url
        A SQLAlchemy URL.

    Returns
    -------
    str
    """
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: it is shown as given (it holds no parseable password)
        return url


def _connected(url: str, make):
    """Run ``make`` and turn a failure to reach or read the database into a one-line error."""
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

    try:
        return make()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        problem = f"not a database URL Optuna can use: {redacted(url)} ({_first_line(exc)})"
        raise InputError("--storage", problem) from None
    except ImportError as exc:  # Optuna's "Failed to import DB access module" for a driver not installed
        raise InputError("--storage", f"no driver installed for {redacted(url)} ({_first_line(exc)})") from None
    except DBAPIError as exc:
        raise InputError("--storage", f"cannot use {redacted(url)}: {_first_line(exc.orig or exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
