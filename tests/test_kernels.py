"""tinygan.kernels: every primitive equals the reference loops, every fast layer pass equals the
layer's own code, and the switch between them does what it says.

The comparisons run in float64.  Copies (im2col) must agree exactly.  Everything else adds the
same terms in another order (col2im's overlapping windows, the chunked weight gradients,
BatchNorm's per-feature sums): float64 rounding, ~1e-16 relative per operation and below 1e-14
after a layer.  1e-12 leaves that margin and is still ten orders of magnitude below a wrong
index, a missing term or a dropped chunk (errors of order 1).
"""
import numpy as np
import pytest
from layer_cases import LAYER_CASES, layer_case

from tinygan import kernels
from tinygan.backend import get_backend
from tinygan.gan.stacked import StackedGANTrainer
from tinygan.gradcheck import check_layer_gradients
from tinygan.kernels import numpy_passes, threads
from tinygan.kernels.fast_im2col import col2im_phases, im2col_strided
from tinygan.kernels.im2col import col2im, im2col
from tinygan.kernels.reference import col2im_loops, im2col_loops
from tinygan.layers import Conv2D, Dense, LeakyReLU
from tinygan.models.dcgan import dcgan64_discriminator, dcgan64_generator
from tinygan.optimizers import SGD, Adam, Nadam
from tinygan.sequential import Sequential

TOL = 1e-12
NUMPY64 = get_backend("numpy", dtype=np.float64)

# (N, C, H, W, kernel, stride, padding): the DCGAN's 4/2/1, odd sizes, stride 3, a kernel that
# is not a multiple of the stride, windows that lie mostly in the padding, a 1x1 image.
PRIMITIVE_CASES = [(2, 3, 8, 8, 4, 2, 1), (3, 2, 9, 7, 3, 2, 0), (2, 4, 6, 5, 2, 3, 1),
                   (1, 2, 5, 5, 5, 1, 2), (2, 3, 7, 6, 3, 2, 1), (2, 2, 1, 1, 4, 1, 3)]


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-300))


@pytest.fixture
def many_chunks(monkeypatch):
    """Fast passes cut even these tiny batches into one-image chunks and hand every job to the
    worker threads; ``many_chunks(n)`` sets the number of workers."""
    monkeypatch.setattr(numpy_passes, "_CHUNK_ELEMENTS", 1)
    monkeypatch.setattr(numpy_passes, "_MIN_CHUNK_COLUMNS", 1)
    monkeypatch.setattr(threads, "MIN_PARALLEL_SIZE", 0)
    before = threads.num_threads()
    yield threads.set_num_threads
    threads.set_num_threads(before)


# -- primitives ------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,c,h,w,k,s,p", PRIMITIVE_CASES)
def test_im2col_plain_and_strided_equal_the_loops(n, c, h, w, k, s, p):
    x = np.random.default_rng(0).standard_normal((n, c, h, w))
    expected = im2col_loops(x, k, k, s, p)
    np.testing.assert_array_equal(im2col(x, k, k, s, p), expected)        # copies: exact
    np.testing.assert_array_equal(im2col_strided(x, k, k, s, p), expected)


@pytest.mark.parametrize("n,c,h,w,k,s,p", PRIMITIVE_CASES)
def test_col2im_plain_and_phases_equal_the_loops(n, c, h, w, k, s, p):
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    cols = np.random.default_rng(1).standard_normal((c * k * k, n * ho * wo))
    expected = col2im_loops(cols, (n, c, h, w), k, k, s, p)
    assert rel(expected, col2im(cols, (n, c, h, w), k, k, s, p)) < TOL
    assert rel(expected, col2im_phases(cols, (n, c, h, w), k, k, s, p)) < TOL


def test_strided_im2col_writes_into_a_column_block_of_a_larger_matrix():
    x = np.random.default_rng(2).standard_normal((3, 2, 6, 6))
    whole = np.zeros((2 * 16, 3 * 9 + 5))
    im2col_strided(x, 4, 4, 2, 1, out=whole[:, 5:])
    np.testing.assert_array_equal(whole[:, 5:], im2col(x, 4, 4, 2, 1))
    assert not whole[:, :5].any()


# -- fast layer passes against the layers' own code ---------------------------------------------------
FAST_CASES = sorted(name for name, (make, _, _) in LAYER_CASES.items()
                    if type(make()) in numpy_passes.PASSES)


def test_every_fast_pass_has_cases():
    assert {type(LAYER_CASES[name][0]()) for name in FAST_CASES} == set(numpy_passes.PASSES)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("case", FAST_CASES)
def test_fast_pass_equals_the_layers_own_code(many_chunks, case, workers):
    many_chunks(workers)
    run = layer_case(*LAYER_CASES[case])
    with kernels.using("plain"):
        plain = run(NUMPY64)
    fast = run(NUMPY64)
    for key in plain:
        assert rel(plain[key], fast[key]) < TOL if plain[key].any() else not fast[key].any(), key


@pytest.mark.parametrize("case", ["conv_k3s2p0_odd", "convT_k3s2p1_outpad1", "batchnorm_images_train",
                                  "batchnorm_images_eval", "leaky_relu"])
def test_fast_and_plain_passes_mix_and_both_accumulate(many_chunks, case):
    """A fast forward leaves the same ``saved`` state as the plain one, so the plain backward may
    follow it; and two backward passes, plain or fast, add up to twice one plain backward."""
    many_chunks(2)
    make, shape, training = LAYER_CASES[case]
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    reference = make().astype(np.float64)
    y = reference.forward(x, training)
    dy = rng.standard_normal(y.shape)
    dx = reference.backward(dy)
    layer = make().astype(np.float64)
    kernels.forward(layer, x, training)
    assert len(reference.saved) == len(layer.saved)
    for a, b in zip(reference.saved, layer.saved):        # arrays, shapes and flags
        float_array = isinstance(a, np.ndarray) and a.dtype.kind == "f"
        assert rel(a, b) < TOL if float_array else np.array_equal(a, b)
    for backward in (layer.backward, lambda g: kernels.backward(layer, g)):
        layer.zero_grad()
        assert rel(dx, backward(dy)) < TOL
        backward(dy)
        for k in reference.grads:
            assert rel(2 * reference.grads[k], layer.grads[k]) < TOL, k


@pytest.mark.parametrize("case", ["conv_k3s2p0_odd", "convT_k3s2p1_outpad1", "batchnorm_images_train"])
def test_fast_passes_on_two_workers_match_central_differences(many_chunks, case):
    many_chunks(2)

    class ThroughKernels:
        """The layer, run as Sequential runs it."""
        def __init__(self, layer):
            self.layer, self.params, self.grads = layer, layer.params, layer.grads

        def forward(self, x, training=True):
            return kernels.forward(self.layer, x, training)

        def backward(self, grad):
            return kernels.backward(self.layer, grad)

        def zero_grad(self):
            self.layer.zero_grad()

    make, shape, _ = LAYER_CASES[case]
    x = np.random.default_rng(4).standard_normal(shape) * 0.1     # BatchNorm: see test_batchnorm
    # the 1e-6 of the plain layers' gradient checks (float64 central differences, see test_conv)
    assert max(check_layer_gradients(ThroughKernels(make().astype(np.float64)), x).values()) < 1e-6


def test_dcgan_training_step_is_the_same_with_fast_and_plain_kernels(many_chunks):
    many_chunks(2)

    def train():
        G = dcgan64_generator(8, 4, seed=0).astype(np.float64)
        D = dcgan64_discriminator(4, seed=1).astype(np.float64)
        trainer = StackedGANTrainer(G, D, Adam(2e-4, 0.5), Adam(2e-4, 0.5), latent_dim=8,
                                    backend=NUMPY64, seed=0)
        real = np.random.default_rng(5).uniform(-1, 1, (2, 3, 64, 64))
        losses = [trainer.train_step(real).as_floats() for _ in range(2)]
        return losses, {k: p.copy() for model in (G, D) for k, p, _ in model.parameters()}

    with kernels.using("plain"):
        plain_losses, plain_params = train()
    fast_losses, fast_params = train()
    for a, b in zip(plain_losses, fast_losses):
        for key in a:
            assert abs(a[key] - b[key]) <= TOL * abs(a[key]), key
    # Adam's step divides by sqrt(v): a parameter's change keeps the gradient's relative
    # rounding (~1e-15), and the weights themselves are O(0.02-1)
    for k in plain_params:
        assert np.abs(plain_params[k] - fast_params[k]).max() < 1e-12, k


@pytest.mark.parametrize("make", [lambda: Adam(1e-2), lambda: Nadam(1e-2),
                                  lambda: SGD(1e-2, momentum=0.9, nesterov=True)],
                         ids=["adam", "nadam", "sgd_nesterov"])
def test_fast_optimizer_update_in_pieces_is_the_plain_update_bit_for_bit(many_chunks, monkeypatch, make):
    many_chunks(2)
    monkeypatch.setattr(numpy_passes, "_PIECE", 7)            # cut every parameter into pieces
    rng = np.random.default_rng(6)
    shapes = [(4, 5), (30,), (3, 2, 2, 2)]
    start = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]

    def train():
        params, opt = [p.copy() for p in start], make()
        for step_grads in grads:
            opt.step([(f"p{i}", p, g) for i, (p, g) in enumerate(zip(params, step_grads))])
        return params, opt.state

    with kernels.using("plain"):
        plain_params, plain_state = train()
    fast_params, fast_state = train()
    for a, b in zip(plain_params, fast_params):
        np.testing.assert_array_equal(a, b)       # elementwise: the same operations, bit for bit
    for key in plain_state:
        for slot in plain_state[key]:
            np.testing.assert_array_equal(plain_state[key][slot], fast_state[key][slot])
    assert not np.array_equal(plain_params[0], start[0])


# -- the switch ----------------------------------------------------------------------------------------
class Recorded(Exception):
    pass


def test_sequential_uses_the_fast_pass_of_the_exact_type_only_when_fast(monkeypatch):
    def record(layer, *args):
        raise Recorded(type(layer).__name__)

    monkeypatch.setitem(numpy_passes.PASSES, Dense, (record, record))

    class MyDense(Dense):                    # a subclass runs its own code
        pass

    x = np.ones((2, 3), np.float32)
    with pytest.raises(Recorded, match="Dense"):
        Sequential([Dense(3, 2)]).forward(x)
    Sequential([MyDense(3, 2)]).forward(x)
    with kernels.using("plain"):
        y = Sequential([Dense(3, 2)]).forward(x)
    assert y.shape == (2, 2)
    assert kernels.fast_pass(Dense(3, 2), object()) is None    # not NumPy: the CuPy registry, empty


def test_using_restores_the_previous_kernels_even_after_an_error():
    assert kernels.active() == "fast"
    with pytest.raises(KeyError):
        with kernels.using("plain"):
            assert kernels.active() == "plain"
            raise KeyError("an error inside the block")
    assert kernels.active() == "fast"
    with pytest.raises(ValueError, match="fast.*plain.*'quick'"):
        kernels.use("quick")


def test_environment_variable_selects_the_kernels(monkeypatch):
    monkeypatch.setenv("TINYGAN_KERNELS", "plain")
    assert kernels._mode_from_environment() == "plain"
    monkeypatch.setenv("TINYGAN_KERNELS", "turbo")
    with pytest.raises(ValueError, match="TINYGAN_KERNELS.*'turbo'"):
        kernels._mode_from_environment()


def test_fast_leaky_relu_above_slope_one_is_still_leaky_relu():
    x = np.array([[-2.0, 3.0]])
    np.testing.assert_array_equal(kernels.forward(LeakyReLU(1.5), x), [[-3.0, 3.0]])


def test_fast_conv_keeps_the_layers_shape_errors():
    with pytest.raises(Exception, match="conv_x.*smaller than the 4x4 kernel"):
        kernels.forward(Conv2D(1, 1, 4, name="conv_x"), np.zeros((1, 1, 2, 2)))
