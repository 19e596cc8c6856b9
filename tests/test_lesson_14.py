"""Lesson 14 (data parallelism): its claims hold in --quick mode.

Kept apart from test_lessons.py; it reuses that file's ``run_lesson`` and runs the lesson once for
all three tests: about 3 s on 2 CPU cores (1-2 s of it starting the 2 MPI ranks; without mpi4py
the lesson runs them as threads).
"""
import numpy as np
import pytest
from test_lessons import run_lesson

from tinygan.distributed import why_mpi_cannot_run


@pytest.fixture(scope="module")
def lesson(tmp_path_factory):
    """The lesson's numbers and its output folder, from one --quick run shared by these tests."""
    out = tmp_path_factory.mktemp("lesson14")
    return run_lesson("14_data_parallel", out), out


def test_lesson_14_shard_means_equal_the_whole_batch_unless_batchnorm(lesson):
    out, folder = lesson
    # float32: the same per-sample gradients added in another order, ~1e-7 relative
    assert out["plain_rel_diff"] < 1e-5
    assert max(out["plain_curve"]) < 1e-5
    # summing instead of averaging 2 shards doubles the gradient: |2g - g| / |g| = 1 (up to rounding)
    np.testing.assert_allclose(out["sum_rel_diff"], 1.0, rtol=1e-5)
    bn = dict(zip(out["shards"], out["bn_curve"]))
    assert bn[1] == 0.0                                   # one shard is the whole batch: same arithmetic
    # 2 shards of 32 points: ~7e-2 (lesson's seed); 1e-3 is four orders above rounding
    assert bn[2] > 1e-3
    assert bn[16] > bn[2]                                  # shards of 4 estimate their statistics worse
    assert (folder / "shards.png").is_file()


def test_lesson_14_two_ranks_train_like_the_whole_batch_only_without_batchnorm(lesson):
    out, _ = lesson
    assert out["launched"] == ("mpiexec" if why_mpi_cannot_run() is None else "threads")
    # the ranks apply the same averaged gradients to the same weights: identical bits
    assert out["plain_between_ranks"] == 0.0 and out["bn_between_ranks"] == 0.0
    # 20 SGD steps at lr 0.05 of float32 rounding (~1e-7 per gradient): 3e-8 when written
    assert out["plain_vs_whole"] < 1e-5
    # BatchNorm in G: each rank normalised its own fakes; the runs part ways (~5e-2 when written)
    assert out["bn_vs_whole"] > 1e-3


def test_lesson_14_counts_the_dcgan_all_reduce_volume(lesson):
    out, _ = lesson
    # 4x4 kernels, no conv bias, BatchNorm gamma and beta: counted by hand in docs/distributed.md
    assert out["dcgan_params"] == {"G": 3_576_704, "D": 2_765_568}
    np.testing.assert_allclose(out["dcgan_allreduce_mb"], 4 * (3_576_704 + 2_765_568) / 1e6)
