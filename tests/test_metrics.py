"""tinygan.metrics: sliced Wasserstein distance over Laplacian-pyramid patches, discriminator accuracy.

Test images are smooth random colour fields (noise on a coarse grid, upsampled and box-blurred),
so 7x7 patches have structure at every pyramid level, unlike white noise.  Sets are small
(32-128 images) to keep the file fast; with so few images the SWD between two independent samples
of one distribution is well above 0 (patches of one image are correlated, so the effective sample
is small), which is why "small" is judged against a different distribution below.
"""
import re

import numpy as np
import pytest
from cupy_standin import counting

from tinygan.backend import get_array_module, to_numpy
from tinygan.errors import ShapeError
from tinygan.metrics import (
    SWDResult,
    discriminator_accuracy,
    extract_patches,
    laplacian_pyramid,
    normalize_descriptors,
    reconstruct_laplacian_pyramid,
    sliced_wasserstein,
    sliced_wasserstein_distance,
)
from tinygan.metrics.swd import pyramid_down, pyramid_up

# --- helpers ----------------------------------------------------------------------------------

def smooth_images(n, size=64, seed=0, cell=4, noise=0.02):
    """(n, 3, size, size) float32 smooth random images, roughly in [-1, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, size // cell, size // cell))
    x = np.repeat(np.repeat(x, cell, axis=2), cell, axis=3)          # blocky
    for _ in range(2):                                               # two box blurs ~ smooth bumps
        for ax in (2, 3):
            x = sum(np.roll(x, s, axis=ax) for s in range(-(cell // 2), cell // 2 + 1)) / (cell + 1)
    x = 0.5 * x / x.std() + noise * rng.standard_normal(x.shape)
    return x.astype(np.float32)


def gaussian_blur(x, sigma):
    """Separable Gaussian blur of NCHW images, reflect padding (independent of the library code)."""
    r = int(np.ceil(3 * sigma))
    t = np.arange(-r, r + 1)
    k = np.exp(-t ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    for ax in (2, 3):
        pad = [(0, 0)] * 4
        pad[ax] = (r, r)
        p = np.pad(x, pad, mode="reflect")
        n = x.shape[ax]
        x = sum(k[i] * np.take(p, np.arange(i, i + n), axis=ax) for i in range(2 * r + 1))
    return x.astype(np.float32)


def textbook_conv5x5(x, kernel):
    """2-D 'same' convolution with a 5x5 kernel and mirror padding, written out tap by tap."""
    p = np.pad(x, [(0, 0), (0, 0), (2, 2), (2, 2)], mode="reflect")
    h, w = x.shape[2:]
    return sum(kernel[i, j] * p[:, :, i:i + h, j:j + w] for i in range(5) for j in range(5))


BINOMIAL_2D = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0


# --- Laplacian pyramid ------------------------------------------------------------------------

@pytest.mark.parametrize("size, expected", [(64, [64, 32, 16]), (128, [128, 64, 32, 16]), (32, [32, 16])])
def test_pyramid_levels_halve_down_to_min_resolution(size, expected):
    x = np.zeros((2, 3, size, size), np.float32)
    pyr = laplacian_pyramid(x, min_resolution=16)
    assert [lvl.shape for lvl in pyr] == [(2, 3, s, s) for s in expected]
    assert all(lvl.dtype == np.float32 for lvl in pyr)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_pyramid_reconstructs_the_image(dtype, tol):
    # Reconstruction re-adds exactly what was subtracted, so the only error is rounding from a
    # few adds/subtracts of O(1) values: ~1e-7 in float32, ~1e-16 in float64.
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 64, 64)).astype(dtype)
    back = reconstruct_laplacian_pyramid(laplacian_pyramid(x))
    np.testing.assert_allclose(back, x, rtol=0, atol=tol)


def test_pyramid_of_a_constant_image_has_no_detail():
    # The filter sums to 1 and mirror padding keeps constants, so all band-pass levels are 0.
    x = np.full((1, 3, 64, 64), 0.3)
    pyr = laplacian_pyramid(x)
    for detail in pyr[:-1]:
        np.testing.assert_allclose(detail, 0.0, atol=1e-15)
    np.testing.assert_allclose(pyr[-1], 0.3, atol=1e-15)


def test_down_and_up_match_the_textbook_definitions():
    # down = blur with the 5x5 binomial kernel, keep even pixels; up = insert zeros, blur with
    # 4 x that kernel (the reference code's scipy 'mirror' mode == numpy 'reflect').  float64: exact
    # up to summation order (1e-12).
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16))
    np.testing.assert_allclose(pyramid_down(x), textbook_conv5x5(x, BINOMIAL_2D)[:, :, ::2, ::2], atol=1e-12)
    zeros = np.zeros((2, 3, 32, 32))
    zeros[:, :, ::2, ::2] = x
    np.testing.assert_allclose(pyramid_up(x), textbook_conv5x5(zeros, 4 * BINOMIAL_2D), atol=1e-12)


# --- patches and the 1-D core -----------------------------------------------------------------

def test_extract_patches_reads_the_neighbourhoods_at_the_given_corners():
    level = np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype(np.float32)
    corners = np.array([[[0, 0], [9, 3]], [[5, 9], [2, 7]]])              # (N=2, n=2, 2), 9 = 16 - 7
    patches = extract_patches(level, corners=corners)
    assert patches.shape == (4, 3, 7, 7)
    for k, (img, (r, c)) in enumerate([(0, (0, 0)), (0, (9, 3)), (1, (5, 9)), (1, (2, 7))]):
        np.testing.assert_array_equal(patches[k], level[img, :, r:r + 7, c:c + 7])


def test_random_patches_stay_inside_the_image_and_repeat_with_the_seed():
    level = np.random.default_rng(3).standard_normal((4, 3, 16, 16)).astype(np.float32)
    p1 = extract_patches(level, 50, np.random.default_rng(7))
    p2 = extract_patches(level, 50, np.random.default_rng(7))
    assert p1.shape == (200, 3, 7, 7)
    np.testing.assert_array_equal(p1, p2)


def test_descriptors_have_zero_mean_unit_std_per_channel():
    patches = (np.random.default_rng(4).standard_normal((500, 3, 7, 7)) * [[[2.0]], [[0.5]], [[3.0]]]
               + [[[1.0]], [[-2.0]], [[0.0]]]).astype(np.float32)
    d = normalize_descriptors(patches).reshape(500, 3, 49)
    # float32 statistics of 24,500 values per channel: ~1e-6 off.
    np.testing.assert_allclose(d.mean(axis=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(d.std(axis=(0, 2)), 1.0, atol=1e-5)


def test_sliced_wasserstein_in_one_dimension_is_the_exact_w1():
    # In 1-D every unit direction is +1 or -1, so each projection gives W1 of the two samples:
    # sorted [0, 1, 2] vs [1, 2, 3] differ by 1 everywhere.
    a = np.array([[2.0], [0.0], [1.0]])
    b = np.array([[3.0], [1.0], [2.0]])
    assert sliced_wasserstein(a, b, n_directions=8, n_repeats=2, rng=0) == pytest.approx(1.0, abs=1e-12)


def test_sliced_wasserstein_subsamples_the_larger_set():
    # 6 (or 3) identical points at the origin vs 4 identical points at (1, 0): whichever points are
    # kept, a direction at angle phi gives |cos phi|, whose mean over random directions is
    # 2 / pi.  With 20,000 directions the estimate's std is ~0.3 / sqrt(20000) = 0.002; tol 0.01.
    b = np.tile([[1.0, 0.0]], (4, 1))
    for n_a in (6, 3):
        distance = sliced_wasserstein(np.zeros((n_a, 2)), b, 20000, 1, rng=5)
        assert distance == pytest.approx(2 / np.pi, abs=0.01)


# --- the full metric --------------------------------------------------------------------------

def test_a_set_against_itself_gives_exactly_zero():
    # Patch positions depend only on (seed, level, count, size), not on which set, so both sides
    # read the same descriptors; same descriptors -> same statistics -> same projections -> the
    # sorted lists are identical and every |difference| is exactly 0.0.
    a = smooth_images(32, 64, seed=1)
    result = sliced_wasserstein_distance(a, a.copy())
    assert isinstance(result, SWDResult)
    assert list(result.per_level) == [64, 32, 16]
    assert result.per_level == {64: 0.0, 32: 0.0, 16: 0.0} and result.mean == 0.0


def test_independent_sample_of_the_same_distribution_is_close():
    # Two independent draws from one distribution vs a draw from another (blockier images,
    # 8-pixel cells instead of 4).  Measured: same ~0.018, other ~0.067 (mean over levels), and
    # the same-distribution value halves from 32 to 128 images (finite-sample noise, ~0.036 ->
    # 0.018); the asserted factors leave 1.5-2x margin.
    a, b = smooth_images(128, 64, seed=1), smooth_images(128, 64, seed=2)
    other = smooth_images(128, 64, seed=2, cell=8)
    same = sliced_wasserstein_distance(a, b)
    diff = sliced_wasserstein_distance(a, other)
    small = sliced_wasserstein_distance(a[:32], b[:32])
    assert same.mean < 0.5 * diff.mean
    assert same.mean < 0.75 * small.mean


def test_distance_grows_with_blur():
    # Blurring removes fine detail and widens structures; per-channel normalisation cannot undo a
    # change of patch shape, so every level moves away, more with each blur step.
    a = smooth_images(32, 64, seed=1)
    d = [sliced_wasserstein_distance(a, gaussian_blur(a, s)) for s in (0.5, 1.0, 2.0)]
    for res in (64, 32, 16):
        assert 0 < d[0].per_level[res] < d[1].per_level[res] < d[2].per_level[res]
    assert d[0].mean < d[1].mean < d[2].mean


def test_global_brightness_shift_is_invisible():
    # By design: band-pass levels cancel constants and each set is normalised per channel by its
    # own mean and std, so shifting a whole set leaves only float32 rounding (~1e-7).
    a = smooth_images(32, 64, seed=1)
    assert sliced_wasserstein_distance(a, a + 0.3).mean < 1e-5


def test_distance_grows_as_half_the_set_is_shifted_further():
    # Brightening half of the images (by 0, 0.2, 0.4) turns the brightness distribution into two
    # bumps further and further apart; normalisation removes only the overall mean and spread, so
    # the W1 distance to the original grows with the gap.  Only the coarsest level (the Gaussian
    # residual) sees it: the band-pass levels cancel constants (unchanged up to ~1e-7).
    # (A spatial translation is not used: patches are pooled over random positions, so shifting
    # stationary content by 2 or 4 px only resamples it and the distance does not grow with it.)
    a = smooth_images(32, 64, seed=1)
    d = []
    for delta in (0.0, 0.2, 0.4):
        shifted = a.copy()
        shifted[::2] += delta
        d.append(sliced_wasserstein_distance(a, shifted))
    assert d[0].mean == 0.0 < d[1].per_level[16] < d[2].per_level[16]
    assert d[1].mean < d[2].mean
    assert max(d[2].per_level[64], d[2].per_level[32]) < 1e-5


def test_same_value_on_every_backend(xp):
    # All random draws happen on the host with NumPy and are moved to the device, so the only
    # NumPy/CuPy difference is float32 rounding in the pyramid, statistics and projections
    # (~1e-7 relative per value); SWD is 1-Lipschitz in the projections, so on values ~3e-2 that
    # shifts it by well under 1e-4 relative.  On NumPy this compares a host round trip with itself.
    a, b = smooth_images(32, 64, seed=1), smooth_images(32, 64, seed=2)
    ref = sliced_wasserstein_distance(a, b, seed=3)
    a_dev, b_dev = xp.asarray(a), xp.asarray(b)
    np.testing.assert_array_equal(to_numpy(a_dev), a)                 # the round trip is lossless
    for got in (sliced_wasserstein_distance(a_dev, b_dev, seed=3),
                sliced_wasserstein_distance(a, b_dev, seed=3)):        # a host set streams to the device
        assert got.per_level.keys() == ref.per_level.keys()
        for res in ref.per_level:
            assert got.per_level[res] == pytest.approx(ref.per_level[res], rel=1e-4)
        assert isinstance(got.mean, float)


def test_device_sets_are_compared_with_no_copy_to_the_device_per_batch(cupy_standin):
    # What must cross to the device (counted by the CuPy stand-in): per set and pyramid level the
    # patch corners, 2 int32 per patch; per level and repeat the projection directions, 128 x 147
    # float32.  Nothing per batch: the patch gather builds its index on the device (it used to
    # copy a host int64 index of 147 entries per patch for every batch and level).
    n, per, levels = 16, 32, 3
    a = cupy_standin.asarray(smooth_images(n, 64, seed=1))
    b = cupy_standin.asarray(smooth_images(n, 64, seed=2))
    corners, directions = 2 * levels * (n * per * 2 * 4), levels * 4 * (128 * 147 * 4)
    for batch_size in (4, 16):
        with counting() as c:
            sliced_wasserstein_distance(a, b, descriptors_per_image=per, batch_size=batch_size)
        assert c.h2d == 2 * levels + levels * 4
        assert c.h2d_bytes == corners + directions


def test_float64_input_agrees_with_float32():
    # float64 runs the whole computation in float64; the two differ by float32 rounding only
    # (see the backend test), so 1e-4 relative.
    a, b = smooth_images(32, 32, seed=1), smooth_images(32, 32, seed=2)
    d32 = sliced_wasserstein_distance(a, b)
    d64 = sliced_wasserstein_distance(a.astype(np.float64), b.astype(np.float64))
    assert d64.mean == pytest.approx(d32.mean, rel=1e-4)


def test_result_does_not_depend_on_batch_size():
    # Positions are drawn for the whole set up front, so batching only changes the order of work.
    a, b = smooth_images(20, 32, seed=1), smooth_images(20, 32, seed=2)
    r1 = sliced_wasserstein_distance(a, b, batch_size=7)
    r2 = sliced_wasserstein_distance(a, b, batch_size=256)
    assert r1.per_level == r2.per_level


def test_different_set_sizes_are_compared_on_equal_counts():
    a, b = smooth_images(24, 32, seed=1), smooth_images(16, 32, seed=2)
    result = sliced_wasserstein_distance(a, b, descriptors_per_image=32)
    assert result.n_descriptors == 16 * 32
    assert 0 < result.mean < 1


def test_result_prints_a_table_scaled_by_1e3():
    r = SWDResult({64: 0.0123, 32: 0.0045, 16: 0.002}, 0.0062667, 1024)
    text = str(r)
    assert "x 1000" in text and "12.300" in text and "6.267" in text
    assert [line.split()[0] for line in text.splitlines()[2:]] == ["64", "32", "16", "mean"]


@pytest.mark.parametrize("shape_a, shape_b, what", [
    ((4, 3, 64), (4, 3, 64, 64), "(N, 3, H, W)"),          # wrong ndim
    ((4, 1, 64, 64), (4, 1, 64, 64), "3 (RGB) channels"),  # greyscale
    ((4, 3, 16, 16), (4, 3, 16, 16), "too small"),         # needs >= 2 * min_resolution = 32
    ((4, 3, 64, 64), (4, 3, 32, 32), "same (C, H, W)"),    # mismatched sizes
    ((4, 3, 64, 48), (4, 3, 64, 48), "square"),
])
def test_bad_input_raises_a_value_error_naming_the_shape(shape_a, shape_b, what):
    a, b = np.zeros(shape_a, np.float32), np.zeros(shape_b, np.float32)
    with pytest.raises(ValueError, match=re.escape(what)) as info:
        sliced_wasserstein_distance(a, b, min_resolution=16)
    assert isinstance(info.value, ShapeError)
    assert str(shape_a) in str(info.value)


# --- discriminator accuracy -------------------------------------------------------------------

class SignOfMean:
    """Fake discriminator: logit +5 for images with positive mean, -5 otherwise, shape (N, 1)."""

    def __init__(self, from_logits=True):
        self.from_logits = from_logits
        self.calls = []

    def forward(self, x, training=True):
        xp = get_array_module(x)
        self.calls.append((x.shape[0], training))
        logits = xp.where(x.reshape(x.shape[0], -1).mean(axis=1) > 0, 5.0, -5.0)[:, None]
        return logits if self.from_logits else 1 / (1 + xp.exp(-logits))


def _images_with_mean_signs(n_pos, n_neg, xp=np):
    return xp.asarray(np.concatenate([np.full((n_pos, 3, 4, 4), 0.5),
                                      np.full((n_neg, 3, 4, 4), -0.5)]).astype(np.float32))


@pytest.mark.parametrize("from_logits", [True, False])
def test_discriminator_accuracy_counts_real_and_fake_correctly(xp, from_logits):
    real = _images_with_mean_signs(7, 3, xp)   # 7 of 10 called real
    fake = _images_with_mean_signs(4, 6, xp)   # 6 of 10 called fake
    d = SignOfMean(from_logits)
    acc = discriminator_accuracy(d, real, fake, batch_size=3, from_logits=from_logits)
    assert acc == {"real": 0.7, "fake": 0.6, "overall": 0.65}
    assert all(type(v) is float for v in acc.values())
    assert [n for n, _ in d.calls] == [3, 3, 3, 1] * 2          # batched
    assert not any(training for _, training in d.calls)        # evaluated in inference mode


def test_discriminator_accuracy_weights_overall_by_count():
    acc = discriminator_accuracy(SignOfMean(), _images_with_mean_signs(2, 0), _images_with_mean_signs(2, 6))
    assert acc == {"real": 1.0, "fake": 0.75, "overall": 0.8}   # (2 + 6) / 10


def test_discriminator_accuracy_rejects_one_score_too_many():
    class TwoScores:
        def forward(self, x, training=True):
            return np.zeros((x.shape[0], 2))

    with pytest.raises(ValueError, match=re.escape("(5, 2)")):
        discriminator_accuracy(TwoScores(), np.zeros((5, 3, 4, 4)), np.zeros((5, 3, 4, 4)))


def test_accuracy_in_training_mode_uses_batch_statistics_and_leaves_the_judge_unchanged():
    """training=True normalises each batch by its own statistics (as the stacked trainer does)
    and must not move BatchNorm's running averages."""
    from tinygan.layers import BatchNorm, Flatten
    from tinygan.sequential import Sequential
    # One value per image (1x1 pixel, one channel).  With batch statistics BN maps each batch to
    # mean 0, so exactly half of these 8 evenly spread values land >= 0 and are called real; with
    # the initial running statistics (mean 0, var 1) every +5 image stays real and every -5 fake.
    spread = np.linspace(-1, 1, 8, dtype=np.float32).reshape(8, 1, 1, 1)
    real = np.full((8, 1, 1, 1), 5.0, np.float32) + spread
    D = Sequential([BatchNorm(1), Flatten()], name="bn_judge")
    before = D.state_dict()
    eval_acc = discriminator_accuracy(D, real, -real, training=False)
    batch_acc = discriminator_accuracy(D, real, -real, training=True)
    assert eval_acc["real"] == 1.0 and eval_acc["fake"] == 1.0
    assert batch_acc["real"] == 0.5 and batch_acc["fake"] == 0.5
    for k, v in D.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert D.trainable
