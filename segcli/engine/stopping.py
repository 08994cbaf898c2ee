"""How a training run reacts to signals: Ctrl-C stops after the current iteration with last.pt
written (a second Ctrl-C stops at once); SIGTERM (a launcher stopping every rank because one
failed, a scheduler, `docker stop`) stops at once, keeping the last last.pt, except inside
`sigterm_held()`, which it waits for. Only the main process acts on them: DataLoader workers
start with both blocked and ignore them (segcli.data.workers), so a SIGTERM to the whole process
group reads the same.

StopSignals holds no reference to the trainer: a cycle through it would keep the DDP model
alive past the process group's destruction, and its threads then abort the process at exit.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable


class Terminated(Exception):
    """SIGTERM arrived; the trainer turns it into a one-line error saying what was kept."""


_held = 0  # how many sigterm_held blocks are open
_pending = False  # a SIGTERM came inside one


class StopSignals:
    """`requested` turns True on the first Ctrl-C (after a `warn`ing); SIGTERM raises
    Terminated."""

    def __init__(self, warn: Callable[[str], None]):
        self.requested = False
        self._warn = warn

    @contextlib.contextmanager
    def installed(self):
        """The handlers for the duration of the block (only the main thread may set them)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            signal.SIGINT: signal.signal(signal.SIGINT, self._on_sigint),
            signal.SIGTERM: signal.signal(signal.SIGTERM, _on_sigterm),
        }
        try:
            yield
        except BaseException:
            # Going down: the launcher's SIGTERM must not cut the one-line error short.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, previous[signal.SIGINT])
            raise
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _on_sigint(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = True
        self._warn("Ctrl-C: finishing this iteration and writing last.pt (again to abort)")


@contextlib.contextmanager
def sigterm_held():
    """SIGTERM raises Terminated only once the block is done: for calls into a library that
    leave its locks or queues broken when an exception strikes half-way (TensorBoard's writer
    then hangs the close that follows)."""
    global _held, _pending
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        stop = _pending and not _held  # an outer block raises it
        if not _held:
            _pending = False  # also when the block raised: that error ends the run
    if stop:
        raise Terminated


def _on_sigterm(signum, frame) -> None:
    global _pending
    if _held:
        _pending = True
        return
    raise Terminated
