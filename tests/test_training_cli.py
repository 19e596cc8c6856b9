"""tinygan.training.cli: flag validators, and run_command's one `error:` line per user mistake."""
import argparse
import errno

import pytest

from tinygan.backend import BackendUnavailableError
from tinygan.errors import CheckpointError, ConfigError, DataError
from tinygan.training import Checkpointer, Interrupted, TrainingDiverged, cli
from tinygan.training.guard import NonFiniteLossError


@pytest.mark.parametrize("validator, text, value", [
    (cli.positive_int, "3", 3), (cli.non_negative_int, "0", 0), (cli.positive_float, "2e-4", 2e-4),
    (cli.probability, "0", 0.0), (cli.probability, "0.999", 0.999), (cli.finite_float, "-2.5", -2.5),
    (cli.number_in(0, 1, low_open=True), "1", 1.0), (cli.seed, "0", 0),
    (cli.at_most(1000, "why"), "1000", 1000), (cli.path_text, "runs/x", "runs/x")])
def test_a_validator_returns_the_value_of_an_accepted_flag(validator, text, value):
    assert validator(text) == value


@pytest.mark.parametrize("validator, text, expected", [
    (cli.positive_int, "0", "a whole number >= 1"), (cli.positive_int, "1.5", "a whole number >= 1"),
    (cli.non_negative_int, "-1", "a whole number >= 0"), (cli.positive_float, "-1", "a number > 0"),
    (cli.positive_float, "nan", "a number > 0"), (cli.positive_float, "inf", "a number > 0"),
    (cli.probability, "1", "a number in [0, 1)"), (cli.number_in(0, 1, low_open=True), "0", "in (0, 1]"),
    (cli.finite_float, "inf", "expected a finite number, got 'inf'"), (cli.seed, "-1", "a whole number >= 0"),
    (cli.at_most(1000, "ten per row"), "1001", "a whole number in [0, 1000], got '1001' (ten per row)"),
    (cli.path_text, "", "expected a path, got ''"), (cli.path_text, "  ", "expected a path")])
def test_a_validator_refuses_a_value_outside_its_meaning_saying_what_it_expected(validator, text, expected):
    with pytest.raises(argparse.ArgumentTypeError, match="expected") as e:
        validator(text)
    assert expected in str(e.value) and repr(text) in str(e.value)


def test_given_holds_only_the_flags_the_command_line_gave():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=argparse.SUPPRESS)
    assert cli.given(p.parse_args(["--lr", "0.1"]), ["lr", "seed"]) == {"lr": 0.1}


def test_require_raises_a_config_error_with_the_message():
    cli.require(True, "never")
    with pytest.raises(ConfigError, match="must be even"):
        cli.require(False, "--batch-size must be even")


@pytest.mark.parametrize("n_images, holdout, batch_size, message", [
    (64, 64, 16, "--holdout 64 holds out all 64 images; expected fewer, leaving at least --batch-size / 2"),
    (64, 1000, 16, "--holdout 1000 holds out all 64 images"),
    (64, 6, 200, "--batch-size 200 needs 100 real images per step, but 64 images minus 6 held out leave 58: "
                 "use a --batch-size of at most 116")])
def test_a_batch_that_the_images_cannot_fill_names_the_flag_and_what_would_fit(n_images, holdout, batch_size,
                                                                               message):
    cli.check_batch_fits(64, 6, 16)
    with pytest.raises(ConfigError) as e:
        cli.check_batch_fits(n_images, holdout, batch_size)
    assert message in str(e.value)


def failing(error):
    def main(argv):
        raise error
    return main


@pytest.mark.parametrize("error, code", [
    (ConfigError("--batch-size must be even, got 7"), 2), (CheckpointError("no checkpoint at x/last.npz"), 1),
    (DataError("no images in x"), 1), (BackendUnavailableError("CuPy cannot run here"), 1),
    (FileNotFoundError("no such photo: me.jpg"), 1),
    (PermissionError(errno.EACCES, "Permission denied", "out"), 1)])
def test_run_command_prints_a_user_error_as_one_line_and_returns_its_exit_code(error, code, capsys):
    assert cli.run_command(failing(error)) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_run_command_says_a_full_disk_keeps_what_was_written_before(capsys):
    full = OSError(errno.ENOSPC, "No space left on device", "run/.last.npz.tmp")
    assert cli.run_command(failing(full)) == 1
    assert "No space left on device while writing run/.last.npz.tmp" in capsys.readouterr().err


def test_run_command_says_settings_too_big_for_the_memory_are_the_users_to_change(capsys):
    too_big = MemoryError("Unable to allocate 373. TiB for an array with shape (100000000000, 32, 4, 4)")
    assert cli.run_command(failing(too_big)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory: Unable to allocate 373. TiB; the settings need more memory")
    assert "--batch-size" in err and err.count("\n") == 1


def test_run_command_exits_3_when_training_diverged(tmp_path, capsys):
    cause = NonFiniteLossError(5, 0, {"d_loss": float("nan"), "g_loss": 1.0})
    assert cli.run_command(failing(TrainingDiverged(cause, Checkpointer(tmp_path / "last.npz")))) == 3
    assert "error: training diverged: non-finite d_loss at step 5" in capsys.readouterr().err


def test_run_command_returns_128_plus_the_signal_for_a_stop_before_training(capsys):
    import signal
    assert cli.run_command(failing(Interrupted(signal.SIGTERM))) == 143
    assert "SIGTERM" in capsys.readouterr().err


def test_run_command_keeps_the_traceback_of_a_bug():
    with pytest.raises(ZeroDivisionError):
        cli.run_command(failing(ZeroDivisionError("a bug in tinygan, not the user's mistake")))
    with pytest.raises(OSError):
        cli.run_command(failing(OSError(errno.EIO, "Input/output error")))


def test_run_command_passes_main_its_argv_and_returns_its_code():
    assert cli.run_command(lambda argv: len(argv), ["a", "b"]) == 2
