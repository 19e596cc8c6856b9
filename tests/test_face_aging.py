"""Face aging: the conditional DCGAN, its trainer, the age classifier, latent projection, lesson 12.

Everything runs on tiny models (32x32 images, a handful of filters) so the file takes well under
a minute on a 2-core CPU.  The one trained model (``tiny_gan``) is trained once per module on the
embedded procedural faces, with grey hair standing in for "old".
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygan.aging import (
    OLD,
    YOUNG,
    BalancedBatches,
    age_faces,
    age_labels,
    classification_report,
    classifier_step,
    evaluate_aging,
    predict_logits,
    project,
    reage,
    save_strips,
    strips,
)
from tinygan.backend import to_numpy
from tinygan.checkpoint import load_checkpoint
from tinygan.data import FaceDataset, load_faces
from tinygan.gan import ConditionalStackedGANTrainer
from tinygan.gradcheck import check_layer_gradients, numeric_gradient, relative_error
from tinygan.images import save_png_atomic, to_uint8
from tinygan.models import age_classifier
from tinygan.models.conditional import LabelConcat, build_conditional_gan, one_hot
from tinygan.optimizers import Adam
from tinygan.training import cli

ROOT = Path(__file__).resolve().parent.parent
AGING = ROOT / "examples" / "face_aging.py"
LATENT = 16


@pytest.fixture(scope="module")
def faces():
    """600 procedural 32x32 faces (the first 500 for training), 'old' = grey hair (about 13 %)."""
    ds = load_faces(None, 32, n=600, seed=3, progress=False)
    return ds, age_labels(ds, "gray_hair")


@pytest.fixture(scope="module")
def tiny_gan(faces):
    """A conditional GAN (base width 8) after 80 steps on label-balanced batches of 16 real faces."""
    ds, y = faces
    G, D = build_conditional_gan(32, LATENT, base_filters=8, seed=0)
    trainer = ConditionalStackedGANTrainer(G, D, Adam(2e-3, 0.5), Adam(2e-3, 0.5), seed=0)
    batches = BalancedBatches(ds.subset(np.arange(500)), y[:500], 16, seed=0)
    for _ in range(80):
        trainer.train_step(*batches.next_batch())
    return G, D


# -- the concatenation ------------------------------------------------------------------------------

@pytest.mark.parametrize("mode,shape", [("vector", (3, 5)), ("maps", (3, 2, 4, 5))])
def test_label_concat_gradient_check_passes_in_float64(mode, shape):
    layer = LabelConcat(2, mode)
    layer.labels = one_hot(np.array([0, 1, 1]), 2, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal(shape)
    errors = check_layer_gradients(layer, x)
    assert errors["x"] < 1e-6        # float64 central differences resolve ~1e-8 (see gradcheck.py)


def test_label_concat_appends_one_hot_vector_and_constant_label_maps():
    v, m = LabelConcat(2, "vector"), LabelConcat(2, "maps")
    v.labels = m.labels = one_hot(np.array([1, 0]), 2)
    out_v = v.forward(np.zeros((2, 3), np.float32))
    out_m = m.forward(np.zeros((2, 1, 2, 2), np.float32))
    np.testing.assert_array_equal(out_v[:, 3:], [[0, 1], [1, 0]])
    assert out_m.shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(out_m[0, 2], np.ones((2, 2)))   # sample 0 is class 1: map 1 lit
    np.testing.assert_array_equal(out_m[0, 1], np.zeros((2, 2)))


def test_conditional_models_input_gradients_match_central_differences():
    G, D = build_conditional_gan(32, 4, base_filters=2, seed=0)
    G.astype(np.float64)
    D.astype(np.float64)
    rng = np.random.default_rng(1)
    labels = np.array([0, 1])
    for model, x in ((G, rng.standard_normal((2, 4))), (D, rng.standard_normal((2, 3, 32, 32)))):
        r = rng.standard_normal(model.forward(x, labels, training=False).shape)
        model.forward(x, labels, training=False)
        dx = model.backward(r)
        def loss(m=model, x=x, r=r):
            return float((m.forward(x, labels, training=False) * r).sum())
        num = numeric_gradient(loss, x, max_entries=60)
        mask = ~np.isnan(num)
        assert relative_error(dx[mask], num[mask]) < 1e-6   # float64, as for every layer


# -- the conditional generator and its trainer ------------------------------------------------------

def test_conditional_generator_output_depends_on_the_label(tiny_gan):
    G, _ = tiny_gan
    z = np.random.default_rng(5).standard_normal((8, LATENT)).astype(np.float32)
    young = G.forward(z, np.full(8, YOUNG), training=False)
    old = G.forward(z, np.full(8, OLD), training=False)
    again = G.forward(z, np.full(8, YOUNG), training=False)
    np.testing.assert_array_equal(young, again)                 # same z, same label: same image
    # Same z, other label: a visibly different image (mean |difference| of 0.02 is ~2.5 grey
    # levels of 255; a trained tiny model changes the hair colour by far more).
    assert np.abs(young - old).mean() > 0.02


def test_trainer_step_updates_both_networks_and_resumes_exactly(faces):
    ds, y = faces
    x = ds.batch(np.arange(8))

    def make():
        G, D = build_conditional_gan(32, LATENT, base_filters=4, seed=0)
        return ConditionalStackedGANTrainer(G, D, Adam(1e-3, 0.5), Adam(1e-3, 0.5), seed=1)

    a = make()
    before_g, before_d = a.G.state_dict(), a.D.state_dict()
    a.train_step(x, y[:8])
    assert any(not np.array_equal(v, before_g[k]) for k, v in a.G.state_dict().items())
    assert any(not np.array_equal(v, before_d[k]) for k, v in a.D.state_dict().items())
    b = make()
    b.load_state_dict(a.state_dict())
    sa, sb = a.train_step(x, y[:8]).as_floats(), b.train_step(x, y[:8]).as_floats()
    assert sa == sb                                              # same weights, moments and noise state


def test_balanced_batches_hold_equal_counts_of_each_class(faces):
    ds, y = faces
    batches = BalancedBatches(ds, y, 16, seed=0)
    idx, labels = batches.next_indices()
    np.testing.assert_array_equal(np.bincount(labels), [8, 8])
    np.testing.assert_array_equal(y[idx], labels)                # each image carries its own label


def test_age_labels_follow_young_and_optionally_gray_hair():
    attrs = np.array([[1, -1], [-1, -1], [1, 1], [0, 0]], np.int8)     # columns Young, Gray_Hair
    ds = FaceDataset(np.zeros((4, 3, 2, 2), np.uint8), list("abcd"), attrs, ["Young", "Gray_Hair"])
    np.testing.assert_array_equal(age_labels(ds, "not_young"), [0, 1, 0, -1])   # -1: no attribute row
    np.testing.assert_array_equal(age_labels(ds, "not_young_or_gray"), [0, 1, 1, -1])


# -- latent projection ------------------------------------------------------------------------------

def test_latent_projection_lowers_the_reconstruction_error_steadily(tiny_gan, faces):
    G, _ = tiny_gan
    ds, y = faces
    x = ds.batch(np.arange(500, 506))                            # faces the GAN never trained on
    res = project(G, x, y[500:506], steps=150, lr=0.05, seed=0)
    e = res.errors
    assert e[-1] < 0.5 * e[0]
    # Adam with momentum need not lower the error at every single step, but averaged over
    # windows of 15 steps the curve of a well-tuned descent must never go up.  A tolerance of
    # 1e-3 relative to the start covers float32 jitter once the curve has flattened out.
    windows = e[1:].reshape(10, 15).mean(axis=1)
    assert np.all(np.diff(windows) <= 1e-3 * e[0])
    np.testing.assert_allclose(res.final_error.mean(), e[-1], rtol=0.05)   # the winner ends near the curve


def test_projection_leaves_the_generator_unchanged_and_frozen_flag_restored(tiny_gan, faces):
    G, D = tiny_gan
    ds, y = faces
    before = G.state_dict()
    project(G, ds.batch(np.arange(2)), y[:2], steps=3, restarts=2, D=D, feature_weight=1.0)
    assert G.trainable and D.trainable
    for k, v in G.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_restarts_never_do_worse_than_a_single_start(tiny_gan, faces):
    G, _ = tiny_gan
    ds, y = faces
    x = ds.batch(np.arange(500, 504))
    # Without the prior the objective is the error itself; restart 0 of `three` starts (and, as the
    # rows never interact, runs) exactly where `one` does, up to float32 rounding in the matrix
    # products of different batch sizes: hence the 0.1 % slack.
    one = project(G, x, y[500:504], steps=20, restarts=1, prior_weight=0.0, seed=0)
    three = project(G, x, y[500:504], steps=20, restarts=3, prior_weight=0.0, seed=0)
    assert np.all(three.final_error <= one.final_error * 1.001)


def test_age_faces_returns_input_reconstruction_and_aged_strips(tiny_gan, faces, tmp_path):
    G, _ = tiny_gan
    ds, y = faces
    x = ds.batch(np.arange(3))
    res = age_faces(G, x, y[:3], steps=5)
    assert res.input.shape == res.reconstruction.shape == res.aged.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(to_numpy(strips(res))[2], to_numpy(res.aged[0]))
    assert save_strips(res, tmp_path / "s.png").is_file()
    C = age_classifier(32, 4)
    ev = evaluate_aging(res, C, labels=y[:3])
    assert 0 <= ev["share_aged_called_old"] <= 1 and ev["n"] == 3


def test_redrawing_with_the_input_label_gives_back_the_reconstruction(tiny_gan, faces):
    G, _ = tiny_gan
    ds, y = faces
    young = np.flatnonzero(y == YOUNG)[:3]
    res = age_faces(G, ds.batch(young), y[young], steps=5)
    np.testing.assert_array_equal(to_numpy(reage(G, res, YOUNG).aged), to_numpy(res.reconstruction))
    assert np.abs(to_numpy(reage(G, res, [-1.0, 2.0]).aged - res.aged)).mean() > 0   # extrapolated label


# -- the age classifier -----------------------------------------------------------------------------

def test_classifier_learns_the_stand_in_age_above_chance(faces):
    ds, y = faces
    C = age_classifier(32, 8, seed=0)
    opt = Adam(2e-3, 0.9)
    batches = BalancedBatches(ds.subset(np.arange(500)), y[:500], 32, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(60):
        classifier_step(C, opt, *batches.next_batch(), rng=rng)
    rep = classification_report(predict_logits(C, ds.images[500:]), y[500:])
    # Grey hair is a large, plain colour cue; 60 balanced steps learn it well past chance (0.5).
    assert rep["balanced_accuracy"] > 0.75


def test_classification_report_balanced_accuracy_ignores_the_majority_bias():
    rep = classification_report(np.full(10, -1.0), np.array([0] * 8 + [1] * 2))   # "everyone young"
    assert rep["accuracy"] == 0.8 and rep["balanced_accuracy"] == 0.5


# -- saving and loading -----------------------------------------------------------------------------

def test_classifier_and_gan_save_and_load_bit_exactly(tiny_gan, tmp_path):
    G, D = tiny_gan
    C = age_classifier(32, 4, seed=0)
    C.forward(np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32))  # move BN stats
    G2, D2 = build_conditional_gan(32, LATENT, base_filters=8, seed=9)
    C2 = age_classifier(32, 4, seed=9)
    for src, dst, name in ((G, G2, "g"), (D, D2, "d"), (C, C2, "c")):
        src.save_weights(tmp_path / f"{name}.npz")
        dst.load_weights(tmp_path / f"{name}.npz")
        a, b = src.state_dict(), dst.state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
    z = np.random.default_rng(1).standard_normal((2, LATENT)).astype(np.float32)
    np.testing.assert_array_equal(G.forward(z, [0, 1], training=False), G2.forward(z, [0, 1], training=False))


# -- the lesson -------------------------------------------------------------------------------------

def test_lesson_12_quick_mode_runs_and_ages_faces(tmp_path):
    spec = importlib.util.spec_from_file_location("lesson12", ROOT / "lessons" / "12_face_aging.py")
    sys.path.insert(0, str(ROOT / "lessons"))
    try:
        lesson = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(lesson)
        out = lesson.main(["--quick", "--data", "embedded", "--out", str(tmp_path)])
    finally:
        sys.path.remove(str(ROOT / "lessons"))
    # The lesson's claims: projection at least halves the error from a random start, and
    # redrawing the projected faces with the "old" label makes the classifier call more of them old.
    assert out["final_error"] < 0.5 * out["initial_error"]
    assert out["share_aged_called_old"] > out["share_reconstruction_called_old"]
    assert (tmp_path / "face_aging.png").is_file()


# -- the example: only training writes models -----------------------------------------------------

def run_aging(*args, env_cache, expect):
    env = dict(os.environ, TINYGAN_CACHE=str(env_cache), OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(AGING), "--backend", "numpy", *map(str, args)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == expect, f"exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def face_aging_script():
    """examples/face_aging.py as a module, to run its main() in this process."""
    spec = importlib.util.spec_from_file_location("face_aging_script", AGING)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_celeba(tmp_path_factory, faces):
    """A CelebA-shaped folder: 48 procedural faces as PNGs and a list_attr_celeba.txt whose Young
    column says grey hair means old (the labels only need both classes)."""
    ds, y = faces
    root = tmp_path_factory.mktemp("tiny_celeba")
    pictures = to_uint8(ds.batch(np.arange(48)))
    names = [f"{i + 1:06d}.png" for i in range(48)]
    for name, picture in zip(names, pictures):
        save_png_atomic(picture, root / "img_align_celeba" / name)
    rows = [f"{name} {-1 if y[i] == OLD else 1} {1 if y[i] == OLD else -1}" for i, name in enumerate(names)]
    (root / "list_attr_celeba.txt").write_text("\n".join([str(len(names)), "Young Gray_Hair", *rows]) + "\n")
    return root


@pytest.fixture(scope="module")
def trained_run(tiny_celeba, tmp_path_factory):
    """A finished run: a classifier step or two, 12 GAN steps (1.2 epochs of 40 faces, 4 real per
    step) on a linear learning-rate schedule with a 2-step warm-up, a 2-step projection of 4 faces."""
    run = tmp_path_factory.mktemp("aging") / "run"
    cache = tmp_path_factory.mktemp("cache")
    run_aging("--data", tiny_celeba, "--run", run, "--image-size", "32", "--base-filters", "4",
              "--clf-filters", "4", "--latent-dim", "8", "--holdout", "8", "--batch-size", "8",
              "--epochs", "1.2", "--clf-epochs", "1", "--lr-schedule", "linear", "--warmup-steps", "2",
              "--steps", "2", "--restarts", "1", "--eval-n", "4", env_cache=cache, expect=0)
    return run, cache


def test_training_writes_the_models_settings_and_evaluation(trained_run):
    run, _ = trained_run
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "generator.npz", "discriminator.npz", "classifier.npz", "gan_checkpoint.npz",
            "samples.png", "evaluation.json", "eval_strips_young.png"} <= names
    config = json.loads((run / "config.json").read_text())
    assert config["gan_steps"] == 12
    # The schedule spans the run's 12 GAN steps, and the optimizers took all 12 of them.
    assert (config["lr_schedule"], config["lr_steps"], config["warmup_steps"]) == ("linear", 12, 2)
    g_opt = load_checkpoint(run / "gan_checkpoint.npz")["trainer"]["g_opt"]
    assert int(g_opt["iterations"]) == 12 and json.loads(str(g_opt["schedule"]))["kind"] == "linear"


def test_aging_a_photo_loads_the_trained_models_and_changes_none_of_them(trained_run, tiny_celeba, tmp_path):
    run, cache = trained_run
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    photo = tiny_celeba / "img_align_celeba" / "000001.png"
    r = run_aging("--run", run, "--age", photo, "--steps", "2", "--restarts", "1", "--out", tmp_path,
                  env_cache=cache, expect=0)
    assert "loaded the trained models" in r.stdout and (tmp_path / "aged_000001.png").is_file()
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_age_without_a_trained_model_neither_trains_nor_writes(face_aging_script, tmp_path, capsys):
    """Issue 12's data loss: --age on a mistyped --run used to start training there.  Now: one error
    line naming generator.npz and how to train, a non-zero exit, and no folder created."""
    photo = tmp_path / "me.png"
    save_png_atomic(np.zeros((8, 8, 3), np.uint8), photo)
    argv = ["--run", str(tmp_path / "typo"), "--age", str(photo)]
    assert cli.run_command(face_aging_script.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no trained model in {tmp_path / 'typo'} (expected generator.npz); "
                          f"train first with") and err.count("\n") == 1
    assert not (tmp_path / "typo").exists()


SETTINGS = {"config.json": '{"image_size": 32}'}
WEIGHTS = {"generator.npz": "x", "discriminator.npz": "x", "classifier.npz": "x"}


@pytest.mark.parametrize("files, phrase", [(SETTINGS, "expected generator.npz"),
                                           (SETTINGS | WEIGHTS, "did not finish")],
                         ids=["settings-only", "unfinished"])
def test_evaluate_on_an_unfinished_run_refuses_and_leaves_its_files_alone(files, phrase, face_aging_script,
                                                                           tmp_path, capsys):
    """--evaluate where training never finished (no generator.npz; or config.json without gan_steps,
    as an interrupted run leaves it) says so and changes no file: config.json is written by training only."""
    run = tmp_path / "run"
    run.mkdir()
    for name, text in files.items():
        (run / name).write_text(text)
    assert cli.run_command(face_aging_script.main, ["--run", str(run), "--evaluate"]) == 2
    assert phrase in capsys.readouterr().err
    assert {p.name: p.read_text() for p in run.iterdir()} == files


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGTERM to a child process")
def test_sigterm_saves_the_gan_and_leaves_the_run_unfinished(tiny_celeba, face_aging_script, tmp_path,
                                                             capsys):
    """SIGTERM during GAN training finishes the step, saves gan_checkpoint.npz and exits 143; the
    run is not finished (no gan_steps in config.json), so --evaluate refuses it."""
    run = tmp_path / "run"
    env = dict(os.environ, TINYGAN_CACHE=str(tmp_path / "cache"), OPENBLAS_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(AGING), "--backend", "numpy", "--data", str(tiny_celeba), "--run", str(run),
           "--image-size", "32", "--base-filters", "4", "--clf-filters", "4", "--latent-dim", "8",
           "--holdout", "8", "--batch-size", "8", "--epochs", "100", "--clf-epochs", "0.1",
           "--log-every", "1"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if "GAN step 2/" in line:
                proc.send_signal(signal.SIGTERM)
                break
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr[-2000:]
    assert "SIGTERM: saved the GAN at step" in stdout
    assert load_checkpoint(run / "gan_checkpoint.npz")["step"] >= 2
    assert "gan_steps" not in (run / "config.json").read_text()
    assert cli.run_command(face_aging_script.main, ["--run", str(run), "--evaluate"]) == 2
    assert "did not finish" in capsys.readouterr().err
