"""tinygan.kernels' CuPy passes (cupy_passes.py, cupy_im2col.py): each equals the layer's own code,
and each takes the few kernel launches it is built for.

Every test runs on the CuPy stand-in (tests/cupy_standin: NumPy behind CuPy's API and rules) and,
where a GPU is present, on real CuPy; the launch counts are the stand-in's (it counts them).

Tolerances.  Comparisons run in float64.  im2col only copies: exact.  The other passes add the
same terms in another order (col2im's taps, BatchNorm's sums, its one-pass variance in float64):
float64 rounding, ~1e-16 relative per operation, below 1e-14 after a layer; 1e-12 keeps that
margin and is ten orders of magnitude below a wrong index or a missing term (errors of order 1).
The optimizer updates are the plain ones operation for operation: equal to the bit in float32 on
the stand-in (on a GPU the compiler may contract a*b+c into one rounding: 1e-6 there).
"""
import numpy as np
import pytest
from conftest import REAL_CUPY
from cupy_standin import counting
from layer_cases import LAYER_CASES, layer_case

from tinygan import kernels
from tinygan.backend import get_backend, to_numpy
from tinygan.gan.stacked import StackedGANTrainer
from tinygan.kernels import cupy_im2col, cupy_passes
from tinygan.kernels.reference import col2im_loops, im2col_loops
from tinygan.layers import BatchNorm, Conv2D, Conv2DTranspose, LeakyReLU
from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator
from tinygan.optimizers import SGD, Adam, Nadam

TOL = 1e-12

CUPY_BACKENDS = [pytest.param("cupy-standin", marks=pytest.mark.cupy),
                 pytest.param("cupy", marks=[pytest.mark.cupy, pytest.mark.skipif(
                     not REAL_CUPY, reason="CuPy with a GPU is not available here")])]


@pytest.fixture(params=CUPY_BACKENDS)
def cupy64(request):
    """A float64 CuPy backend: the stand-in, or real CuPy on a GPU."""
    if request.param == "cupy-standin":
        request.getfixturevalue("cupy_standin")
    return get_backend("cupy", dtype=np.float64)


@pytest.fixture
def standin64(cupy_standin):
    """The float64 CuPy backend on the stand-in, for the tests that count launches."""
    return get_backend("cupy", dtype=np.float64)


def rel(a, b):
    a, b = to_numpy(a), to_numpy(b)
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-300))


def channels_first(backend, x):
    """x (N, C, H, W) on the device, stored (C, N, H, W): the layout the CuPy convolutions give."""
    return backend.xp.ascontiguousarray(backend.asarray(x).transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)


# -- the primitives -----------------------------------------------------------------------------------
# (N, C, H, W, kernel, stride, padding): the DCGAN's 4/2/1, odd sizes, stride 3, a kernel that is not a
# multiple of the stride, windows mostly in the padding, and a kernel as large as the image.
PRIMITIVE_CASES = [(2, 3, 8, 8, 4, 2, 1), (3, 2, 9, 7, 3, 2, 0), (2, 4, 6, 5, 2, 3, 1),
                   (1, 2, 5, 5, 5, 1, 2), (2, 3, 7, 6, 3, 2, 1), (2, 2, 1, 1, 4, 1, 3), (3, 5, 4, 4, 4, 1, 0)]


@pytest.mark.parametrize("n,c,h,w,k,s,p", PRIMITIVE_CASES)
def test_im2col_equals_the_loops_for_either_memory_layout(cupy64, n, c, h, w, k, s, p):
    x = np.random.default_rng(0).standard_normal((n, c, h, w))
    expected = im2col_loops(x, k, k, s, p)
    for x_device in (cupy64.asarray(x), channels_first(cupy64, x)):
        np.testing.assert_array_equal(to_numpy(cupy_im2col.im2col(x_device, k, k, s, p)), expected)  # copies


@pytest.mark.parametrize("n,c,h,w,k,s,p", PRIMITIVE_CASES)
def test_col2im_equals_the_loops(cupy64, n, c, h, w, k, s, p):
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    cols = np.random.default_rng(1).standard_normal((c * k * k, n * ho * wo))
    got = cupy_im2col.col2im(cupy64.asarray(cols), (n, c, h, w), k, k, s, p)
    assert got.shape == (n, c, h, w)
    assert rel(col2im_loops(cols, (n, c, h, w), k, k, s, p), got) < TOL


def test_col2im_terms_that_fall_into_the_padding_never_reach_the_image(cupy64):
    # Window (0, 0) at kernel offset (0, 0) covers pixel (-1, -1), in the padding: even a NaN there
    # must not reach the image (the gather's placeholder terms point at it, and are masked out).
    cols = np.random.default_rng(2).standard_normal((2 * 16, 1 * 4 * 4))
    cols[0, 0] = np.nan                      # row (c, u, v) = (0, 0, 0), column (n, i, j) = (0, 0, 0)
    got = to_numpy(cupy_im2col.col2im(cupy64.asarray(cols), (1, 2, 8, 8), 4, 4, 2, 1))
    assert not np.isnan(got).any()
    cols[0, 0] = 0.0
    assert rel(col2im_loops(cols, (1, 2, 8, 8), 4, 4, 2, 1), got) < TOL


def test_im2col_is_two_kernels_and_col2im_two(standin64):
    x = standin64.asarray(np.random.default_rng(3).standard_normal((2, 3, 8, 8)))
    cols = cupy_im2col.im2col(x, 4, 4, 2, 1)
    cupy_im2col.col2im(cols, x.shape, 4, 4, 2, 1)     # first calls: zeroed buffer and gather table
    with counting() as c_im2col:
        cupy_im2col.im2col(x, 4, 4, 2, 1)
    with counting() as c_col2im:
        cupy_im2col.col2im(cols, x.shape, 4, 4, 2, 1)
    # im2col: the image into the padded buffer, all windows out of it; col2im: a gather, a sum
    assert (c_im2col.ops, c_col2im.ops) == (2, 2) and (c_im2col.h2d, c_col2im.h2d) == (0, 0)


def test_a_convolution_over_the_whole_image_reorders_without_arithmetic(standin64):
    x = channels_first(standin64, np.random.default_rng(4).standard_normal((3, 5, 4, 4)))
    with counting() as c:
        cols = cupy_im2col.im2col(x, 4, 4, 1, 0)                       # one transposing copy
        back = cupy_im2col.col2im(cols, x.shape, 4, 4, 1, 0)           # a view
    assert c.ops == 1
    np.testing.assert_array_equal(to_numpy(back), to_numpy(x))


def test_as_matrix_is_free_for_what_as_images_returns(standin64):
    m = standin64.asarray(np.random.default_rng(5).standard_normal((4, 2 * 3 * 5)))
    with counting() as c:
        images = cupy_im2col.as_images(m, 2, 3, 5)
        again = cupy_im2col.as_matrix(images)
    assert c.ops == 0 and images.shape == (2, 4, 3, 5)
    np.testing.assert_array_equal(to_numpy(again), to_numpy(m))
    np.testing.assert_array_equal(to_numpy(images), to_numpy(m).reshape(4, 2, 3, 5).transpose(1, 0, 2, 3))


# -- every layer pass against the layer's own code -------------------------------------------------------
# The convolutions have no pass of their own: their layer code runs fast through the primitives of
# tinygan.kernels.im2col, which hand over to cupy_im2col while the fast kernels are on.
FAST_ON_CUPY = set(cupy_passes.PASSES) | {Conv2D, Conv2DTranspose}
CUPY_CASES = sorted(name for name, (make, _, _) in LAYER_CASES.items() if type(make()) in FAST_ON_CUPY)


def test_every_cupy_pass_has_cases():
    assert {type(LAYER_CASES[name][0]()) for name in CUPY_CASES} == FAST_ON_CUPY


@pytest.mark.parametrize("case", CUPY_CASES)
def test_cupy_pass_equals_the_layers_own_code(cupy64, case):
    run = layer_case(*LAYER_CASES[case])
    with kernels.using("plain"):
        plain = run(cupy64)
    fast = run(cupy64)
    for key in plain:
        assert fast[key].shape == plain[key].shape and fast[key].dtype == plain[key].dtype, key
        if to_numpy(plain[key]).any():
            assert rel(plain[key], fast[key]) < TOL, key
        else:                                       # a frozen layer's parameter gradients stay zero
            assert not to_numpy(fast[key]).any(), key


MIXED_CASES = ["conv_k3s2p0_odd", "conv_k4s2p1", "conv_4x4_to_1x1", "convT_k3s2p1_outpad1",
               "convT_1x1_to_4x4", "batchnorm_images_train", "batchnorm_dense_train", "batchnorm_images_eval",
               "leaky_relu", "tanh", "relu", "sigmoid"]


@pytest.mark.parametrize("case", MIXED_CASES)
def test_fast_and_plain_cupy_passes_mix_and_both_accumulate(cupy64, case):
    """A fast forward leaves ``saved`` equal to the plain one's (shapes and values), so the plain
    backward may follow it; two backward passes, plain or fast, add up to twice one plain backward."""
    make, shape, training = LAYER_CASES[case]
    rng = np.random.default_rng(6)
    x = cupy64.asarray(rng.standard_normal(shape))
    reference = make().to(cupy64.xp).astype(np.float64)
    with kernels.using("plain"):
        y = reference.forward(x, training)
        dy = cupy64.asarray(rng.standard_normal(y.shape))
        dx = reference.backward(dy)
    layer = make().to(cupy64.xp).astype(np.float64)
    assert rel(y, kernels.forward(layer, x, training)) < TOL
    for k in reference.buffers:                    # BatchNorm's running averages
        assert rel(reference.buffers[k], layer.buffers[k]) < TOL, k
    assert len(reference.saved) == len(layer.saved)
    for a, b in zip(reference.saved, layer.saved):
        if hasattr(a, "shape"):
            assert a.shape == b.shape and a.dtype == b.dtype
            assert rel(a, b) < TOL if a.dtype.kind == "f" else np.array_equal(to_numpy(a), to_numpy(b))
        else:
            assert a == b
    for backward in (layer.backward, lambda g: kernels.backward(layer, g)):
        layer.zero_grad()
        assert rel(dx, backward(dy)) < TOL
        backward(dy)
        for k in reference.grads:
            assert rel(2 * to_numpy(reference.grads[k]), layer.grads[k]) < TOL, k


@pytest.mark.parametrize("case", ["conv_k4s2p1", "convT_k4s2p1", "batchnorm_images_train", "leaky_relu",
                                  "relu", "tanh"])
def test_a_pass_gives_the_same_numbers_for_either_memory_layout_of_its_input(cupy64, case):
    make, shape, training = LAYER_CASES[case]
    rng = np.random.default_rng(7)
    x, dy = rng.standard_normal(shape), None
    results = []
    for x_device in (cupy64.asarray(x), channels_first(cupy64, x)):
        layer = make().to(cupy64.xp).astype(np.float64)
        y = kernels.forward(layer, x_device, training)
        dy = cupy64.asarray(rng.standard_normal(y.shape)) if dy is None else dy
        layer.zero_grad()
        results.append([y, kernels.backward(layer, dy), *layer.grads.values()])
    for a, b in zip(*results):
        assert rel(a, b) < TOL


def test_batchnorm_variance_in_one_pass_is_exact_far_from_the_running_mean(cupy64):
    # Mean 1e3, standard deviation 1e-2, running mean 0: a one-pass variance in float32 would keep
    # no digit (1e6 - 1e6 at 6e-8 relative is 0.06, the variance 1e-4); in float64 its error is
    # ~1e-16 * 1e6 / 1e-4 = 1e-6 relative, and 1/sqrt(var + eps) is then float32-exact (~1e-7).
    layer = BatchNorm(3).to(cupy64.xp)                    # float32 parameters, as in training
    x = (1e3 + 1e-2 * np.random.default_rng(8).standard_normal((16, 3, 4, 4))).astype(np.float32)
    kernels.forward(layer, cupy64.asarray(x, dtype=np.float32), training=True)
    var = x.astype(np.float64).var(axis=(0, 2, 3))
    assert rel(1 / np.sqrt(var + layer.eps), layer.saved[1]) < 1e-6


# -- launches per pass ---------------------------------------------------------------------------------
def passes_counts(layer, x, training=True):
    """(forward ops, backward ops) of the second forward/backward of ``layer`` on ``x``."""
    for _ in range(2):
        with counting() as forward:
            y = kernels.forward(layer, x, training)
        dy = layer.xp.ones_like(y)
        with counting() as backward:
            kernels.backward(layer, dy)
    return forward.ops, backward.ops


@pytest.mark.parametrize("make,shape,expected", [
    # im2col (into the padded buffer, windows out), product; backward: dW product, add, dcols, col2im 2
    (lambda: Conv2D(4, 6, 4, 2, 1, use_bias=False), (2, 4, 8, 8), (3, 5)),
    # col2im (gather, sum), product, as_matrix of an NCHW input (a copy); backward: im2col 2, dW 2, dX 1
    (lambda: Conv2DTranspose(4, 6, 4, 2, 1, use_bias=False), (2, 4, 4, 4), (4, 5)),
    # one-pass sums, statistics (running averages too), normalise; backward: sums, gradients, dx
    (lambda: BatchNorm(4), (2, 4, 5, 5), (3, 3)),
    (lambda: LeakyReLU(0.2), (2, 4, 5, 5), (1, 1)),
], ids=["conv", "convT", "batchnorm", "leaky_relu"])
def test_each_pass_takes_the_kernels_it_is_built_for(standin64, make, shape, expected):
    layer = make().to(standin64.xp).astype(np.float64)
    x = standin64.asarray(np.random.default_rng(9).standard_normal(shape))
    assert passes_counts(layer, x) == expected


def test_a_frozen_batchnorm_backward_skips_its_gradients_kernel(standin64):
    layer = BatchNorm(4).to(standin64.xp).astype(np.float64)
    layer.trainable = False
    x = standin64.asarray(np.random.default_rng(10).standard_normal((2, 4, 5, 5)))
    assert passes_counts(layer, x) == (3, 2)


def test_batchnorm_on_cupy_uses_no_einsum(standin64):
    # CuPy's einsum without cuTENSOR copies both operands and runs a batched product (issue 13, item 3)
    layer = BatchNorm(4).to(standin64.xp).astype(np.float64)
    x = standin64.asarray(np.random.default_rng(11).standard_normal((2, 4, 5, 5)))
    for mode in ("fast", "plain"):
        with kernels.using(mode), counting() as c:
            y = kernels.forward(layer, x)
            kernels.backward(layer, standin64.xp.ones_like(y))
        assert c.by_name["einsum"] == 0, mode


# -- optimizer updates ------------------------------------------------------------------------------------
OPTIMIZERS = {"adam": lambda: Adam(1e-2, 0.5), "nadam": lambda: Nadam(1e-2), "sgd": lambda: SGD(1e-2),
              "sgd_momentum": lambda: SGD(1e-2, momentum=0.9),
              "sgd_nesterov": lambda: SGD(1e-2, momentum=0.9, nesterov=True)}


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_fused_optimizer_update_is_the_plain_update_bit_for_bit(cupy_standin, make):
    backend = get_backend("cupy")                   # float32, as in training
    rng = np.random.default_rng(12)
    shapes = [(4, 5), (30,), (30,), (3, 2, 2, 2)]   # two of one shape: one kernel for both
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]

    def train():
        params, opt = [backend.asarray(p) for p in start], make()
        for step_grads in grads:
            opt.step([(f"p{i}", p, backend.asarray(g)) for i, (p, g) in enumerate(zip(params, step_grads))])
        state = {key: {slot: to_numpy(a) for slot, a in slots.items()} for key, slots in opt.state.items()}
        return [to_numpy(p) for p in params], state

    with kernels.using("plain"):
        plain_params, plain_state = train()
    fast_params, fast_state = train()
    for a, b in zip(plain_params, fast_params):
        np.testing.assert_array_equal(a, b)
    for key in plain_state:
        for slot in plain_state[key]:
            np.testing.assert_array_equal(plain_state[key][slot], fast_state[key][slot])
    assert not np.array_equal(plain_params[0], start[0])


def test_parameters_of_one_shape_are_updated_by_one_kernel(standin64):
    xp = standin64.xp
    params = [(f"p{i}", xp.ones(s), xp.ones(s)) for i, s in enumerate([(8,), (8,), (3, 4), (8,)])]
    opt = Adam()
    opt.step(params)                                # creates the moments
    with counting() as c:
        opt.step(params)
    assert c.ops == 2                               # the three (8,) parameters, then the (3, 4) one


@pytest.mark.skipif(not REAL_CUPY, reason="CuPy with a GPU is not available here")
@pytest.mark.cupy
def test_fused_adam_on_a_gpu_matches_the_plain_update():
    import cupy
    backend = get_backend("cupy")
    rng = np.random.default_rng(13)
    p0, g = rng.standard_normal((64, 33)).astype(np.float32), rng.standard_normal((64, 33)).astype(np.float32)
    out = []
    for mode in ("plain", "fast"):
        p, opt = backend.asarray(p0), Adam(1e-2)
        with kernels.using(mode):
            for _ in range(3):
                opt.step([("w", p, backend.asarray(g))])
        out.append(cupy.asnumpy(p))
    # nvcc may contract a*b + c into one fused multiply-add: float32 rounding, ~1e-7 relative
    assert rel(out[0] - p0, out[1] - p0) < 1e-5


# -- a whole DCGAN step -------------------------------------------------------------------------------------
def test_a_dcgan_training_step_with_cupy_passes_equals_the_plain_one(cupy64):
    def train():
        G = dcgan64_generator(8, 4, seed=0).to(cupy64)
        D = dcgan64_discriminator(4, seed=1).to(cupy64)
        trainer = StackedGANTrainer(G, D, Adam(2e-4, 0.5), Adam(2e-4, 0.5), latent_dim=8, backend=cupy64,
                                    seed=0)
        real = cupy64.asarray(np.random.default_rng(14).uniform(-1, 1, (2, 3, 64, 64)))
        losses = [trainer.train_step(real).as_floats() for _ in range(2)]
        state = {k: to_numpy(v) for model in (G, D) for k, v in model.state_dict().items()}
        return losses, state

    with kernels.using("plain"):
        plain_losses, plain_state = train()
    fast_losses, fast_state = train()
    for a, b in zip(plain_losses, fast_losses):
        for key in a:
            assert abs(a[key] - b[key]) <= TOL * max(abs(a[key]), 1.0), key
    # weights and running averages: Adam's step keeps the gradients' relative rounding (~1e-15)
    for k in plain_state:
        assert np.abs(plain_state[k] - fast_state[k]).max() < 1e-12, k
