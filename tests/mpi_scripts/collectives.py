"""Each collective of MPICommunicator on known values, for tests/test_distributed.py.

    mpiexec -n 2 python tests/mpi_scripts/collectives.py OUT_DIR

Rank r fills its arrays with values that depend on r, calls each collective, and writes what it
got to OUT_DIR/rank<r>.npz; the test checks the numbers.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))     # tinygan from this checkout

import numpy as np  # noqa: E402

from tinygan.distributed import from_environment  # noqa: E402
from tinygan.layers import BatchNorm, Dense  # noqa: E402
from tinygan.sequential import Sequential  # noqa: E402


def rank_arrays(rank):
    """Three float32 arrays of different shapes and one float64 one, different on every rank."""
    rng = np.random.default_rng(100 + rank)
    return [rng.standard_normal(s).astype(d) for s, d in
            [((3, 4), np.float32), ((5,), np.float32), ((2, 1, 3), np.float32), ((4,), np.float64)]]


def main(out):
    comm = from_environment()
    results = {}

    arrays = rank_arrays(comm.rank)
    comm.average_arrays(arrays)
    results.update({f"mean{i}": a for i, a in enumerate(arrays)})

    params = [(f"p{i}", np.zeros_like(a), a) for i, a in enumerate(rank_arrays(comm.rank))]
    comm.average_gradients(params)
    results.update({f"grad_mean{i}": g for i, (_, _, g) in enumerate(params)})

    model = Sequential([Dense(3, 2, rng=np.random.default_rng(comm.rank), name="dense"),
                        BatchNorm(2, name="bn")])
    model.layers[1].buffers["running_mean"][...] = comm.rank + 1.0
    comm.broadcast_parameters(model)
    results.update({f"model/{k}": v for k, v in model.state_dict().items()})

    results["object"] = np.array(comm.broadcast_object({"from": comm.rank})["from"])
    results["gathered"] = np.array(comm.allgather_object(comm.rank * 10))
    results["any_none"] = np.array(comm.any_rank(False))
    results["any_last"] = np.array(comm.any_rank(comm.rank == comm.size - 1))
    results["shard"] = comm.shard(np.arange(4 * comm.size))
    try:
        comm.run_on_root(int, "not a number")
        results["root_error"] = np.array("")
    except ValueError as e:
        results["root_error"] = np.array(str(e))
    results["root_result"] = np.array(comm.run_on_root(lambda: comm.rank + 42))
    np.savez(Path(out) / f"rank{comm.rank}.npz", **results)


if __name__ == "__main__":
    main(sys.argv[1])
