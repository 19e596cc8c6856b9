"""Data-parallel training (tinygan.distributed): ranks that average their gradients train as one.

Three kinds of tests:

* in this process: the one-process communicator, batch shards and seeds, and ranks as threads
  (``LocalGroup``), the plain reference whose mean is ``(g_0 + g_1) / 2`` array by array;
* real MPI ranks: ``mpiexec -n 2`` runs the scripts in tests/mpi_scripts/ (skipped, saying why,
  where mpi4py or mpiexec is missing: ``pip install -e ".[mpi]"``).  Each run has a timeout, so a
  rank stuck in a collective fails the test instead of hanging the suite;
* the example itself, ``mpiexec -n 2 python examples/celeba_dcgan.py`` on 64 embedded faces with
  4 filters: who writes and prints, resume, and the one-line errors.

Every MPI test takes 1-5 s on 2 CPU cores (a launch is ~1 s; the model is a DCGAN with 8 filters);
the example's tests take ~13 s together.  That averaging equals training on the whole batch
(without BatchNorm) is lesson 14's claim, tested in test_lesson_14.py.
"""
import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinygan.checkpoint import load_checkpoint, restore_training_state, save_checkpoint, training_state
from tinygan.distributed import (
    DistributedError,
    LocalGroup,
    SingleProcess,
    find_mpiexec,
    from_environment,
    rank_seed,
    run_ranks,
    shard_rows,
    why_mpi_cannot_run,
)
from tinygan.errors import CheckpointError
from tinygan.gan.stacked import StackedGANTrainer
from tinygan.layers import Dense
from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator
from tinygan.optimizers import Adam

SCRIPTS = Path(__file__).resolve().parent / "mpi_scripts"
sys.path.insert(0, str(SCRIPTS))
import train_ranks  # noqa: E402
from collectives import rank_arrays  # noqa: E402

MPI_MISSING = why_mpi_cannot_run()
needs_mpi = pytest.mark.skipif(MPI_MISSING is not None, reason=f"MPI cannot run here: {MPI_MISSING}")
# One BLAS thread and one worker thread per rank: the sums inside every layer then run in one fixed
# order, in the ranks and in this process alike.
RANK_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "TINYGAN_NUM_THREADS": "1"}
TIMEOUT = 120          # seconds; a healthy run takes 1-3


@pytest.fixture
def one_worker():
    """One tinygan worker thread here too, as in the ranks (a convolution's weight gradient is
    summed per worker, so another worker count rounds differently)."""
    from tinygan.kernels import num_threads, set_num_threads
    before = num_threads()
    set_num_threads(1)
    yield
    set_num_threads(before)


def mpi_run(n, script, *args):
    result = run_ranks(n, [SCRIPTS / script, *args], timeout=TIMEOUT, env=RANK_ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def leaves(tree, path=""):
    """{path: leaf} of a nested dict/list (a trainer state)."""
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in leaves(sub, f"{path}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in leaves(sub, f"{path}/{i}").items()}
    return {path: tree}


def rank_state(out, rank):
    return leaves(load_checkpoint(Path(out) / f"rank{rank}.npz")["trainer"])


def assert_states_equal(a, b):
    """Bit for bit: every weight, buffer, optimizer moment and step count, every noise state."""
    assert sorted(a) == sorted(b)
    differ = [k for k in a if not np.array_equal(np.asarray(a[k]), np.asarray(b[k]))]
    assert not differ, differ[:10]


def small_trainer(communicator, seed=11):
    return StackedGANTrainer(
        dcgan64_generator(train_ranks.LATENT, train_ranks.FILTERS, 3, seed=0),
        dcgan64_discriminator(train_ranks.FILTERS, 3, seed=1), Adam(2e-4, 0.5), Adam(2e-4, 0.5),
        communicator=communicator, latent_dim=train_ranks.LATENT, seed=seed)


# -- one process and ranks as threads ----------------------------------------------------------
def test_shard_rows_cuts_the_global_batch_into_consecutive_disjoint_rows():
    batch = np.arange(12)
    shards = [shard_rows(batch, r, 3) for r in range(3)]
    assert [s.tolist() for s in shards] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    with pytest.raises(DistributedError, match="12 rows cannot be split evenly over 5 ranks"):
        shard_rows(batch, 0, 5)


def test_rank_seeds_are_reproducible_distinct_and_rank_0_keeps_the_seed():
    assert rank_seed(7, 0) == 7
    draws = [np.random.default_rng(rank_seed(7, r)).standard_normal(4) for r in range(3)]
    again = [np.random.default_rng(rank_seed(7, r)).standard_normal(4) for r in range(3)]
    assert all(np.array_equal(a, b) for a, b in zip(draws, again))
    assert not np.array_equal(draws[0], draws[1]) and not np.array_equal(draws[1], draws[2])
    # rank r's stream is SeedSequence(seed).spawn's child r: independent of how many ranks there are
    child = np.random.default_rng(np.random.SeedSequence(7).spawn(3)[2]).standard_normal(4)
    assert np.array_equal(child, draws[2])


def test_single_process_communicator_leaves_everything_as_it_is():
    comm = SingleProcess()
    g = np.arange(6, dtype=np.float32).reshape(2, 3)
    comm.average_gradients([("w", np.zeros_like(g), g)])
    assert np.array_equal(g, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert comm.shard(np.arange(5)).tolist() == [0, 1, 2, 3, 4]
    assert comm.any_rank(True) and not comm.any_rank(False)
    assert comm.is_root and comm.allgather_object("x") == ["x"] and comm.run_on_root(lambda: 3) == 3


def test_from_environment_is_single_process_without_a_launcher(monkeypatch):
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(from_environment(), SingleProcess)


def test_from_environment_under_mpiexec_without_mpi4py_says_how_to_install(monkeypatch):
    from tinygan.distributed import communicator
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setattr(communicator, "mpi_available", lambda: False)
    with pytest.raises(DistributedError, match=r"one of 2 started by mpiexec.*\.\[mpi\]"):
        from_environment()


def test_local_group_averages_every_array_over_the_ranks():
    def rank_main(comm):
        grads = [np.full((2, 3), comm.rank + 1.0, np.float32), np.array([10.0 * comm.rank])]
        comm.average_gradients([(f"g{i}", None, g) for i, g in enumerate(grads)])
        return grads
    results = LocalGroup(3).run(rank_main)
    for grads in results:                                     # (1 + 2 + 3) / 3 and (0 + 10 + 20) / 3
        assert np.array_equal(grads[0], np.full((2, 3), 2.0, np.float32))
        assert np.array_equal(grads[1], [10.0])


def test_local_group_a_rank_that_raises_releases_the_others():
    def rank_main(comm):
        if comm.rank == 1:
            raise ValueError("rank 1 fails")
        comm.barrier()                                        # would wait forever for rank 1
    with pytest.raises(ValueError, match="rank 1 fails"):
        LocalGroup(2, timeout=60).run(rank_main)


def test_run_on_root_raises_the_roots_error_on_every_rank():
    def rank_main(comm):
        try:
            comm.run_on_root(load_checkpoint, "/nonexistent/checkpoint.npz")
        except CheckpointError as e:
            return str(e)
    assert LocalGroup(2).run(rank_main) == ["no checkpoint at /nonexistent/checkpoint.npz"] * 2


def test_thread_ranks_hold_identical_state_and_the_checkpoint_keeps_each_ranks_noise(one_worker):
    real = train_ranks.fixed_images()[:8]

    def rank_main(comm):
        trainer = small_trainer(comm)
        trainer.train_step(comm.shard(real))
        return trainer.state_dict(), trainer.noise_rng.bit_generator.state

    (state0, noise0), (state1, noise1) = LocalGroup(2).run(rank_main)
    assert noise0 != noise1                                      # each rank draws its own noise
    assert state0["world_size"] == 2 and state0["rank_noise_rng"] == [noise0, noise1]
    assert state0["noise_rng"] == noise0
    assert_states_equal(leaves(state0), leaves(state1))          # weights, moments, buffers: same bits

    def resume(comm):
        trainer = small_trainer(comm, seed=99)
        trainer.load_state_dict(state0)
        return trainer.noise_rng.bit_generator.state
    assert LocalGroup(2).run(resume) == [noise0, noise1]         # every rank continues its own stream


def test_one_process_checkpoint_has_one_rank_and_an_older_one_without_ranks_resumes_exactly(one_worker):
    real = train_ranks.fixed_images()[:4]
    trainer = small_trainer(None)
    trainer.train_step(real)
    state = trainer.state_dict()
    assert state["world_size"] == 1 and state["rank_noise_rng"] == [state["noise_rng"]]
    older = {k: v for k, v in state.items() if k not in ("world_size", "rank_noise_rng")}
    trainer.train_step(real)
    resumed = small_trainer(None, seed=5)
    resumed.load_state_dict(copy.deepcopy(older))
    resumed.train_step(real)
    assert_states_equal(leaves(trainer.state_dict()), leaves(resumed.state_dict()))


def test_resuming_with_another_number_of_ranks_is_refused(tmp_path, one_worker):
    real = train_ranks.fixed_images()[:4]

    def two_ranks(comm):
        trainer = small_trainer(comm)
        trainer.train_step(comm.shard(real))
        state = training_state(trainer)
        if comm.is_root:
            save_checkpoint(tmp_path / "two.npz", state)
    LocalGroup(2).run(two_ranks)

    with pytest.raises(CheckpointError, match=r"two\.npz.*written by a run on 2 rank.*this run has 1.*"
                                              r"`mpiexec -n 2 \.\.\.`"):
        restore_training_state(load_checkpoint(tmp_path / "two.npz"), small_trainer(SingleProcess()),
                               path=tmp_path / "two.npz")

    save_checkpoint(tmp_path / "one.npz", training_state(small_trainer(SingleProcess())))

    def resume_on_two(comm):
        with pytest.raises(CheckpointError, match="on 1 rank.*this run has 2.*without mpiexec"):
            restore_training_state(load_checkpoint(tmp_path / "one.npz"), small_trainer(comm),
                                   path=tmp_path / "one.npz")
    LocalGroup(2).run(resume_on_two)


# -- real MPI ranks -------------------------------------------------------------------------------
@needs_mpi
def test_mpi_collectives_compute_means_broadcasts_and_flags(tmp_path):
    mpi_run(2, "collectives.py", tmp_path)
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(2)]
    for r, got in enumerate(ranks):
        for i, (a0, a1) in enumerate(zip(rank_arrays(0), rank_arrays(1))):
            # a + b is the same float either way round, and / 2 is exact: the mean is bit-exact
            assert got[f"mean{i}"].dtype == a0.dtype
            assert np.array_equal(got[f"mean{i}"], (a0 + a1) / 2), i
            assert np.array_equal(got[f"grad_mean{i}"], (a0 + a1) / 2), i
        assert got["model/bn.running_mean"].tolist() == [1.0, 1.0]          # rank 0's buffer
        assert np.array_equal(got["model/dense.W"], ranks[0]["model/dense.W"])
        assert got["object"] == 0 and got["gathered"].tolist() == [0, 10]
        assert not got["any_none"] and got["any_last"]
        assert got["shard"].tolist() == [4 * r, 4 * r + 1, 4 * r + 2, 4 * r + 3]
        assert "invalid literal for int()" in str(got["root_error"])        # raised on both ranks
        assert got["root_result"] == 42                                     # rank 0's value
    # rank 0 kept its own weights; rank 1's were overwritten with them
    assert np.array_equal(ranks[1]["model/dense.W"], Dense(3, 2, rng=np.random.default_rng(0)).params["W"])


@needs_mpi
def test_two_ranks_stay_identical_and_equal_one_process_averaging_the_same_shards(tmp_path, one_worker):
    mpi_run(2, "train_ranks.py", "--out", tmp_path, "--steps", "3", "--optimizer", "sgd")
    rank0, rank1 = rank_state(tmp_path, 0), rank_state(tmp_path, 1)
    assert_states_equal(rank0, rank1)      # same averaged gradients on the same weights: same bits

    # The reference: one process, the two ranks as threads, each shard through its own model copy
    # (so BatchNorm normalises each shard by its own statistics, as on the MPI ranks).
    args = train_ranks.parse_args(["--out", str(tmp_path), "--steps", "3", "--optimizer", "sgd"])
    reference = leaves(LocalGroup(2).run(lambda comm: train_ranks.train(comm, args))[0]["state"])
    assert sorted(reference) == sorted(rank0)
    # Tolerance.  Both sides compute each shard's gradient with the same code on the same data, one
    # BLAS thread each; they differ only in how the two shards' gradients are added: MPI sums one
    # flat buffer, the reference adds g0 + g1 array by array.  Float32 addition is commutative, so
    # with two ranks the sums agree bit for bit (max difference 0 when this was written); another
    # MPI could add in another precision or, with more ranks, another order: ~6e-8 relative per
    # gradient per step, which three SGD steps (lr 0.05, |g| < 1) keep below 1e-8.  A wrong average
    # (a sum, a missing parameter) moves weights by ~lr * |g| ~ 1e-3, far above 1e-6.
    for key, value in rank0.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            np.testing.assert_allclose(value, reference[key], rtol=0, atol=1e-6, err_msg=key)
        else:
            assert np.array_equal(np.asarray(value), np.asarray(reference[key])), key


@needs_mpi
def test_resume_on_two_ranks_continues_bit_for_bit(tmp_path):
    straight, first, second = tmp_path / "straight", tmp_path / "first", tmp_path / "second"
    for d in (straight, first, second):
        d.mkdir()
    mpi_run(2, "train_ranks.py", "--out", straight, "--steps", "4", "--save-every", "2")
    mpi_run(2, "train_ranks.py", "--out", first, "--steps", "2", "--save-every", "2")
    mpi_run(2, "train_ranks.py", "--out", second, "--steps", "4", "--save-every", "2",
            "--resume", first / "checkpoint.npz")
    for rank in range(2):
        assert_states_equal(rank_state(straight, rank), rank_state(second, rank))
    assert_states_equal(leaves(load_checkpoint(straight / "checkpoint.npz")),
                        leaves(load_checkpoint(second / "checkpoint.npz")))


@needs_mpi
def test_a_rank_that_raises_aborts_every_rank_with_its_message(tmp_path):
    # Without the abort, rank 0 would wait in its next all-reduce until the timeout fails the test.
    result = run_ranks(2, [SCRIPTS / "train_ranks.py", "--out", tmp_path, "--steps", "4",
                           "--fail-rank", "1", "--fail-step", "2"], timeout=TIMEOUT, env=RANK_ENV)
    assert result.returncode != 0
    assert "error: rank 1 of 2: RuntimeError: injected failure on rank 1 at step 2" in result.stderr
    assert not (tmp_path / "rank0.json").exists()                # rank 0 did not finish either


@needs_mpi
def test_sigterm_on_one_rank_stops_every_rank_at_the_same_step_with_one_checkpoint(tmp_path):
    mpi_run(2, "train_ranks.py", "--out", tmp_path, "--steps", "6", "--signal-rank", "1",
            "--signal-step", "3")
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(r["steps"], r["stopped"]) for r in reports] == [(3, True), (3, True)]
    assert load_checkpoint(tmp_path / "checkpoint.npz")["step"] == 3


@needs_mpi
def test_ctrl_c_to_mpiexec_stops_every_rank_cleanly_with_one_checkpoint(tmp_path):
    # Ctrl-C in a terminal sends SIGINT to mpiexec, which forwards it to every rank.
    started = tmp_path / "started"
    proc = subprocess.Popen([find_mpiexec(), "-n", "2", sys.executable, SCRIPTS / "train_ranks.py",
                             "--out", tmp_path, "--steps", "100000", "--started-file", started],
                            env={**os.environ, **RANK_ENV}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert reports[0]["stopped"] and reports[1]["stopped"]
    assert 1 <= reports[0]["steps"] == reports[1]["steps"] < 100000
    assert load_checkpoint(tmp_path / "checkpoint.npz")["step"] == reports[0]["steps"]


@needs_mpi
def test_mpiexec_timeout_kills_a_hanging_run(tmp_path):
    # The guard the other tests rely on: a run stuck in a collective ends at the timeout.
    hang = tmp_path / "hang.py"
    hang.write_text("from mpi4py import MPI\nif MPI.COMM_WORLD.rank == 0:\n    MPI.COMM_WORLD.barrier()\n"
                    "else:\n    import time; time.sleep(600)\n")
    with pytest.raises(subprocess.TimeoutExpired):
        run_ranks(2, [hang], timeout=3)


# -- the example on two ranks -----------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "celeba_dcgan.py"
# 64 embedded faces (58 to train), a global batch of 8 (each rank: 2 real + 2 generated for D, 4 for G)
TINY = ["--backend", "numpy", "--limit", "64", "--batch-size", "8", "--base-filters", "4", "--no-progress"]


@pytest.fixture(scope="module")
def example_env(tmp_path_factory):
    return {**RANK_ENV, "TINYGAN_CACHE": str(tmp_path_factory.mktemp("cache")),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}


def example(n, *args, env, writes_to=None, expect=0):
    """``mpiexec -n n python examples/celeba_dcgan.py *args`` (n = 1: plain ``python``); with
    ``writes_to``, each rank records the files it writes there (mpi_scripts/record_writes.py)."""
    command = [EXAMPLE, *TINY, *args]
    if writes_to is not None:
        command = [SCRIPTS / "record_writes.py", writes_to, *command]
    if n == 1:
        result = subprocess.run([sys.executable, *map(str, command)], capture_output=True, text=True,
                                env={**os.environ, **env}, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    else:
        result = run_ranks(n, command, timeout=TIMEOUT, env=env)
    assert result.returncode == expect, result.stderr[-3000:]
    return result


def writes_under(log_dir, rank, *folders):
    written = json.loads((Path(log_dir) / f"writes_rank{rank}.json").read_text())
    return [w for w in written if any(Path(w).is_relative_to(Path(f).resolve()) for f in folders)]


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory, example_env):
    """2 steps on 2 ranks then resumed to 4 (each rank recording what it writes), and 4 straight."""
    root = tmp_path_factory.mktemp("example")
    logs = {name: root / f"writes_{name}" for name in ("first", "resumed")}
    for d in logs.values():
        d.mkdir()
    first = example(2, "--max-steps", "2", "--out", root / "run", env=example_env, writes_to=logs["first"])
    example(2, "--resume", "--max-steps", "4", "--out", root / "run", env=example_env,
            writes_to=logs["resumed"])
    example(2, "--max-steps", "4", "--out", root / "straight", env=example_env)
    return {"run": root / "run", "straight": root / "straight", "logs": logs, "first": first,
            "cache": example_env["TINYGAN_CACHE"]}


@needs_mpi
def test_example_on_two_ranks_writes_and_speaks_from_rank_0_alone(example_runs):
    run, cache = example_runs["run"], example_runs["cache"]
    assert {"config.json", "last.npz", "metrics.csv", "losses.png", "samples_latest.png"} <= {
        p.name for p in run.iterdir()}
    for log in example_runs["logs"].values():
        assert run / "last.npz" in map(Path, writes_under(log, 0, run))
        assert writes_under(log, 1, run, cache) == []     # not the run's files, not the image cache
    assert example_runs["first"].stdout.count("backend: numpy (float32), 2 ranks") == 1


@needs_mpi
def test_example_resumed_on_two_ranks_equals_a_straight_two_rank_run(example_runs):
    resumed = load_checkpoint(example_runs["run"] / "last.npz")
    straight = load_checkpoint(example_runs["straight"] / "last.npz")
    assert straight["step"] == 4 and straight["trainer"]["world_size"] == 2
    for key in ("trainer", "data", "epoch", "step", "extra"):
        assert_states_equal(leaves(resumed[key], key), leaves(straight[key], key))
    # the logged losses (means over the ranks) too; images/s is a wall-clock measurement
    columns = list(straight["history"]["step_columns"])
    keep = [i for i, c in enumerate(columns) if c != "images_per_sec"]
    assert np.array_equal(resumed["history"]["steps"][:, keep], straight["history"]["steps"][:, keep])


@needs_mpi
def test_example_resumed_with_another_number_of_ranks_is_refused_in_one_line(example_runs, example_env,
                                                                           tmp_path):
    r = example(1, "--resume", "--out", example_runs["run"], env=example_env, expect=1)
    assert r.stderr.strip().splitlines() == [
        f"error: checkpoint {example_runs['run'] / 'last.npz'} does not fit this run: it was written by a "
        f"run on 2 ranks and this run has 1: resume it with `mpiexec -n 2 ...` (each rank's noise and "
        f"share of every batch depend on the number of ranks)"]
    example(1, "--max-steps", "1", "--out", tmp_path / "one", env=example_env)
    r = example(2, "--resume", "--max-steps", "2", "--out", tmp_path / "one", env=example_env, expect=1)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "written by a run on 1 rank and this run has 2" in lines[0]
    assert "one process, without mpiexec" in lines[0]


@needs_mpi
def test_example_global_batch_that_the_ranks_cannot_share_is_one_error_naming_the_flag(example_env,
                                                                                     tmp_path):
    r = example(2, "--batch-size", "6", "--out", tmp_path / "run", env=example_env, expect=2)
    assert r.stderr.strip().splitlines() == [
        "error: --batch-size 6 is the global batch: each of the 2 ranks takes an equal share of both "
        "halves, so it must divide by 4"]
    assert not (tmp_path / "run").exists()
