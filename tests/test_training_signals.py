"""tinygan.training.signals: stop signals become a request between steps, or an exception that cleans up.

Signals are raised in this process with signal.raise_signal, which runs the Python handler before
it returns; the handlers of the test process are restored after each test.
"""
import signal
import sys

import pytest

from tinygan.training import DeferredInterrupt, Interrupted
from tinygan.training.signals import signals_raise

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.mark.parametrize("signum, name, code", [(signal.SIGINT, "Ctrl-C", 130),
                                                (signal.SIGTERM, "SIGTERM", 143),
                                                (signal.SIGHUP, "SIGHUP", 129)])
def test_a_stop_signal_inside_the_block_is_only_a_request(signum, name, code, capsys, monkeypatch):
    """The signal does not stop the code in the block: it sets ``requested``, names itself and
    gives the exit code a shell reports (128 + its number)."""
    monkeypatch.setattr("tinygan.training.signals._detach_from_lost_terminal", lambda: None)
    with DeferredInterrupt() as interrupt:
        assert not interrupt.requested and interrupt.exit_code == 0
        signal.raise_signal(signum)
        still_running = True
    assert still_running and interrupt.requested
    assert (interrupt.name, interrupt.exit_code) == (name, code)
    assert "finishing this step, then saving" in capsys.readouterr().err


def test_a_second_signal_exits_at_once_with_its_exit_code():
    with pytest.raises(Interrupted) as stop:
        with DeferredInterrupt():
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
    assert stop.value.exit_code == 143 and isinstance(stop.value, KeyboardInterrupt)


def test_the_previous_handlers_come_back_after_the_block():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with DeferredInterrupt():
        assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]
    assert {s: signal.getsignal(s) for s in before} == before


def test_outside_training_sigterm_raises_so_that_cleanups_run():
    cleaned = []
    with pytest.raises(Interrupted) as stop:
        with signals_raise():
            try:
                signal.raise_signal(signal.SIGTERM)
            finally:
                cleaned.append(True)
    assert cleaned == [True] and stop.value.exit_code == 143
