"""The lab (python -m tinygan.lab): its JSON API against a real server on 127.0.0.1, in a thread.

Each test talks HTTP to the server the page talks to; where a test checks what training did, it
also looks at the session behind the server (the trainer, the networks' weights).  The whole
file takes a few seconds on 2 CPU cores: the default model (lesson 8's) trains ~400 steps/s.
"""
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tinygan.lab import datasets
from tinygan.lab.server import MAX_BODY, LabServer
from tinygan.lab.session import N_SHOWN, History
from tinygan.lab.settings import DEFAULTS, PRESETS
from tinygan.optimizers import Nadam

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server():
    srv = LabServer(("127.0.0.1", 0))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(server, method, path, body=None, headers=None, raw=None):
    """(status, parsed JSON or raw bytes, headers); ``body`` is sent as JSON, ``raw`` as is."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    hdrs = {"Content-Type": "application/json"} if body is not None or raw is not None else {}
    hdrs.update(headers or {})
    data = json.dumps(body).encode() if body is not None else raw
    conn.request(method, path, body=data, headers=hdrs)
    res = conn.getresponse()
    payload = res.read()
    conn.close()
    if res.getheader("Content-Type", "").startswith("application/json"):
        payload = json.loads(payload)
    return res.status, payload, res


def post(server, path, body):
    status, data, _ = request(server, "POST", path, body)
    assert status == 200, data
    return data


@pytest.fixture
def lab(server):
    """The server, reset to the defaults."""
    post(server, "/api/reset", DEFAULTS)
    return server


# -- state, step, reset ------------------------------------------------------------------------
def test_state_is_json_with_every_panel(lab):
    status, s, res = request(lab, "GET", "/api/state")
    assert status == 200 and res.getheader("Content-Type") == "application/json"
    assert s["step"] == 0 and s["settings"] == DEFAULTS
    assert np.array(s["real"]).shape == np.array(s["fake"]).shape == (N_SHOWN, 2)
    heat = np.array(s["heat"]["values"])
    assert heat.shape == (s["heat"]["n"] ** 2,) and ((heat > 0) & (heat < 1)).all()   # sigmoid outputs
    lines = np.array(s["mapping"]["lines"])
    assert lines.ndim == 3 and lines.shape[2] == 2
    assert s["modes"]["total"] == 8 and 0 <= s["modes"]["covered"] <= 8
    assert set(s["computed_by"]) == {"points", "heat", "mapping", "losses", "modes"}
    assert "dense_discriminator" in s["computed_by"]["heat"]


def test_step_trains_and_moves_the_generated_points(lab):
    before = request(lab, "GET", "/api/state")[1]
    s = post(lab, "/api/step", {"steps": 20})
    assert s["step"] == 20 and s["losses"]["step"] == list(range(1, 21))
    moved = np.linalg.norm(np.array(s["fake"]) - np.array(before["fake"]), axis=1)
    assert moved.mean() > 1e-3                       # 20 Adam steps of lr 1e-3 move every point
    assert s["readout"]["d_loss"] == pytest.approx(s["losses"]["d_loss"][-1], abs=1e-4)  # 4 decimals sent


def test_reset_with_the_same_seed_repeats_the_run_and_another_seed_does_not(lab):
    runs = []
    for seed in (3, 3, 4):
        post(lab, "/api/reset", {"seed": seed})
        runs.append(np.array(post(lab, "/api/step", {"steps": 15})["fake"]))
    assert np.array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_live_settings_reach_the_trainer(lab):
    s = post(lab, "/api/settings", {"lr_g": 0.005, "optimizer": "nadam", "g_loss": "saturating"})
    t = lab.session.trainer
    assert isinstance(t.g_opt, Nadam) and t.g_opt.lr == 0.005 and t.d_opt.lr == DEFAULTS["lr_d"]
    assert t.g_loss_kind == "saturating" and s["settings"]["optimizer"] == "nadam"
    g_loss = post(lab, "/api/step", {"steps": 1})["readout"]["g_loss"]
    assert g_loss < 0                                 # log(1 - D(G(z))) of a probability < 1


def test_freeze_d_keeps_d_weights_while_g_learns(lab):
    post(lab, "/api/settings", {"freeze_d": True})
    session = lab.session
    d_before = [p.copy() for _, p, _ in session.D.parameters()]
    g_before = [p.copy() for _, p, _ in session.G.parameters()]
    s = post(lab, "/api/step", {"steps": 5})
    assert all(np.array_equal(a, p) for a, (_, p, _) in zip(d_before, session.D.parameters()))
    assert not all(np.array_equal(a, p) for a, (_, p, _) in zip(g_before, session.G.parameters()))
    assert "D frozen" in s["computed_by"]["losses"] and s["readout"]["d_loss"] > 0
    post(lab, "/api/settings", {"freeze_d": False})
    post(lab, "/api/step", {"steps": 1})
    assert not all(np.array_equal(a, p) for a, (_, p, _) in zip(d_before, session.D.parameters()))


def test_drawn_points_become_the_data(lab):
    points = [[-2.0, 2.0]] * 5 + [[1.5, -2.0]] * 5          # two spots, clicked five times each
    s = post(lab, "/api/reset", {"dataset": "drawn", "points": points})
    real = np.array(s["real"])
    near = np.min(np.linalg.norm(real[:, None] - np.array(points)[None], axis=2), axis=1)
    assert near.max() < 6 * datasets.STD                 # every sample is a drawn point plus noise
    assert s["modes"]["total"] == 2                       # k-means finds no more modes than spots


def test_diverging_run_is_reported_and_stops(lab):
    post(lab, "/api/reset", {"optimizer": "sgd", "lr_g": 1.0, "lr_d": 1.0})
    s = post(lab, "/api/step", {"steps": 200})           # plain SGD at lr 1 overflows within ~10 steps
    assert s["diverged"] and "lower the learning rates" in s["diverged"]
    assert post(lab, "/api/step", {"steps": 5})["step"] == s["step"]


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path, body, names", [
    ("/api/settings", {"lr_g": -1}, "lr_g"),
    ("/api/settings", {"lr_g": "abc"}, "lr_g"),
    ("/api/settings", {"lr_d": 1e9}, "lr_d"),
    ("/api/settings", {"lr_d": True}, "lr_d"),
    ("/api/settings", {"optimizer": "rmsprop"}, "optimizer"),
    ("/api/settings", {"g_loss": "wasserstein"}, "g_loss"),
    ("/api/settings", {"freeze_d": "yes"}, "freeze_d"),
    ("/api/settings", {"seed": 1}, "reset"),                  # a reset-only setting
    ("/api/settings", {"learning_rate": 0.1}, "learning_rate"),
    ("/api/settings", [1, 2], "JSON object"),
    ("/api/reset", {"seed": -1}, "seed"),
    ("/api/reset", {"seed": 1.5}, "seed"),
    ("/api/reset", {"width": 0}, "width"),
    ("/api/reset", {"d_head_start": 10 ** 6}, "d_head_start"),
    ("/api/reset", {"dataset": "circle"}, "dataset"),
    ("/api/reset", {"dataset": "drawn"}, "points"),
    ("/api/reset", {"dataset": "drawn", "points": [[0, 0], [9, 9]]}, "points[1]"),
    ("/api/reset", {"dataset": "drawn", "points": [[0, 0], "x"]}, "points[1]"),
    ("/api/step", {"steps": 0}, "steps"),
    ("/api/step", {"steps": 10 ** 6}, "steps"),
    ("/api/step", {"steps": "5"}, "steps"),
])
def test_bad_value_gets_400_naming_it_and_changes_nothing(lab, path, body, names):
    post(lab, "/api/step", {"steps": 2})
    status, data, _ = request(lab, "POST", path, body)
    assert status == 400 and names in data["error"]
    s = request(lab, "GET", "/api/state")[1]
    assert s["step"] == 2 and s["settings"] == DEFAULTS


def test_invalid_json_gets_400(lab):
    status, data, _ = request(lab, "POST", "/api/step", raw=b"{steps: 1")
    assert status == 400 and "not valid JSON" in data["error"]


def test_oversized_body_gets_413_unread(lab):
    status, data, res = request(lab, "POST", "/api/reset", raw=b"x" * (MAX_BODY + 1))
    assert status == 413 and str(MAX_BODY) in data["error"]
    assert res.getheader("Connection") == "close"          # the unread bytes are not a next request


def test_non_json_body_gets_415(lab):
    status, data, _ = request(lab, "POST", "/api/step", raw=b"steps=1",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and "application/json" in data["error"]


# -- what is served ----------------------------------------------------------------------------
def test_page_and_its_two_files_are_served_with_a_strict_content_policy(lab):
    status, page, res = request(lab, "GET", "/")
    assert status == 200 and b'<script src="/lab.js"' in page
    assert "connect-src 'self'" in res.getheader("Content-Security-Policy")
    for path, ctype in (("/lab.js", "text/javascript"), ("/lab.css", "text/css")):
        status, body, res = request(lab, "GET", path)
        assert status == 200 and res.getheader("Content-Type").startswith(ctype) and len(body) > 500


def test_unknown_path_gets_404_json(lab):
    status, data, _ = request(lab, "GET", "/api/secrets")
    assert status == 404 and "no such page" in data["error"]


@pytest.mark.parametrize("path", ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/static/lab.js",
                                  "/lab.js/../server.py", "/static/../server.py", "//etc/passwd",
                                  "/..%2fserver.py"])
def test_path_traversal_is_refused(lab, path):
    status, data, _ = request(lab, "GET", path)
    assert status == 404 and isinstance(data, dict)       # a JSON error, never a file


def test_wrong_method_gets_405(lab):
    assert request(lab, "GET", "/api/step")[0] == 405
    assert request(lab, "DELETE", "/api/state")[0] == 405


def test_request_for_another_host_is_refused(lab):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    status, data, _ = request(lab, "GET", "/api/state", headers={"Host": "evil.example:80"})
    assert status == 403 and "evil.example" in data["error"]


def test_post_from_another_origin_is_refused(lab):
    status, _, _ = request(lab, "POST", "/api/step", {"steps": 1}, headers={"Origin": "http://evil.example"})
    assert status == 403
    assert request(lab, "GET", "/api/state")[1]["step"] == 0


# -- the pieces behind the panels --------------------------------------------------------------
@pytest.mark.parametrize("name", ["ring", "spiral", "moons"])
def test_real_samples_cover_every_mode_and_a_point_mass_at_most_one(name):
    shape = datasets.make_shape(name)
    real = shape.sample(np.random.default_rng(0), 1000)
    cov = datasets.coverage(real, shape)
    # 3 std per coordinate holds ~99% of 2-D Gaussian noise around a point; near a curve more
    assert cov.covered == 8 and cov.on_data > 0.95
    assert datasets.coverage(np.repeat(real[:1], 1000, axis=0), shape).covered == 1


def test_history_halves_its_rows_and_keeps_the_mean():
    h = History(("x",), keep=10)
    for step in range(1, 101):
        h.add(step, float(step))
    d = h.as_dict()
    assert len(d["x"]) < 20 and d["step"][-1] <= 100
    # each row is the mean of the steps it covers: the means of 1..96 are 48.5 on average
    assert np.mean(d["x"]) == pytest.approx(np.mean(np.arange(1, d["step"][-1] + 1)))


# -- the presets show what they say ------------------------------------------------------------
def test_mode_collapse_preset_covers_at_most_two_modes(lab):
    post(lab, "/api/reset", PRESETS["mode_collapse"]["settings"])
    s = post(lab, "/api/step", {"steps": 500})
    assert s["modes"]["covered"] <= 2          # measured: 1 of 8 at step 500 (lesson 8's run 2)


def test_saturating_preset_stalls_until_the_loss_is_switched(lab):
    start = np.array(post(lab, "/api/reset", PRESETS["saturating_stall"]["settings"])["fake"])
    s = post(lab, "/api/step", {"steps": 100})
    assert s["readout"]["d_of_fake"] < 0.01        # D rejects G's points: the flat end of log(1 - D)
    stalled = np.linalg.norm(np.array(s["fake"]) - start, axis=1).mean()
    post(lab, "/api/settings", {"g_loss": "non_saturating"})
    s = post(lab, "/api/step", {"steps": 100})
    moving = np.linalg.norm(np.array(s["fake"]) - start, axis=1).mean()
    # measured: 0.005 in the 100 stalled steps, 2 in the next 100 (the points leave for the ring)
    assert stalled < 0.05 and moving > 0.5


# -- the command -------------------------------------------------------------------------------
def run_lab(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "tinygan.lab", "--no-browser", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_bad_port_is_one_error_line():
    r = run_lab("--port", "99999")
    assert r.returncode == 2 and "error: argument --port" in r.stderr and "Traceback" not in r.stderr


def test_busy_port_is_one_error_line(server):
    r = run_lab("--port", str(server.server_address[1]))
    assert r.returncode == 1 and r.stderr.startswith("error: cannot listen on 127.0.0.1:")
    assert "Traceback" not in r.stderr


def test_command_prints_its_address_serves_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "tinygan.lab", "--no-browser"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("tinygan lab: http://127.0.0.1:")
        port = int(line.split(":")[3].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/api/options")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0 and "stopped" in out and err == ""
