"""SIGINT and SIGTERM as one explicit interruption.

Inside :func:`catch_signals` (the ``bayesct`` command runs every subcommand in it), either
signal is recorded and raised as :class:`KeyboardInterrupt`, so SIGTERM stops a run the way
Ctrl-C does. A library may catch that ``KeyboardInterrupt`` and return what it has:
``nutpie.sample`` returns the trace so far, its draws not yet taken left NaN. The record
survives that: :func:`raise_if_interrupted`, called once the sampler returns and again
before an output folder is put in place (:func:`bayesct.files.atomic_dir`), turns it into
:class:`~bayesct.errors.Interrupted`, which the command reports as ``interrupted`` with
exit code 130.

One place must not be cut short: nutpie starts its sampler's threads while it builds the
sampler (``_BackgroundSampler.__init__``), and an exception raised there leaves them
running, to crash the interpreter as it exits. A signal that arrives there is recorded and
sent again a moment later (:data:`RETRY_SECONDS`), by when nutpie waits on the sampler and
stops it on the ``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from bayesct.errors import Interrupted

SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)
# (module prefix, function qualname) of the code a KeyboardInterrupt must not interrupt.
UNSAFE_FRAMES: frozenset[tuple[str, str]] = frozenset({("nutpie", "_BackgroundSampler.__init__")})
RETRY_SECONDS = 0.05
_received: list[int] = []
_active: list[bool] = [False]
_run: list[object] = [object()]  # a token per catch_signals block, so a late retry cannot reach the next one


def received() -> int | None:
    """The first signal recorded by :func:`catch_signals` since it was entered, or ``None``."""
    return _received[0] if _received else None


def raise_if_interrupted() -> None:
    """Raise :class:`~bayesct.errors.Interrupted` if a signal was recorded in the current
    :func:`catch_signals` block (outside one there is no record to act on: library code called
    directly, e.g. ``FitResult.save``, is never stopped by a signal an earlier run received)."""
    if _active[0] and _received:
        raise Interrupted(_received[0])


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _in_unsafe_frame(frame: FrameType | None) -> bool:
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if any(module.startswith(m) and frame.f_code.co_qualname == q for m, q in UNSAFE_FRAMES):
            return True
        frame = frame.f_back
    return False


def _send_again(signum: int, run: object) -> None:
    if _active[0] and _run[0] is run:  # only into the run that received it
        os.kill(os.getpid(), signum)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    if _in_unsafe_frame(frame):
        retry = threading.Timer(RETRY_SECONDS, _send_again, (signum, _run[0]))
        retry.daemon = True
        retry.start()
        return
    raise KeyboardInterrupt


@contextmanager
def catch_signals() -> Iterator[None]:
    """Record SIGINT and SIGTERM and raise them as :class:`KeyboardInterrupt`; restores the handlers after.

    Starts with an empty record. Off the main thread (where Python cannot set handlers)
    it does nothing.
    """
    _received.clear()
    if not _main_thread():
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in SIGNALS}
    _run[0] = object()
    _active[0] = True
    try:
        yield
    finally:
        _active[0] = False
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for a few file-system steps that must not be cut in two.

    A signal sent meanwhile is delivered when the block ends. Where signals cannot be
    blocked (off the main thread, or a platform without ``pthread_sigmask``) the block
    simply runs.
    """
    if not (_main_thread() and hasattr(signal, "pthread_sigmask")):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
