"""Drawing from a trained generator: the sample grids during training and examples/sample.py."""
from __future__ import annotations


def generate(G, z_host, backend, batch_size: int = 100):
    """G(z) in inference mode, ``batch_size`` noise rows at a time, on ``backend``.

    Inference mode: BatchNorm uses its running averages, so each image depends on its own noise
    only (not on the rest of the batch) and nothing in G changes.
    """
    xp = backend.xp
    return xp.concatenate([G.forward(backend.asarray(z_host[i:i + batch_size]), training=False)
                           for i in range(0, len(z_host), batch_size)])
