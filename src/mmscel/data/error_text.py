"""Text for the one-line messages of :class:`~mmscel.errors.InputError`: exceptions shortened, values shown plainly."""

from __future__ import annotations

import numpy as np

MAX_CHARS = 160


def one_line(exc: BaseException, *, mark_cut: bool = True) -> str:
    """The message of ``exc`` on one line, cut to ``MAX_CHARS`` characters.

    Parameters
    ----------
    exc : BaseException
        The exception whose message is shown.
    mark_cut : bool
        Append ``...`` when the message was cut.

    Returns
    -------
    str
        The message with its white space folded to single spaces.
    """
    text = " ".join(str(exc).split())
    if len(text) <= MAX_CHARS:
        return text
    return text[:MAX_CHARS] + ("..." if mark_cut else "")


def plain(value: object) -> object:
    """``value`` with NumPy scalars and arrays made Python ones, inside lists, tuples and sets too.

    Parameters
    ----------
    value : object
        A value about to be shown in a message (a cell id read from a file, a count, a list of names).

    Returns
    -------
    object
        ``np.str_('x')`` as ``'x'``, ``np.int64(480)`` as ``480``, arrays as lists; anything else as it was.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(plain(item) for item in value)
    return value


def shown(value: object) -> str:
    """``repr`` of a value for a message, never a NumPy repr such as ``np.str_('x')`` or ``np.int64(480)``.

    Use it wherever a message would write ``{value!r}`` or put a list or tuple of values in the text.

    Parameters
    ----------
    value : object
        The value.

    Returns
    -------
    str
        ``repr(plain(value))``: ``'x'``, ``480``, ``['a', 'b']``.
    """
    return repr(plain(value))
