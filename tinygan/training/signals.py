"""Stop signals: Ctrl-C (SIGINT), SIGTERM and SIGHUP finish the current step, save, and exit.

SIGTERM is what ``kill``, ``timeout``, a job scheduler's time limit and ``docker stop`` send;
SIGHUP is what a closed terminal or SSH session sends.  By default each kills Python at once, and
a run loses everything since its last checkpoint.  Inside :class:`DeferredInterrupt` a stop
signal only sets a flag that the training loop reads between two steps (a step stopped halfway,
D updated and G not, could not be resumed exactly); the loop then saves and exits with
``128 + signal number`` (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), as a shell reports a
process killed by that signal.  A second signal exits at once without saving (the checkpoint on
disk stays intact: checkpoints are written atomically).

Outside such a block (loading data, building models) :func:`signals_raise` turns the same
signals into an :class:`Interrupted` exception, so ``finally`` clauses and temporary-file
clean-ups run before the process exits.

Data-parallel runs: a signal may reach one rank only (``kill`` of one process, a node's time
limit), so every rank asks :meth:`DeferredInterrupt.requested_on_any_rank` once per step, a
``communicator.any_rank`` of the flag, and all stop at the same step with the same exit code.
"""
from __future__ import annotations

import os
import signal
import stat
import sys
import threading
from contextlib import contextmanager

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))             # Windows has no SIGHUP


def exit_code(signum: int) -> int:
    """The exit status a shell reports for a process stopped by ``signum``: 128 + its number."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived where the work cannot be finished and saved: exit, cleaning up.

    A KeyboardInterrupt, so code that cleans up after Ctrl-C cleans up after SIGTERM too."""

    def __init__(self, signum: int, announced: bool = False):
        super().__init__(signal_name(signum))
        self.signum = int(signum)
        self.exit_code = exit_code(signum)
        self.announced = announced        # the handler has already said why the process stops


def _say(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):          # the terminal is gone (SIGHUP) or stderr is closed
        pass


def _detach_from_lost_terminal() -> None:
    """Point stdout and stderr at /dev/null if they are terminals (character devices).

    After a hang-up, writing to the terminal fails with EIO; a progress bar's next refresh would
    raise and the run would die before saving.  Pipes and files (``nohup``, ``> log``) are kept.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        for fd in (1, 2):
            try:
                if stat.S_ISCHR(os.fstat(fd).st_mode):
                    os.dup2(devnull, fd)
            except OSError:
                pass
    finally:
        os.close(devnull)


def _install(handler, signals) -> dict:
    """Set ``handler`` for ``signals``; returns the previous handlers.  Only the main thread can
    set signal handlers; elsewhere (a test runner's worker thread) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in signals}


def _restore(previous: dict) -> None:
    for s, h in previous.items():
        signal.signal(s, h)


class DeferredInterrupt:
    """A with-block in which a stop signal is a request that the training loop honours between steps.

        with DeferredInterrupt() as interrupt:
            for real in batches:
                ...one training step...
                if interrupt.requested:
                    save(); return interrupt.exit_code
    """

    def __init__(self, signals=STOP_SIGNALS, communicator=None):
        self.signals = tuple(signals)
        self.signum: int | None = None
        self.communicator = communicator
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def requested_on_any_rank(self) -> bool:
        """Whether a stop signal reached this process or, in a data-parallel run (``communicator``),
        any rank.  A collective that every rank calls at the same step: all get the same answer,
        and then every rank holds the signal (its name and exit code), so all exit alike."""
        comm = self.communicator
        if comm is None or comm.size == 1:
            return self.requested
        if not comm.any_rank(self.requested):
            return False
        signals = comm.allgather_object(self.signum)
        if self.signum is None:
            self.signum = next(s for s in signals if s is not None)
        return True

    @property
    def exit_code(self) -> int:
        """128 + the signal's number; 0 if no signal arrived."""
        return 0 if self.signum is None else exit_code(self.signum)

    @property
    def name(self) -> str | None:
        return None if self.signum is None else signal_name(self.signum)

    def __enter__(self):
        self.signum = None
        self._previous = _install(self._handle, self.signals)
        return self

    def _handle(self, signum, frame):
        if signum == getattr(signal, "SIGHUP", None):
            _say(f"\n{signal_name(signum)}: the terminal hung up; output stops here")
            _detach_from_lost_terminal()
        if self.signum is not None:
            _say(f"\n{signal_name(signum)} again: exiting without saving (the last checkpoint is intact)")
            raise Interrupted(signum, announced=True)
        self.signum = signum
        _say(f"\n{signal_name(signum)}: finishing this step, then saving (send it again to exit without "
             f"saving)")

    def __exit__(self, *exc):
        _restore(self._previous)
        return False


@contextmanager
def signals_raise(signals=STOP_SIGNALS):
    """A with-block in which a stop signal raises :class:`Interrupted` (with its exit code)."""
    def handler(signum, frame):
        if signum == getattr(signal, "SIGHUP", None):
            _detach_from_lost_terminal()
        raise Interrupted(signum)

    previous = _install(handler, signals)
    try:
        yield
    finally:
        _restore(previous)
