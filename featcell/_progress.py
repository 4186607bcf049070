"""featcell's one progress bar: :mod:`tqdm.auto`, a widget in notebooks and a line in terminals."""

from __future__ import annotations

import sys


def progress_bar(total, *, desc, unit, initial=0, disable=False, leave=True):
    """A :func:`tqdm.auto.tqdm` bar on stderr: ``desc |####    | 5/10 <unit>, <postfix> | ETA``.

    A terminal or a notebook is redrawn five times a second; a log file (stderr
    not a terminal) gets a new state at most every 10 s, so long runs on a
    cluster leave a readable log. ``disable=True`` draws nothing (``-q``).

    Parameters
    ----------
    total : int
        Steps to do.
    desc : str
        What is being done, shown first.
    unit : str
        The plural name of a step (``"images"``, ``"cells"``).
    initial : int, default=0
        Steps already done (a resumed run).
    disable : bool, default=False
        Draw nothing.
    leave : bool, default=True
        Keep the last state on screen when closed.

    Returns
    -------
    tqdm.tqdm

    Examples
    --------
    >>> from featcell._progress import progress_bar
    >>> bar = progress_bar(3, desc="reading", unit="images", disable=True)
    >>> bar.total, bar.disable
    (3, True)
    >>> bar.close()
    """
    from tqdm.auto import tqdm

    interactive = getattr(sys.stderr, "isatty", lambda: False)() or "ipykernel" in sys.modules
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        disable=disable,
        leave=leave,
        mininterval=0.2 if interactive else 10.0,
        dynamic_ncols=True,
        bar_format=(
            f"{{desc}} |{{bar}}| {{n_fmt}}/{{total_fmt}} {unit}{{postfix}} | ETA {{remaining}}"
        ),
    )
