"""Run a script as ``python SCRIPT ARGS`` would, recording every file it opens for writing.

    mpiexec -n 2 python tests/mpi_scripts/record_writes.py LOG_DIR SCRIPT ARGS...

Each rank writes LOG_DIR/writes_rank<r>.json: the paths this process opened for writing, created
a folder at or renamed onto (Python's audit events, so NumPy's, Pillow's and matplotlib's writes
count too).  tests/test_distributed.py reads them to check that rank 0 alone writes a run's files.
"""
from __future__ import annotations

import atexit
import json
import os
import runpy
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def main():
    log_dir, script, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    rank = os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0"))
    written: list[str] = []

    def hook(event, event_args):
        if event == "open":
            path, mode, flags = event_args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS)
            if writing and isinstance(path, (str, bytes, os.PathLike)):
                written.append(os.path.abspath(os.fsdecode(path)))
        elif event in ("os.rename", "os.replace"):
            written.append(os.path.abspath(os.fsdecode(event_args[1])))
        elif event == "os.mkdir":
            written.append(os.path.abspath(os.fsdecode(event_args[0])))

    def save():
        with open(os.path.join(log_dir, f"writes_rank{rank}.json"), "w") as f:
            json.dump(sorted(set(written)), f)

    atexit.register(save)       # registered before mpi4py's, so it runs after MPI has finalized
    sys.argv = [script, *args]
    sys.addaudithook(hook)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
