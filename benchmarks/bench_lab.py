"""How fast the lab (python -m tinygan.lab) trains and how many frames of state it serves.

    python benchmarks/bench_lab.py                  # the default model, 3 s per measurement
    python benchmarks/bench_lab.py --seconds 10 --steps-per-frame 5 10

Measured against a real lab server on 127.0.0.1 in this process (a thread), over HTTP as the
page talks to it, on the default settings (lesson 8's dense GAN: two hidden layers of 128,
Adam, half batches of 64):

  * training steps/s: POST /api/step {"steps": 100} in a loop (the state is built once per 100
    steps, so this is the training itself), and the same without HTTP (LabSession.train);
  * frames/s: POST /api/step {"steps": k} in a loop -- k training steps plus one full state (1,000
    real and 1,000 generated points, D on a 48 x 48 grid, G's warped noise grid, the curves) as
    JSON -- which is one frame of the page playing with k steps per frame (5 by default); and
    GET /api/state alone (a frame without training).

The issue asks for >= 20 training steps/s and >= 10 frames/s on a 2-core CPU.  The load
average is printed too: the machine may be shared.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time


def timed_loop(fn, seconds: float) -> tuple[int, float]:
    """Call fn() until ``seconds`` have passed; (calls, elapsed seconds)."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n, time.perf_counter() - start


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0, help="length of each measurement")
    p.add_argument("--steps-per-frame", type=int, nargs="+", default=[1, 5, 10])
    args = p.parse_args(argv)

    from tinygan.lab.server import LabServer
    from tinygan.lab.session import LabSession, use_one_core

    use_one_core()                         # as python -m tinygan.lab does
    server = LabServer(("127.0.0.1", 0))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=60)

    def call(method, path, body=None):
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"} if body is not None else {})
        res = conn.getresponse()
        data = res.read()
        assert res.status == 200, data
        return data

    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"on {os.cpu_count()} cores; default model, NumPy, 1 BLAS thread")
    call("POST", "/api/step", {"steps": 20})          # warm-up

    session = LabSession()
    n, dt = timed_loop(lambda: session.train(10), args.seconds)
    print(f"training steps/s, in process (LabSession.train):           {10 * n / dt:7.1f}")
    n, dt = timed_loop(lambda: call("POST", "/api/step", {"steps": 100}), args.seconds)
    print(f"training steps/s, over HTTP (100 steps + 1 state per call): {100 * n / dt:7.1f}")

    size = len(call("GET", "/api/state"))
    n, dt = timed_loop(lambda: call("GET", "/api/state"), args.seconds)
    print(f"frames/s, GET /api/state ({size / 1e3:.0f} kB of JSON):            {n / dt:7.1f}")
    for k in args.steps_per_frame:
        n, dt = timed_loop(lambda k=k: call("POST", "/api/step", {"steps": k}), args.seconds)
        print(f"frames/s playing at {k:2d} steps per frame:                  {n / dt:7.1f}"
              f"   ({k * n / dt:.0f} steps/s)")
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    conn.close()
    server.shutdown()
    server.server_close()


if __name__ == "__main__":
    main()
