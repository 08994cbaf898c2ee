"""How every worker process segcli starts (DataLoader workers, the convert-labelme pool) begins:
one OpenCV thread, since the workers already use the cores, and the stop signals left to the
main process, which stops its workers itself (and says why). Torch-free: the labelme pool never
imports torch.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterable
from multiprocessing import AuthenticationError

import cv2

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# What a handover to a main process that stopped mid-way raises.
PARENT_GONE = (ConnectionError, EOFError, AuthenticationError)


def init_worker(*_worker_id: int, ignore: Iterable[int] = (signal.SIGINT,)) -> None:
    """Ignore `ignore` (Ctrl-C at least), then unblock them (see `stops_blocked`); keep OpenCV
    to one thread. `_worker_id`: what a DataLoader passes (torch sets its own threads to 1)."""
    ignore = tuple(ignore)
    for sig in ignore:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, ignore)  # a pending one is discarded: ignored
    sys.excepthook = quiet_when_the_parent_is_gone(sys.excepthook)
    cv2.setNumThreads(1)


def quiet_when_the_parent_is_gone(hook):
    """`hook`, silent on PARENT_GONE. A DataLoader worker hands each batch's shared memory to
    the main process over a connection (multiprocessing.resource_sharer, whose thread reports
    failures through sys.excepthook); a main process stopped mid-handover (SIGTERM) breaks it,
    and the main process reports the stop itself."""

    def excepthook(kind, value, traceback):
        if not issubclass(kind, PARENT_GONE):
            hook(kind, value, traceback)

    return excepthook


@contextlib.contextmanager
def stops_blocked():
    """The stop signals held back in this thread for the block, so workers forked inside it
    start with them blocked until `init_worker` ignores them: a SIGTERM to the whole process
    group (a scheduler, `docker stop`) cannot kill a worker that is still starting. The main
    process gets a signal that came meanwhile when the block ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
