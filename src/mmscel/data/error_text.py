"""Exception text shortened to fit the one-line messages of :class:`~mmscel.errors.InputError`."""

from __future__ import annotations

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
