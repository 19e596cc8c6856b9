"""Layer cases shared by the tests that run one layer twice and compare: across backends
(test_backend_parity.py) and between the fast kernels and the layers' own code (test_kernels.py).

``LAYER_CASES[name] = (make, x_shape, training)``; ``layer_case(make, x_shape, training)`` turns
one into ``run(backend) -> {"y", "dx", "dW", ...}`` from fixed seeds.
"""
import numpy as np

from tinygan import kernels
from tinygan.layers import BatchNorm, Conv2D, Conv2DTranspose, Dense, LeakyReLU, ReLU, Sigmoid, Tanh


def layer_case(make, x_shape, training=True, seed=0):
    """A run(backend) for one layer as Sequential runs it (through tinygan.kernels): forward,
    backward of a fixed random gradient; returns y, dx and every parameter gradient."""
    def run(backend):
        layer = make()
        layer.to(backend.xp).astype(backend.dtype)
        rng = np.random.default_rng(seed)
        x = backend.asarray(rng.standard_normal(x_shape))
        y = kernels.forward(layer, x, training)
        dy = backend.asarray(rng.standard_normal(tuple(y.shape)))
        layer.zero_grad()
        dx = kernels.backward(layer, dy)
        return {"y": y, "dx": dx, **{f"d{k}": g.copy() for k, g in layer.grads.items()}}
    return run


def _rng(seed=1):
    return np.random.default_rng(seed)


def _frozen(layer):
    layer.trainable = False
    return layer


LAYER_CASES = {
    # the DCGAN's own shapes, small batch: stride 2, padding 1, kernel 4 ...
    "conv_k4s2p1": (lambda: Conv2D(3, 8, 4, 2, 1, rng=_rng(), init="he"), (4, 3, 16, 16), True),
    "convT_k4s2p1": (lambda: Conv2DTranspose(8, 3, 4, 2, 1, rng=_rng(), init="he"), (4, 8, 8, 8), True),
    "convT_1x1_to_4x4": (lambda: Conv2DTranspose(16, 8, 4, 1, 0, use_bias=False, rng=_rng(), init="he"),
                         (5, 16, 1, 1), True),
    "conv_4x4_to_1x1": (lambda: Conv2D(8, 1, 4, 1, 0, use_bias=False, rng=_rng(), init="he"),
                        (5, 8, 4, 4), True),
    # ... and the awkward ones: odd sizes, stride 3, kernel not a multiple of the stride.
    "conv_k3s2p0_odd": (lambda: Conv2D(2, 5, 3, 2, 0, rng=_rng(), init="he"), (3, 2, 9, 7), True),
    "conv_k2s3p1": (lambda: Conv2D(4, 3, 2, 3, 1, rng=_rng(), init="he"), (2, 4, 6, 5), True),
    "convT_k3s2p1_outpad1": (lambda: Conv2DTranspose(2, 3, 3, 2, 1, 1, rng=_rng(), init="he"),
                             (2, 2, 3, 4), True),
    "batchnorm_images_train": (lambda: BatchNorm(6), (4, 6, 5, 5), True),
    "batchnorm_dense_train": (lambda: BatchNorm(7), (9, 7), True),
    "batchnorm_images_eval": (lambda: BatchNorm(6), (4, 6, 5, 5), False),
    "dense": (lambda: Dense(12, 5, rng=_rng()), (6, 12), True),
    "relu": (lambda: ReLU(), (3, 4, 5, 5), True),
    "leaky_relu": (lambda: LeakyReLU(0.2), (3, 4, 5, 5), True),
    "leaky_relu_above_1": (lambda: LeakyReLU(1.5), (3, 4, 5, 5), True),
    "tanh": (lambda: Tanh(), (3, 4, 5, 5), True),
    "sigmoid": (lambda: Sigmoid(), (3, 4, 5, 5), True),
    # frozen: input gradient only (the parameter gradients stay zero)
    "conv_k4s2p1_frozen": (lambda: _frozen(Conv2D(3, 8, 4, 2, 1, rng=_rng(), init="he")),
                           (4, 3, 16, 16), True),
    "convT_k4s2p1_frozen": (lambda: _frozen(Conv2DTranspose(8, 3, 4, 2, 1, rng=_rng(), init="he")),
                            (4, 8, 8, 8), True),
    "batchnorm_images_train_frozen": (lambda: _frozen(BatchNorm(6)), (4, 6, 5, 5), True),
}
