"""The example scripts, end to end, as a user runs them: `python examples/celeba_dcgan.py ...`.

Each run is a subprocess on the CPU (--backend numpy) with a tiny DCGAN (--base-filters 4),
64 images (--limit 64: 58 for training, 6 held out) and batches of 16 (8 real + 8 generated for D),
so an epoch is 7 steps and a run takes a few seconds.  Runs share a dataset cache
($TINYGAN_CACHE in a temporary folder) and use single-threaded BLAS (tiny matrices gain
nothing from threads, and on a busy 2-core machine threads cost a lot).  Checkpoint
comparisons are bit for bit: NumPy on one machine is deterministic, so a resumed run must
repeat the uninterrupted one exactly.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_checkpoint import assert_tree_equal

from tinygan.checkpoint import load_checkpoint, save_checkpoint
from tinygan.plots import plot_losses
from tinygan.training import MetricsHistory

try:
    import pty
except ImportError:          # Windows: the signal tests are skipped there
    pty = None

REPO = Path(__file__).resolve().parents[1]
TRAIN, SAMPLE = REPO / "examples" / "celeba_dcgan.py", REPO / "examples" / "sample.py"
AGING = REPO / "examples" / "face_aging.py"
CELEBA = REPO.parent / "shared" / "data" / "celeba-10k"
TINY = ["--backend", "numpy", "--limit", "64", "--batch-size", "16", "--base-filters", "4", "--no-progress"]
STEPS_PER_EPOCH = 7          # (64 - 6 held out) // 8 real images per step
GRID_PX = 10 * (64 + 2) + 2  # 10 tiles of 64 px with 2 px padding between and around


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = dict(os.environ, PYTHONUNBUFFERED="1", TINYGAN_CACHE=str(tmp_path_factory.mktemp("cache")))
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return e


def run(script, *args, env, expect=0):
    r = subprocess.run([sys.executable, str(script), *map(str, args)], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    if expect is not None and r.returncode != expect:
        pytest.fail(f"{script.name} {' '.join(map(str, args))} exited {r.returncode}, expected {expect}\n"
                    f"--- stdout ---\n{r.stdout[-4000:]}\n--- stderr ---\n{r.stderr[-4000:]}")
    return r


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, env):
    """A run stopped by --max-steps 2: mid-epoch (2 of 7 steps), sampling after every step."""
    out = tmp_path_factory.mktemp("short") / "run"
    run(TRAIN, *TINY, "--max-steps", "2", "--sample-every", "1", "--out", out, env=env)
    return out


@pytest.fixture(scope="module")
def full_epoch_run(tmp_path_factory, env):
    """One uninterrupted epoch (7 steps): the reference for the resumed runs."""
    out = tmp_path_factory.mktemp("epoch") / "run"
    run(TRAIN, *TINY, "--epochs", "1", "--out", out, env=env)
    return out


def copy_run(src, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst


def steps_in_csv(path):
    lines = Path(path).read_text().splitlines()
    assert lines[0] == "step,epoch,d_loss,g_loss,d_acc_real,d_acc_fake,d_lr,g_lr,images_per_sec"
    return [int(line.split(",")[0]) for line in lines[1:]]


def assert_same_training_state(a_path, b_path):
    """Two checkpoints hold the same run: weights, moments, RNGs, iterator, epoch, step and the
    per-step losses (images/s, a wall-clock measurement, is left out)."""
    a, b = load_checkpoint(a_path), load_checkpoint(b_path)
    for key in ("trainer", "data", "ema", "epoch", "step", "extra"):
        assert_tree_equal(a[key], b[key], key)
    assert np.array_equal(a["history"]["steps"][:, :-1], b["history"]["steps"][:, :-1])


def test_short_run_writes_samples_losses_metrics_config_and_checkpoint(short_run):
    """`--limit 64 --max-steps 2` on the embedded faces stops after 2 steps with 10x10 sample
    grids (--sample-every 1: one per step), losses.png, metrics.csv (one row per step),
    config.json and a checkpoint at step 2."""
    for name in ("samples_latest.png", "samples_step_0000001.png", "samples_step_0000002.png"):
        assert Image.open(short_run / name).size == (GRID_PX, GRID_PX)
    assert Image.open(short_run / "losses.png").format == "PNG"
    assert steps_in_csv(short_run / "metrics.csv") == [1, 2]
    assert json.loads((short_run / "config.json").read_text())["base_filters"] == 4
    ckpt = load_checkpoint(short_run / "last.npz")
    assert (ckpt["step"], ckpt["epoch"], ckpt["data"]["position"]) == (2, 0, 2)
    assert ckpt["trainer"]["g_opt"]["iterations"] == 2 and ckpt["extra"]["fixed_noise"].shape == (100, 100)


def test_full_epoch_writes_epoch_grid_heldout_accuracy_and_checkpoint(full_epoch_run):
    """At the end of an epoch the run writes samples_epoch_001.png, one eval.csv row with D's
    accuracy on held-out real and on generated images (fractions in [0, 1]), and checkpoints
    with epoch = 1."""
    assert Image.open(full_epoch_run / "samples_epoch_001.png").size == (GRID_PX, GRID_PX)
    rows = (full_epoch_run / "eval.csv").read_text().splitlines()
    assert rows[0] == "step,epoch,holdout_real_acc,generated_acc" and len(rows) == 2
    step, epoch, real_acc, fake_acc = rows[1].split(",")
    assert (int(step), int(epoch)) == (STEPS_PER_EPOCH, 1)
    assert 0 <= float(real_acc) <= 1 and 0 <= float(fake_acc) <= 1
    ckpt = load_checkpoint(full_epoch_run / "last.npz")
    assert (ckpt["epoch"], ckpt["step"]) == (1, STEPS_PER_EPOCH)


def test_resume_continues_from_the_saved_step(short_run, tmp_path, env):
    """`--resume` of the 2-step run with --max-steps 3 does exactly one more step, step 3, and
    the metrics continue (rows 1, 2, 3)."""
    out = copy_run(short_run, tmp_path)
    r = run(TRAIN, "--backend", "numpy", "--no-progress", "--resume", "--max-steps", "3", "--out", out,
            env=env)
    assert "step 2, batch 2 of 7" in r.stdout
    assert steps_in_csv(out / "metrics.csv") == [1, 2, 3]
    assert load_checkpoint(out / "last.npz")["step"] == 3


def test_stopped_and_resumed_run_equals_uninterrupted_run_bit_for_bit(short_run, full_epoch_run, tmp_path,
                                                                     env):
    """2 steps, stop, --resume to the end of the epoch == 7 uninterrupted steps: same weights,
    optimizer moments, RNG and iterator states, and the same per-step losses."""
    out = copy_run(short_run, tmp_path)
    run(TRAIN, "--backend", "numpy", "--no-progress", "--resume", "--epochs", "1", "--out", out, env=env)
    assert_same_training_state(full_epoch_run / "last.npz", out / "last.npz")


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT to a child process")
def test_ctrl_c_saves_mid_epoch_exits_130_and_resumes_exactly(full_epoch_run, tmp_path, env):
    """SIGINT during training: the run finishes its step, saves, prints where, exits 130; the
    mid-epoch checkpoint resumed to the end of the epoch equals the uninterrupted run."""
    out = tmp_path / "run"
    cmd = [sys.executable, str(TRAIN), *TINY, "--epochs", "1", "--log-every", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:                  # wait until training has started
            if line.startswith("step 1 "):
                proc.send_signal(signal.SIGINT)
                break
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted at step" in stdout and "--resume" in stdout
    step = load_checkpoint(out / "last.npz")["step"]
    assert 1 <= step < STEPS_PER_EPOCH            # saved mid-epoch
    run(TRAIN, "--backend", "numpy", "--no-progress", "--resume", "--epochs", "1", "--out", out, env=env)
    assert_same_training_state(full_epoch_run / "last.npz", out / "last.npz")


def start_run(out, *args, env, terminal=False):
    """The training script in a subprocess, its output on pipes or (``terminal``) on a pseudo-terminal."""
    cmd = [sys.executable, str(TRAIN), *TINY, "--log-every", "1", "--out", str(out), *map(str, args)]
    if not terminal:
        pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return subprocess.Popen(cmd, env=env, cwd=REPO, **pipes), None
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=child_fd,
                            stderr=child_fd)
    os.close(child_fd)
    return proc, main_fd


def wait_for_line(proc, start, main_fd=None):
    """Read the run's output until a line starts with ``start`` (the step it names is done)."""
    if main_fd is None:
        for line in proc.stdout:
            if line.startswith(start):
                return
    else:
        seen = b""
        while f"\n{start}".encode() not in seen.replace(b"\r", b""):
            chunk = os.read(main_fd, 4096)
            if not chunk:
                break
            seen += chunk
        else:
            return
    pytest.fail(f"the run ended before printing {start!r}")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pseudo-terminals")
@pytest.mark.parametrize("signum, terminal", [(signal.SIGTERM, False), (signal.SIGHUP, True)],
                         ids=["SIGTERM", "SIGHUP-after-the-terminal-closed"])
def test_sigterm_and_sighup_finish_the_step_save_and_exit_like_ctrl_c(signum, terminal, tmp_path, env):
    """SIGTERM (kill, timeout, a scheduler) and SIGHUP (a closed terminal: writes to it fail from
    then on) are handled as Ctrl-C: the step finishes, last.npz is saved mid-epoch, and the exit
    code is 128 + the signal's number (143, 129)."""
    out = tmp_path / "run"
    proc, main_fd = start_run(out, "--epochs", "1", env=env, terminal=terminal)
    try:
        wait_for_line(proc, "step 1 ", main_fd)
        if terminal:
            os.close(main_fd)                     # the terminal goes away first, as when SSH drops
        proc.send_signal(signum)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum
    if not terminal:
        assert "interrupted at step" in stdout
    ckpt = load_checkpoint(out / "last.npz")
    assert ckpt["epoch"] == 0 and 1 <= ckpt["step"] < STEPS_PER_EPOCH


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGKILL to a child process")
def test_save_every_checkpoint_survives_kill_9_and_resumes_exactly(full_epoch_run, tmp_path, env):
    """--save-every 2 checkpoints every 2 steps mid-epoch, so SIGKILL (which no handler sees) after
    step 5 costs at most 2 steps: last.npz holds step 4 (6 if the kill lands a step late), and
    resuming it to the end of the epoch equals the uninterrupted run bit for bit."""
    out = tmp_path / "run"
    proc, _ = start_run(out, "--epochs", "2", "--save-every", "2", env=env)
    try:
        wait_for_line(proc, "step 5 ")
        proc.kill()
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert load_checkpoint(out / "last.npz")["step"] in (4, 6)
    run(TRAIN, "--backend", "numpy", "--no-progress", "--resume", "--epochs", "1", "--out", out, env=env)
    assert_same_training_state(full_epoch_run / "last.npz", out / "last.npz")


def test_non_finite_loss_stops_with_message_and_keeps_last_checkpoint(short_run, tmp_path, env):
    """A NaN weight in D (planted in the checkpoint) makes step 3's losses NaN: the run exits with
    code 3, says which loss went non-finite at which step, and leaves last.npz byte for byte."""
    out = copy_run(short_run, tmp_path)
    state = load_checkpoint(out / "last.npz")
    state["trainer"]["D"]["d_conv5.W"][...] = np.nan
    save_checkpoint(out / "last.npz", state)
    before = (out / "last.npz").read_bytes()
    r = run(TRAIN, "--backend", "numpy", "--no-progress", "--resume", "--max-steps", "5", "--out", out,
            env=env, expect=3)
    assert "non-finite d_loss" in r.stderr and "at step 3" in r.stderr
    assert "last good checkpoint" in r.stderr
    assert (out / "last.npz").read_bytes() == before


def test_resume_with_a_different_setting_is_refused_naming_it(short_run, env):
    """A resumed run keeps its settings; --batch-size 32 against a batch-16 run is an error that
    names the flag and both values (and nothing is trained)."""
    r = run(TRAIN, "--resume", "--batch-size", "32", "--out", short_run, env=env, expect=None)
    assert r.returncode != 0
    assert "--batch-size 32 (the run was started with 16)" in r.stderr


def test_resume_without_checkpoint_names_the_missing_file(tmp_path, env):
    """--resume in a folder without last.npz fails with a message naming that path."""
    r = run(TRAIN, "--resume", "--out", tmp_path / "empty", env=env, expect=1)
    assert "no checkpoint at" in r.stderr and "last.npz" in r.stderr


def test_new_run_refuses_to_overwrite_an_existing_checkpoint(short_run, env):
    """Starting a fresh run in a folder that holds last.npz is refused (it would be overwritten)."""
    r = run(TRAIN, *TINY, "--max-steps", "1", "--out", short_run, env=env, expect=None)
    assert r.returncode != 0 and "already holds a run" in r.stderr


@pytest.mark.skipif(not CELEBA.is_dir(), reason=f"shared CelebA sample not found at {CELEBA}")
def test_short_run_on_the_shared_celeba_sample(tmp_path, env):
    """The same short run on real CelebA images (the shared 10k sample, first 64 files)."""
    out = tmp_path / "run"
    r = run(TRAIN, *TINY, "--data", CELEBA, "--max-steps", "2", "--out", out, env=env)
    assert "celeba" in r.stdout.lower()
    assert Image.open(out / "samples_latest.png").size == (GRID_PX, GRID_PX)
    assert steps_in_csv(out / "metrics.csv") == [1, 2]
    assert load_checkpoint(out / "last.npz")["config"]["data"] == str(CELEBA.resolve())


def test_sample_script_writes_grid_single_images_and_interpolation(short_run, tmp_path, env):
    """examples/sample.py on the run's checkpoint writes grid.png (10x10), --n single images and
    an interpolation strip of --steps images."""
    out = tmp_path / "samples"
    run(SAMPLE, "--run", short_run, "--out", out, "--n", "3", "--steps", "5", "--backend", "numpy", env=env)
    assert Image.open(out / "grid.png").size == (GRID_PX, GRID_PX)
    assert sorted(p.name for p in out.glob("sample_*.png")) == [f"sample_00{i}.png" for i in range(3)]
    assert Image.open(out / "sample_000.png").size == (64, 64)
    assert Image.open(out / "interpolation.png").size == (5 * 66 + 2, 66 + 2)


def test_sample_script_draws_in_chunks_grid_and_single_images_from_the_same_noise(short_run, tmp_path, env):
    """More images than one chunk (100): single image i is tile i of the grid, on both sides of the
    chunk boundary (the noise is drawn chunk by chunk from one generator, as if all at once)."""
    out = tmp_path / "samples"
    run(SAMPLE, "--run", short_run, "--out", out, "--n", "102", "--grid", "102", "--steps", "0",
        "--backend", "numpy", env=env)
    grid = np.asarray(Image.open(out / "grid.png"))
    for i in (0, 99, 100, 101):
        top, left = 2 + (i // 10) * 66, 2 + (i % 10) * 66
        single = np.asarray(Image.open(out / f"sample_{i:03d}.png"))
        assert np.array_equal(grid[top:top + 64, left:left + 64], single)


def test_loss_plot_is_written_even_with_a_non_finite_value(tmp_path):
    """plot_losses draws a PNG from a history that ends in a NaN loss (a diverged run's curves are
    still plotted) and leaves no temporary file."""
    history = MetricsHistory()
    rows = [dict(step=s, epoch=0, d_loss=0.7 - 0.01 * s, g_loss=0.8, d_acc_real=0.5, d_acc_fake=0.6)
            for s in range(1, 30)]
    rows.append(dict(step=30, epoch=0, d_loss=float("nan"), g_loss=0.8, d_acc_real=0.5, d_acc_fake=0.6))
    history.add_steps(rows, images_per_sec=100.0)
    history.add_eval(30, 0, 0.9, 0.4)
    plot_losses(history, tmp_path / "losses.png")
    assert Image.open(tmp_path / "losses.png").format == "PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["losses.png"]


def test_ema_run_saves_the_average_and_sample_script_uses_it(tmp_path, env):
    """With --ema the checkpoint holds the generator average (one update per step, differing from
    G once averaging starts) and `sample.py --ema` draws from it."""
    out = tmp_path / "run"
    run(TRAIN, *TINY, "--ema", "--ema-start", "0", "--max-steps", "2", "--out", out, env=env)
    ckpt = load_checkpoint(out / "last.npz")
    assert ckpt["ema"]["updates"] == 2
    assert not np.array_equal(ckpt["ema"]["weights"]["g_deconv1.W"], ckpt["trainer"]["G"]["g_deconv1.W"])
    r = run(SAMPLE, "--run", out, "--ema", "--n", "1", "--steps", "2", "--backend", "numpy", env=env)
    assert "generator average" in r.stdout and (out / "samples" / "grid.png").exists()


def test_128_pixel_run_defaults_to_nadam(tmp_path, env):
    """--image-size 128 builds the 128x128 DCGAN and, as that architecture specifies, Nadam."""
    out = tmp_path / "run"
    run(TRAIN, *TINY, "--image-size", "128", "--max-steps", "1", "--out", out, env=env)
    ckpt = load_checkpoint(out / "last.npz")
    assert ckpt["config"]["optimizer"] == "nadam" and ckpt["trainer"]["g_opt"]["optimizer"] == "Nadam"
    assert Image.open(out / "samples_latest.png").size == (10 * 130 + 2,) * 2

# A user's mistakes (one error line, no traceback, nothing lost) are tests/test_cli_errors.py's.


def test_resume_across_the_end_of_a_warm_up_equals_the_straight_scheduled_run(tmp_path, env):
    """A cosine schedule with a 3-step warm-up over the 7-step epoch: stopped at step 2 (inside the
    warm-up) and resumed to the end == 7 straight steps, bit for bit; metrics.csv holds the rates."""
    flags = [*TINY, "--lr-schedule", "cosine", "--warmup-steps", "3", "--epochs", "1"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    run(TRAIN, *flags, "--out", straight, env=env)
    run(TRAIN, *flags, "--max-steps", "2", "--out", split, env=env)
    run(TRAIN, "--backend", "numpy", "--no-progress", "--resume", "--epochs", "1", "--out", split, env=env)
    assert_same_training_state(straight / "last.npz", split / "last.npz")
    rows = (straight / "metrics.csv").read_text().splitlines()
    g_lr = [float(r.split(",")[rows[0].split(",").index("g_lr")]) for r in rows[1:]]
    # lr 2e-4 x (t+1)/3 during the warm-up, then the cosine over 7 steps; 6 significant digits in the CSV
    expected = [2e-4 * min(1, (t + 1) / 3) * 0.5 * (1 + np.cos(np.pi * t / 7)) for t in range(7)]
    np.testing.assert_allclose(g_lr, expected, rtol=1e-5)


def test_tensorboard_flag_writes_event_files_into_the_run_folder(tmp_path, env):
    pytest.importorskip("tensorboardX", reason='the tensorboard extra is not installed')
    out = tmp_path / "tb"
    run(TRAIN, *TINY, "--max-steps", "2", "--log-every", "1", "--tensorboard", "--out", out, env=env)
    events = list(out.glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
