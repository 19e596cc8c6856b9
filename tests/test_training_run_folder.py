"""tinygan.training.run_folder: settings of new and resumed runs, config.json, the output folder."""
import os
import subprocess
import sys
import time

import pytest

from tinygan.errors import ConfigError
from tinygan.io import HOST
from tinygan.training import RunFolder, prepare_output_folder, resolve_settings

DEFAULTS = {"data": None, "lr": 2e-4, "batch_size": 64, "seed": 0}


def test_a_new_run_takes_the_defaults_and_the_command_line_over_them():
    settings, notes = resolve_settings(DEFAULTS, {"lr": 1e-3})
    assert settings == {**DEFAULTS, "lr": 1e-3} and notes == []


def test_a_resumed_run_takes_its_saved_settings_even_where_defaults_changed():
    saved = {"data": "/faces", "lr": 5e-4, "batch_size": 16, "seed": 3, "n_images": 100}
    settings, _ = resolve_settings({**DEFAULTS, "lr": 1.0}, {}, saved)
    assert settings == {"data": "/faces", "lr": 5e-4, "batch_size": 16, "seed": 3}


def test_a_resumed_run_refuses_a_changed_setting_naming_the_flag_and_both_values():
    saved = {**DEFAULTS, "batch_size": 16}
    with pytest.raises(ConfigError, match=r"--batch-size 32 \(the run was started with 16\)"):
        resolve_settings(DEFAULTS, {"batch_size": 32, "seed": 0}, saved)


def test_a_resumed_run_may_read_its_data_from_a_new_place_with_a_note():
    saved = {**DEFAULTS, "data": "/old"}
    settings, notes = resolve_settings(DEFAULTS, {"data": "/new"}, saved, may_change=("data",))
    assert settings["data"] == "/new" and notes == ["--data /new (the run started with /old)"]


def test_a_resumed_run_whose_data_moved_says_to_give_its_new_place(tmp_path):
    saved = {**DEFAULTS, "data": str(tmp_path / "moved_away")}
    with pytest.raises(ConfigError, match=r"the run's --data .*moved_away no longer exists; if it moved, "
                                          r"give its new place with --data"):
        resolve_settings(DEFAULTS, {}, saved, may_change=("data",))


def test_config_json_is_written_atomically_and_read_back(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.prepare()
    run.write_config({"lr": 2e-4, "data": None})
    assert run.read_config() == {"lr": 2e-4, "data": None}
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json"]     # no temporary file left


def test_an_unreadable_config_json_is_a_config_error_naming_the_file(tmp_path):
    (tmp_path / "config.json").write_text('{"lr": 2e-4,')           # cut short
    with pytest.raises(ConfigError, match=r"config\.json cannot be read as JSON"):
        RunFolder(tmp_path).read_config()


def test_a_folder_holding_a_checkpoint_refuses_a_new_run(tmp_path):
    (tmp_path / "last.npz").write_bytes(b"a run")
    with pytest.raises(ConfigError, match=r"last\.npz already holds a run; add --resume"):
        RunFolder(tmp_path).check_no_run()


def test_a_folder_where_the_checkpoint_belongs_is_named_as_a_folder(tmp_path):
    (tmp_path / "last.npz").mkdir()
    with pytest.raises(ConfigError, match=r"last\.npz is a folder where the run's checkpoint belongs"):
        RunFolder(tmp_path).check_no_run()


def test_an_output_folder_under_a_file_names_its_flag_and_the_way_out(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ConfigError, match=r"cannot write into --out .*a_file/pictures: Not a directory; "
                                          r"choose another"):
        prepare_output_folder(tmp_path / "a_file" / "pictures", "--out", hint="choose another")
    assert not (tmp_path / "a_file").is_dir()


def test_prepare_refuses_a_file_as_the_output_folder(tmp_path):
    (tmp_path / "out").write_text("")
    with pytest.raises(ConfigError, match=r"out is a file"):
        RunFolder(tmp_path / "out").prepare()


def test_prepare_removes_temporary_files_of_dead_writers_and_nothing_else(tmp_path):
    """A temporary file is ``.<name>.<host>.<pid>.<random>.tmp``: removed when that process of this
    host is gone, kept while it lives; one named the old way (no writer) goes after an hour; other
    files stay."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    names = {f".last.npz.{HOST}.{dead}.ab12cd34.tmp": False,              # its writer has exited
             f".samples_latest.png.{HOST}.{os.getpid()}.q9w8e7r6.tmp": True,   # a live writer's
             ".metrics.csv.x1y2z3w4.tmp.csv": False,                       # old naming, two hours old
             ".hidden_notes.txt": True, "last.npz": True}
    for name in names:
        (tmp_path / name).write_text("x")
    two_hours_ago = time.time() - 7200
    os.utime(tmp_path / ".metrics.csv.x1y2z3w4.tmp.csv", (two_hours_ago, two_hours_ago))
    removed = RunFolder(tmp_path).prepare()
    assert sorted(p.name for p in removed) == sorted(n for n, kept in names.items() if not kept)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(n for n, kept in names.items() if kept)


def test_a_fresh_temporary_file_named_the_old_way_may_still_be_written_and_stays(tmp_path):
    (tmp_path / ".last.npz.x1y2z3w4.tmp.npz").write_text("x")
    assert RunFolder(tmp_path).prepare() == []


def test_a_rank_that_is_not_the_writer_creates_and_writes_nothing(tmp_path):
    """Data-parallel runs: every rank reads, only rank 0 (writer=True) writes."""
    run = RunFolder(tmp_path / "run", writer=False)
    run.prepare()
    run.write_config({"lr": 1.0})
    assert not run.path.exists()


def test_a_folder_path_builds_file_paths(tmp_path):
    run = RunFolder(tmp_path)
    assert run / "samples.png" == tmp_path / "samples.png" and run.checkpoint_path == tmp_path / "last.npz"
    assert str(run) == str(tmp_path)
