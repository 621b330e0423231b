"""Named registries: the extension points of mmscel (learners, fold schemes, blend methods, feature blocks).

A registry maps a name to an object, or to a ``"module:attribute"`` string that
is imported on first use (so that registering the GBDT learners does not import
the GBDT libraries). Adding an implementation is one ``register`` call; the
config validation, the command line and the tests read the names from here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """A name that is not registered; the message lists the registered ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Generic[T]):
    """Names of one kind of implementation, in registration order.

    Parameters
    ----------
    kind
        What the registry holds, for messages ("learner", "fold scheme", ...).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, entry: T | str | None = None, *, replace: bool = False):
        """Register ``entry`` under ``name``; without ``entry``, a decorator that registers what it decorates.

        Parameters
        ----------
        name
            The name configs and the command line use.
        entry
            The object, or ``"module:attribute"`` to import on first use.
        replace
            Allow replacing an existing entry (tests register toy implementations).

        Returns
        -------
        T or str or Callable
            ``entry`` as given; without ``entry``, a decorator that returns what it decorates.

        Raises
        ------
        ValueError
            When ``name`` is taken and ``replace`` is false (by the decorator, when it is called).
        """
        if entry is None:

            def decorator(obj: T) -> T:
                self.register(name, obj, replace=replace)
                return obj

            return decorator
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove the entry registered under ``name``.

        Parameters
        ----------
        name
            The name to drop; a name that is not registered is ignored.
        """
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The object registered under ``name``, imported on first use.

        Parameters
        ----------
        name
            A registered name.

        Returns
        -------
        T
            The entry; a ``"module:attribute"`` entry is imported once and the object kept in its place.

        Raises
        ------
        UnknownName
            When ``name`` is not registered; the message lists the registered names.
        """
        if name not in self._entries:
            raise UnknownName(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attribute)
        return entry

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """Every entry with its name, in registration order, importing lazy entries.

        Yields
        ------
        tuple of (str, T)
            A name and its object.
        """
        for name in self.names():
            yield name, self.get(name)

    def validator(self) -> Callable[[str], str]:
        """A check of names for a pydantic ``AfterValidator``.

        Returns
        -------
        Callable[[str], str]
            A function that returns a registered name unchanged and raises ValueError, naming the
            registered names, for any other.
        """

        def check(name: str) -> str:
            if name not in self._entries:
                raise ValueError(f"unknown {self.kind} {name!r} (allowed: {', '.join(self._entries)})")
            return name

        return check

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
