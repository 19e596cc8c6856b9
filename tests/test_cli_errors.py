"""A user's mistakes with the three commands: one `error:` line, a non-zero exit, no traceback, nothing lost.

Each row of BAD_COMMAND_LINES is a command line a new user might type (issue 12 tried 172 such
inputs): the script, its arguments, the exit code (2: a bad setting, as argparse exits; 1: a
missing, unreadable or unwritable file, or too little memory) and a phrase the one error line
must hold.  They run in this process through each script's own ``main`` and
:func:`tinygan.training.cli.run_command`, as ``__main__`` does -- a subprocess per row would
cost a second or more each.  The trained runs that some rows point at are checked byte for byte
after every row: a mistake must not change a file the user made.

Placeholders in the arguments: {tmp} a module folder of prepared bad inputs (a file where a
folder belongs, empty and corrupt files, a folder of unreadable images, ...), {new} a fresh
folder for this row, {run} a finished celeba_dcgan.py run, {aging} a finished face_aging.py run,
{photo} a readable face photo.
"""
import errno
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import tinygan.backend
from tinygan.checkpoint import load_checkpoint, save_checkpoint
from tinygan.data import load_faces
from tinygan.errors import DataWarning
from tinygan.images import save_png_atomic, to_uint8
from tinygan.training import cli

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {name: REPO / "examples" / f"{name}.py" for name in ("celeba_dcgan", "sample", "face_aging")}
TINY = ["--backend", "numpy", "--limit", "64", "--batch-size", "16", "--base-filters", "4", "--no-progress"]
AGING_TINY = ["--backend", "numpy", "--image-size", "32", "--base-filters", "4", "--clf-filters", "4",
              "--latent-dim", "8", "--holdout", "8", "--batch-size", "8"]
AGE = ["--steps", "1", "--restarts", "1"]                # the shortest projection


def load_script(path):
    spec = importlib.util.spec_from_file_location(f"{path.stem}_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scripts():
    return {name: load_script(path) for name, path in SCRIPTS.items()}


def run_command(script, argv):
    """The exit code of ``script argv`` as ``__main__`` runs it (argparse's own exit included)."""
    try:
        return cli.run_command(script.main, [str(a) for a in argv])
    except SystemExit as e:
        return e.code


@pytest.fixture(scope="module")
def places(tmp_path_factory, scripts):
    """The prepared inputs, and one finished run of each training script (tiny, a second each)."""
    tmp = tmp_path_factory.mktemp("inputs")
    mp = pytest.MonkeyPatch()
    mp.setenv("TINYGAN_CACHE", str(tmp / "cache"))
    (tmp / "a_file").write_text("not a folder")
    (tmp / "empty_folder").mkdir()
    (tmp / "text_folder").mkdir()
    (tmp / "text_folder" / "notes.txt").write_text("no images here")
    (tmp / "corrupt.zip").write_bytes(b"PK\x03\x04" + b"garbage" * 20)
    (tmp / "unreadable").mkdir()
    for i in range(6):
        (tmp / "unreadable" / f"{i}.jpg").write_bytes(np.random.default_rng(i).bytes(300))
    (tmp / "empty.npz").write_bytes(b"")
    (tmp / "random.npz").write_bytes(np.random.default_rng(0).bytes(3000))
    (tmp / "not_image.jpg").write_text("hello")

    # A CelebA-shaped folder: 40 procedural faces and an attribute file (Young: no grey hair).
    ds = load_faces(None, 32, n=40, seed=1, progress=False)
    grey = ds.labels("Gray_Hair")
    grey[:10] = True                                    # enough "old" faces for batches of 8
    celeba = tmp / "celeba"
    names = [f"{i + 1:06d}.png" for i in range(len(ds))]
    for name, picture in zip(names, to_uint8(ds.batch(np.arange(len(ds))))):
        save_png_atomic(picture, celeba / "img_align_celeba" / name)
    rows = [f"{name} {-1 if g else 1} {1 if g else -1}" for name, g in zip(names, grey)]
    (celeba / "list_attr_celeba.txt").write_text("\n".join([str(len(names)), "Young Gray_Hair", *rows, ""]))
    photo = celeba / "img_align_celeba" / names[0]
    (tmp / "truncated.png").write_bytes(photo.read_bytes()[:200])
    shutil.copytree(celeba / "img_align_celeba", tmp / "no_attributes")
    garbage = tmp / "garbage_attributes"
    shutil.copytree(celeba, garbage)
    (garbage / "list_attr_celeba.txt").write_bytes(b"\x00\x01\x02 not a table\n")

    run = tmp / "run"
    assert run_command(scripts["celeba_dcgan"], [*TINY, "--max-steps", "1", "--out", run]) == 0
    (tmp / "truncated.npz").write_bytes((run / "last.npz").read_bytes()[:5000])
    state = load_checkpoint(run / "last.npz")
    state["trainer"]["G"]["g_deconv1.W"][:] = np.nan
    save_checkpoint(tmp / "nan_weights.npz", state)
    aging = tmp / "aging"
    train = [*AGING_TINY, "--data", celeba, "--run", aging, "--epochs", "0.2", "--clf-epochs", "0.2", *AGE,
             "--eval-n", "2"]
    assert run_command(scripts["face_aging"], train) == 0
    # Broken copies of the aging run: each holds one bad file.
    for name, bad_file, content in [("aging_bad_generator", "generator.npz", b"\x00" * 100),
                                    ("aging_bad_config", "config.json", b"{{ not json"),
                                    ("aging_config_lacks_keys", "config.json", b'{"gan_steps": 3}')]:
        shutil.copytree(aging, tmp / name)
        (tmp / name / bad_file).write_bytes(content)
    mp.undo()
    return {"tmp": tmp, "run": run, "aging": aging, "photo": photo}


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


OUT = ["--out", "{new}"]
BAD_COMMAND_LINES = [     # script, arguments, exit code, phrase of the one error line
    # -- celeba_dcgan.py: every number against its meaning
    ("celeba_dcgan", ["--lr", "-1"], 2, "argument --lr: expected a number > 0, got '-1'"),
    ("celeba_dcgan", ["--lr", "nan"], 2, "argument --lr: expected a number > 0"),
    ("celeba_dcgan", ["--lr", "inf"], 2, "argument --lr: expected a number > 0"),
    ("celeba_dcgan", ["--lr", "fast"], 2, "argument --lr: expected a number > 0, got 'fast'"),
    ("celeba_dcgan", ["--beta1", "1.0"], 2, "argument --beta1: expected a number in [0, 1)"),
    ("celeba_dcgan", ["--label-smoothing", "2"], 2, "--label-smoothing: expected a number in (0, 1]"),
    ("celeba_dcgan", ["--epochs", "-1"], 2, "argument --epochs: expected a whole number >= 1"),
    ("celeba_dcgan", ["--epochs", "1.5"], 2, "argument --epochs: expected a whole number >= 1"),
    ("celeba_dcgan", ["--sample-every", "-1"], 2, "argument --sample-every: expected a whole number >= 0"),
    ("celeba_dcgan", ["--save-every", "x"], 2, "--save-every: expected a whole number >= 0, got 'x'"),
    ("celeba_dcgan", ["--log-every", "0"], 2, "argument --log-every"),
    ("celeba_dcgan", ["--max-steps", "0"], 2, "argument --max-steps"),
    ("celeba_dcgan", ["--base-filters", "0"], 2, "argument --base-filters"),
    ("celeba_dcgan", ["--latent-dim", "0"], 2, "argument --latent-dim"),
    ("celeba_dcgan", ["--limit", "0"], 2, "argument --limit"),
    ("celeba_dcgan", ["--holdout", "-1"], 2, "argument --holdout"),
    ("celeba_dcgan", ["--batch-size", "0"], 2, "argument --batch-size"),
    ("celeba_dcgan", ["--ema-decay", "1.5"], 2, "argument --ema-decay: expected a number in [0, 1)"),
    ("celeba_dcgan", ["--ema-start", "-1"], 2, "argument --ema-start"),
    ("celeba_dcgan", ["--seed", "-1"], 2, "argument --seed: expected a whole number >= 0, got '-1'"),
    ("celeba_dcgan", ["--image-size", "32"], 2, "argument --image-size: invalid choice"),
    ("celeba_dcgan", ["--backend", "tpu"], 2, "argument --backend: invalid choice"),
    ("celeba_dcgan", ["--data", ""], 2, "argument --data: expected a path, got ''"),
    ("celeba_dcgan", ["--out", ""], 2, "argument --out: expected a path, got ''"),
    # -- celeba_dcgan.py: settings that belong together, and the data
    ("celeba_dcgan", ["--batch-size", "7", *OUT], 2, "--batch-size must be even"),
    ("celeba_dcgan", ["--ema-decay", "0.9", *OUT], 2, "set the generator average, which needs --ema"),
    ("celeba_dcgan", [*TINY, "--holdout", "64", *OUT], 2, "--holdout 64 holds out all 64 images"),
    ("celeba_dcgan", [*TINY, "--holdout", "60", *OUT], 2, "64 images minus 60 held out leave 4"),
    ("celeba_dcgan", [*TINY, "--batch-size", "200", *OUT], 2, "--batch-size 200 needs 100 real images"),
    ("celeba_dcgan", [*TINY, "--data", "{tmp}/no_such_folder", *OUT], 1, "no_such_folder' does not exist"),
    ("celeba_dcgan", [*TINY, "--data", "{tmp}/empty_folder", *OUT], 1, "no .jpg/.jpeg/.png images"),
    ("celeba_dcgan", [*TINY, "--data", "{tmp}/text_folder", *OUT], 1, "no .jpg/.jpeg/.png images"),
    ("celeba_dcgan", [*TINY, "--data", "{tmp}/a_file", *OUT], 1, "is a file but not a zip archive"),
    ("celeba_dcgan", [*TINY, "--data", "{tmp}/corrupt.zip", *OUT], 1, "not a valid zip archive"),
    ("celeba_dcgan", [*TINY, "--data", "{tmp}/unreadable", *OUT], 1, "none of the 6 image files"),
    ("celeba_dcgan", [*TINY, "--latent-dim", "100000000000", *OUT], 1, "out of memory"),
    ("celeba_dcgan", [*TINY, "--lr-decay", "0.5", *OUT], 2, "--lr-decay sets the inverse-time schedule's"),
    ("celeba_dcgan", [*TINY, "--lr-steps", "10", *OUT], 2, "--lr-steps is the length of a linear or cosine"),
    ("celeba_dcgan", [*TINY, "--epochs", "1", "--lr-schedule", "cosine", "--warmup-steps", "7", *OUT], 2,
     "--warmup-steps 7 is not shorter than the cosine schedule's 7 steps"),      # 1 epoch of 7 steps
    # -- celeba_dcgan.py: the output folder and --resume
    ("celeba_dcgan", [*TINY, "--out", "{tmp}/a_file"], 2, "a_file is a file; expected a folder"),
    ("celeba_dcgan", [*TINY, "--out", "{tmp}/a_file/run"], 2, "cannot write into the output folder"),
    ("celeba_dcgan", [*TINY, "--out", "{run}"], 2, "already holds a run; add --resume to continue it"),
    ("celeba_dcgan", ["--resume", *OUT], 1, "no checkpoint at"),
    ("celeba_dcgan", ["--resume", "--lr", "0.1", "--out", "{run}"], 2,
     "--lr 0.1 (the run was started with 0.0002)"),
    ("celeba_dcgan", ["--backend", "cupy", *OUT], 1, "backend 'cupy' was asked for but CuPy cannot run here"),
    # -- sample.py
    ("sample", ["--run", "{run}", "--grid", "-5"], 2, "--grid: expected a whole number in [0, 1000]"),
    ("sample", ["--run", "{run}", "--grid", "100000000000"], 2, "argument --grid"),
    ("sample", ["--run", "{run}", "--steps", "1000"], 2, "argument --steps"),
    ("sample", ["--run", "{run}", "--seed-a", "-1"], 2, "argument --seed-a"),
    ("sample", ["--run", "{new}"], 1, "no checkpoint at"),
    ("sample", ["--checkpoint", "{run}"], 1, "a directory; pass the .npz inside it"),
    ("sample", ["--checkpoint", "{tmp}/truncated.npz"], 1, "truncated.npz cannot be read (truncated or"),
    ("sample", ["--checkpoint", "{tmp}/random.npz"], 1, "random.npz cannot be read: it is not an .npz"),
    ("sample", ["--checkpoint", "{tmp}/empty.npz"], 1, "empty.npz cannot be read: it is an empty file"),
    ("sample", ["--checkpoint", "{tmp}/nan_weights.npz"], 1, "NaN or infinite values in g_deconv1.W"),
    ("sample", ["--checkpoint", "{aging}/generator.npz"], 1, "is not a tinygan checkpoint"),
    ("sample", ["--run", "{run}", "--ema"], 1, "has no generator average; train with --ema"),
    ("sample", ["--run", "{run}", "--out", "{tmp}/a_file"], 2, "--out {tmp}/a_file is a file"),
    ("sample", ["--run", "{run}", "--out", "{tmp}/a_file/pictures"], 2, "cannot write into --out"),
    # -- face_aging.py: flags
    ("face_aging", ["--batch-size", "6", "--run", "{new}"], 2, "--batch-size must be a multiple of 4"),
    ("face_aging", ["--restarts", "0"], 2, "argument --restarts"),
    ("face_aging", ["--steps", "0"], 2, "argument --steps"),
    ("face_aging", ["--seed", "-1"], 2, "argument --seed"),
    ("face_aging", ["--epochs", "nan"], 2, "argument --epochs"),
    ("face_aging", ["--strength", "inf"], 2, "argument --strength: expected a finite number"),
    ("face_aging", ["--run", ""], 2, "argument --run: expected a path"),
    # -- face_aging.py: inference never trains and never writes a model
    ("face_aging", ["--age", "{photo}", "--run", "{new}"], 2, "no trained model in"),
    ("face_aging", ["--evaluate", "--run", "{new}"], 2, "no trained model in"),
    ("face_aging", ["--age", "{tmp}/missing.jpg", "--run", "{aging}", *AGE], 1, "no such photo"),
    ("face_aging", ["--age", "{tmp}/not_image.jpg", "--run", "{aging}", *AGE], 1, "not_image.jpg cannot be"),
    ("face_aging", ["--age", "{tmp}/truncated.png", "--run", "{aging}", *AGE], 1, "truncated.png"),
    ("face_aging", ["--age", "{tmp}", "--run", "{aging}", *AGE], 1, "is a folder; expected an image file"),
    ("face_aging", ["--age", "{photo}", "--run", "{aging}", "--out", "{tmp}/a_file", *AGE], 2,
     "--out {tmp}/a_file is a file"),
    ("face_aging", ["--age", "{photo}", "--run", "{tmp}/aging_bad_generator", *AGE], 1,
     "generator.npz cannot be read"),
    ("face_aging", ["--age", "{photo}", "--run", "{tmp}/aging_bad_config", *AGE], 2, "cannot be read as"),
    ("face_aging", ["--age", "{photo}", "--run", "{tmp}/aging_config_lacks_keys", *AGE], 2,
     "holds settings no run of this script wrote (image_size is missing"),
    ("face_aging", ["--evaluate", "--run", "{aging}", "--holdout", "20"], 2,
     "trained models keep the settings they were trained with; these differ: --holdout 20"),
    ("face_aging", ["--age", "{photo}", "--run", "{aging}", "--image-size", "64"], 2, "--image-size 64"),
    # -- face_aging.py: training data
    ("face_aging", [*AGING_TINY, "--data", "{tmp}/no_attributes", "--run", "{new}"], 1,
     "no CelebA attribute file with a Young column"),
    ("face_aging", [*AGING_TINY, "--data", "{tmp}/celeba", "--run", "{new}", "--batch-size", "400"], 2,
     "--batch-size 400 needs 100 young and 100 old training faces per step, but there are"),
    ("face_aging", [*AGING_TINY, "--data", "{tmp}/celeba", "--run", "{new}", "--holdout", "40"], 2,
     "--holdout 40 leaves no training images"),
    ("face_aging", [*AGING_TINY, "--retrain", "--data", "{tmp}/no_attributes", "--run", "{aging}"], 1,
     "no CelebA attribute file"),
]


@pytest.mark.parametrize("script, args, code, phrase", BAD_COMMAND_LINES,
                         ids=[f"{s} {' '.join(a)}" for s, a, _, _ in BAD_COMMAND_LINES])
def test_bad_command_line_is_one_error_line_a_non_zero_exit_and_changes_no_run(script, args, code, phrase,
                                                                              scripts, places, tmp_path,
                                                                              monkeypatch, capsys):
    monkeypatch.setenv("TINYGAN_CACHE", str(places["tmp"] / "cache"))
    # CuPy is made unavailable, so that the --backend cupy row means the same on a GPU machine.
    monkeypatch.setattr(tinygan.backend, "_cupy_status", lambda: (None, "CuPy does not import (test)"))
    fill = {"{tmp}": places["tmp"], "{new}": tmp_path / "new", "{run}": places["run"],
            "{aging}": places["aging"], "{photo}": places["photo"]}
    argv, expected = [], phrase
    for a in args:
        for key, value in fill.items():
            a, expected = a.replace(key, str(value)), expected.replace(key, str(value))
        argv.append(a)
    before = {name: snapshot(places[name]) for name in ("run", "aging")}
    got = run_command(scripts[script], argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert got == code, err
    assert err.count("error: ") == 1 and expected in err, err
    assert {name: snapshot(places[name]) for name in ("run", "aging")} == before, "a run's files changed"


def test_data_warning_is_one_warning_line_then_the_run_goes_on(scripts, places, tmp_path, monkeypatch,
                                                              capsys):
    """An unusable attribute file: `warning: <message>` on stderr, one line, without Python's source line,
    and the images load without attributes (here the run then stops at a too large --batch-size)."""
    monkeypatch.setenv("TINYGAN_CACHE", str(places["tmp"] / "cache"))
    argv = [*TINY, "--data", places["tmp"] / "garbage_attributes", "--batch-size", "200", "--out", tmp_path]
    assert run_command(scripts["celeba_dcgan"], argv) == 2
    err = capsys.readouterr().err.splitlines()
    warnings = [line for line in err if "warning" in line.lower()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: attribute file "), err
    assert warnings[0].endswith("loading the images without attributes")
    assert err[-1].startswith("error: --batch-size 200")


def test_run_command_prints_data_warnings_as_lines_and_leaves_the_filters_as_they_were(capsys):
    import warnings

    def main(argv):
        warnings.warn("3 images were upscaled", DataWarning, stacklevel=1)
        warnings.warn("3 images were upscaled", DataWarning, stacklevel=1)     # every time, not once
        return 0

    filters = list(warnings.filters)
    assert cli.run_command(main) == 0
    assert capsys.readouterr().err == "warning: 3 images were upscaled\n" * 2
    assert warnings.filters == filters


def test_backend_auto_says_why_it_falls_back_to_numpy(scripts, places, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINYGAN_CACHE", str(places["tmp"] / "cache"))
    monkeypatch.setattr(tinygan.backend, "_cupy_status", lambda: (None, "CuPy sees no GPU (test)"))
    argv = [*TINY, "--backend", "auto", "--holdout", "64", "--out", tmp_path]
    assert run_command(scripts["celeba_dcgan"], argv) == 2             # stops after choosing the backend
    assert "note: --backend auto uses NumPy (CPU): CuPy sees no GPU (test)" in capsys.readouterr().out


def test_full_disk_while_saving_keeps_the_last_checkpoint_and_says_which_file(scripts, places, tmp_path,
                                                                             monkeypatch, capsys):
    """--save-every 1 saves after step 1; the disk fills before the save of step 2: one error line
    naming last.npz, exit 1, the step-1 checkpoint intact and no temporary file left behind."""
    monkeypatch.setenv("TINYGAN_CACHE", str(places["tmp"] / "cache"))
    savez, calls = np.savez, []

    def savez_until_the_disk_is_full(file, **arrays):
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        savez(file, **arrays)

    monkeypatch.setattr(np, "savez", savez_until_the_disk_is_full)
    out = tmp_path / "run"
    argv = [*TINY, "--save-every", "1", "--max-steps", "3", "--out", out]
    assert run_command(scripts["celeba_dcgan"], argv) == 1
    err = capsys.readouterr().err
    assert f"error: No space left on device while writing {out / 'last.npz'}" in err, err
    assert load_checkpoint(out / "last.npz")["step"] == 1
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]


def test_face_aging_names_the_strips_of_photos_with_the_same_stem_apart(scripts, places, tmp_path, capsys):
    """me.jpg and me.png used to share aged_me.png, the second overwriting the first."""
    for suffix in ("jpg", "png"):
        shutil.copy(places["photo"], tmp_path / f"me.{suffix}")   # a PNG named .jpg: Pillow reads it anyway
    argv = ["--backend", "numpy", "--run", places["aging"], "--age", tmp_path / "me.jpg", tmp_path / "me.png",
            *AGE, "--out", tmp_path / "aged"]
    assert run_command(scripts["face_aging"], argv) == 0, capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "aged")) == ["aged_me_jpg.png", "aged_me_png.png"]
