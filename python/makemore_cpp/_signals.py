"""Ctrl-C held back for the few statements that must not be cut in two: a model's step count and
what records it, a file and its temporary name, a worker process and its bookkeeping.

Python raises ``KeyboardInterrupt`` at whichever statement of the main thread runs when the signal
arrives, so a second Ctrl-C, or the first one at an unlucky moment, can leave the bookkeeping of a
finished step half-updated or a temporary file behind. Inside :func:`interrupts_deferred` a SIGINT
is noted instead, and delivered, to whatever handler was there before, when the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def interrupts_deferred(merge: bool = False) -> Iterator[None]:
    """Hold SIGINT back until the block ends, then deliver it (once, however many arrived).

    merge: the block runs while an interrupt is already being handled (in an ``except
    KeyboardInterrupt``): a SIGINT meanwhile is part of that interrupt and is dropped.

    Only the main thread receives Python's signals; elsewhere (and where another library has put
    a handler Python cannot restore) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGINT)
    except (ValueError, OSError):  # pragma: no cover - no signal support
        previous = None
    if previous is None:  # a handler installed outside Python: leave it alone
        yield
        return
    arrived: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: arrived.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if arrived and not merge:
            signal.raise_signal(signal.SIGINT)  # the previous handler runs now: KeyboardInterrupt


@contextlib.contextmanager
def first_interrupt_only(leave_ignored: bool = False) -> Iterator[None]:
    """Inside the block, the first SIGINT raises ``KeyboardInterrupt`` as usual and any later one
    is ignored: a command that is stopping (killing its workers, writing its last checkpoint) is
    not cut short by a second Ctrl-C, wherever it lands, and exits promptly all the same.

    leave_ignored: after an interrupt, leave SIGINT ignored when the block ends (a program that
    is about to exit: a Ctrl-C during the interpreter's own shutdown would print a traceback)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is None:
        yield
        return
    seen = [0]

    def handler(signum: int, frame: object) -> None:
        seen[0] += 1
        if seen[0] == 1:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        if seen[0] and leave_ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            signal.signal(signal.SIGINT, previous)
