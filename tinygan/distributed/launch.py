"""Starting N ranks of a Python script with mpiexec, from Python (lessons, benchmarks, tests).

Users launch runs themselves (``mpiexec -n 4 python examples/celeba_dcgan.py ...``); this is for
code that starts a small MPI run and reads its results.  A run that outlives ``timeout`` is
killed with all its ranks, so a rank stuck in a collective fails loudly instead of hanging.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from .communicator import mpi_available


def find_mpiexec() -> str | None:
    """The mpiexec that belongs to this Python's MPI: the one installed beside the interpreter
    (the mpich wheel puts it there), else the first on PATH; None without one."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("mpiexec")


def why_mpi_cannot_run() -> str | None:
    """None when ``mpiexec`` can start ranks that import mpi4py; else the reason, for a skip or
    a message."""
    if not mpi_available():
        return 'mpi4py is not installed (pip install -e ".[mpi]")'
    if find_mpiexec() is None:
        return "no mpiexec found beside this Python or on PATH (pip install mpich)"
    return None


def run_ranks(n: int, args, timeout: float = 120.0, env: dict | None = None,
              cwd=None) -> subprocess.CompletedProcess:
    """``mpiexec -n n python *args``, output captured as text.

    ``env`` adds to (and overrides) this process's environment.  After ``timeout`` seconds the
    launcher and every rank are killed and ``subprocess.TimeoutExpired`` is raised."""
    mpiexec = find_mpiexec()
    if mpiexec is None:
        raise FileNotFoundError("no mpiexec found beside this Python or on PATH (pip install mpich)")
    full_env = {**os.environ, **(env or {})}
    # stdin: mpiexec forwards it to rank 0; from a terminal in the background that would stop us.
    # start_new_session: its own process group, so a timeout kills the launcher and every rank.
    proc = subprocess.Popen([mpiexec, "-n", str(int(n)), sys.executable, *map(str, args)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=full_env, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(proc.args, timeout, output=out, stderr=err) from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
