// tinygan lab: the page only draws.  Every number comes from the server (tinygan/lab/session.py),
// every setting is checked there; a refused one comes back as HTTP 400 {"error": ...}, shown above.
"use strict";

const $ = (id) => document.getElementById(id);
const COLOR = { real: "#1b7837", fake: "#762a83", d: "#2166ac", g: "#d6604d", grid: "#ddd" };
const LIVE = ["lr_g", "lr_d", "optimizer", "g_loss", "freeze_d"];
const RESET_ONLY = ["dataset", "seed", "width", "d_head_start"];

// What the browser test reads: frames drawn, whether playing, the last state, script errors.
const lab = { frames: 0, playing: false, state: null, options: null, drawn: [], errors: [] };
window.lab = lab;
window.addEventListener("error", (e) => lab.errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => lab.errors.push(String(e.reason)));

// -- talking to the server ---------------------------------------------------------------------
// Shown above the controls: the server's refusal of the user's last change (until a change is
// accepted), else "the server does not answer", else the run's divergence.  Frames never clear
// a refusal: while playing, the next frame comes within milliseconds.
const messages = { refused: "", network: "" };
function showMessages() {
  const text = messages.refused || messages.network || (lab.state && lab.state.diverged) || "";
  $("error").textContent = text;
  $("error").hidden = !text;
}

// ``byUser``: a change the user made (settings, reset): its success clears an earlier refusal.
async function api(method, path, body, byUser = false) {
  let res;
  try {
    res = await fetch(path, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    messages.network = "the lab's server does not answer: is `python -m tinygan.lab` still running?";
    showMessages();
    return null;
  }
  messages.network = "";
  const data = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok) {
    messages.refused = `refused (HTTP ${res.status}): ${data.error}`;
    showMessages();
    return null;
  }
  if (byUser) messages.refused = "";
  return data;
}

// A text field's value: a number where it reads as one, else the text itself, so that the
// server (not the browser) says what is wrong with it.
function fieldValue(id) {
  const el = $(id);
  if (el.type === "checkbox") return el.checked;
  if (el.tagName === "SELECT") return el.value;
  const text = el.value.trim();
  return text !== "" && !isNaN(Number(text)) ? Number(text) : text;
}

function settingsFromControls(keys) {
  const out = {};
  for (const k of keys) out[k] = fieldValue(k);
  return out;
}

function controlsFromSettings(s) {
  for (const k of LIVE.concat(RESET_ONLY)) {
    const el = $(k);
    if (el.type === "checkbox") el.checked = s[k];
    else el.value = s[k];
    el.classList.remove("invalid");
  }
  $("draw-tools").hidden = s.dataset !== "drawn";
}

// -- drawing -----------------------------------------------------------------------------------
function extent() { return lab.options ? lab.options.limits.extent : 3; }

function toPx(canvas, x, y) {
  const e = extent();
  return [((x + e) / (2 * e)) * canvas.width, ((e - y) / (2 * e)) * canvas.height];
}

function dots(ctx, points, color, radius) {
  ctx.fillStyle = color;
  for (const p of points) {
    if (!p || p[0] === null || p[1] === null) continue;
    const [px, py] = toPx(ctx.canvas, p[0], p[1]);
    ctx.fillRect(px - radius, py - radius, 2 * radius, 2 * radius);
  }
}

function clear(ctx) {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, ctx.canvas.width, ctx.canvas.height);
}

function drawPoints(s) {
  const ctx = $("points").getContext("2d");
  clear(ctx);
  ctx.globalAlpha = 0.5;
  dots(ctx, s.real, COLOR.real, 1.5);
  ctx.globalAlpha = 0.6;
  dots(ctx, s.fake, COLOR.fake, 1.5);
  ctx.globalAlpha = 1;
  if (s.settings.dataset === "drawn" || lab.drawn.length) dots(ctx, lab.drawn, "#000", 2);
}

// D(x) from 0 (purple: fake) through 1/2 (white) to 1 (green: real).
function heatColor(v) {
  const lo = [118, 42, 131], mid = [247, 247, 247], hi = [27, 120, 55];
  const [a, b, t] = v < 0.5 ? [lo, mid, v * 2] : [mid, hi, (v - 0.5) * 2];
  return a.map((c, i) => Math.round(c + (b[i] - c) * t));
}

const heatImage = document.createElement("canvas");
function drawHeat(s) {
  const n = s.heat.n, ctx = $("heat").getContext("2d");
  heatImage.width = heatImage.height = n;
  const hctx = heatImage.getContext("2d"), img = hctx.createImageData(n, n);
  s.heat.values.forEach((v, k) => {
    const row = n - 1 - Math.floor(k / n), col = k % n;   // values go up in y, canvas rows down
    const [r, g, b] = heatColor(v === null ? 0.5 : v), o = 4 * (row * n + col);
    img.data.set([r, g, b, 255], o);
  });
  hctx.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(heatImage, 0, 0, ctx.canvas.width, ctx.canvas.height);
  ctx.globalAlpha = 0.35;
  dots(ctx, s.real, "#fff", 1);
  ctx.globalAlpha = 0.8;
  dots(ctx, s.fake, "#222", 1);
  ctx.globalAlpha = 1;
}

function drawMapping(s) {
  const ctx = $("mapping").getContext("2d"), lines = s.mapping.lines, half = lines.length / 2;
  clear(ctx);
  ctx.globalAlpha = 0.25;
  dots(ctx, s.real, "#888", 1);
  ctx.globalAlpha = 1;
  lines.forEach((line, i) => {
    const t = (i % half) / (half - 1);                     // position of the line in the noise grid
    ctx.strokeStyle = i < half ? `hsl(${210 + 60 * t}, 70%, ${35 + 20 * t}%)`
                               : `hsl(${20 + 30 * t}, 85%, ${40 + 15 * t}%)`;
    ctx.lineWidth = 1;
    ctx.beginPath();
    let pen = false;
    for (const p of line) {
      if (p[0] === null || p[1] === null) { pen = false; continue; }
      const [px, py] = toPx(ctx.canvas, p[0], p[1]);
      if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      pen = true;
    }
    ctx.stroke();
  });
}

// A line chart of series {name: [values]} against steps, on [ymin, ymax].
function lineChart(ctx, steps, series, colors, [ymin, ymax], refLine, tick) {
  const W = ctx.canvas.width, H = ctx.canvas.height, L = 34, B = 18, T = 6, R = 8;
  clear(ctx);
  const x0 = steps.length ? steps[0] : 0, x1 = steps.length ? Math.max(steps[steps.length - 1], x0 + 1) : 1;
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y) => T + (1 - (Math.min(Math.max(y, ymin), ymax) - ymin) / (ymax - ymin)) * (H - T - B);
  ctx.strokeStyle = COLOR.grid; ctx.fillStyle = "#666"; ctx.font = "10px sans-serif"; ctx.lineWidth = 1;
  const span = ymax - ymin;
  tick = tick || (span > 8 ? 2 : span > 4 ? 1 : span > 1.5 ? 0.5 : 0.25);
  for (let y = Math.ceil(ymin / tick - 1e-9) * tick; y <= ymax + 1e-9; y += tick) {
    ctx.beginPath(); ctx.moveTo(L, Y(y)); ctx.lineTo(W - R, Y(y)); ctx.stroke();
    ctx.fillText(String(+y.toFixed(2)), 2, Y(y) + 3);
  }
  ctx.fillText(`step ${x0}`, L, H - 4);
  const last = `step ${x1}`;
  ctx.fillText(last, W - R - ctx.measureText(last).width, H - 4);
  if (refLine) {
    ctx.setLineDash([4, 3]); ctx.strokeStyle = "#999";
    ctx.beginPath(); ctx.moveTo(L, Y(refLine.y)); ctx.lineTo(W - R, Y(refLine.y)); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillText(refLine.label, W - R - 4 - ctx.measureText(refLine.label).width, Y(refLine.y) - 4);
  }
  for (const [name, values] of Object.entries(series)) {
    ctx.strokeStyle = colors[name]; ctx.lineWidth = 1.5;
    ctx.beginPath();
    values.forEach((v, i) => {
      if (v === null) return;
      if (i === 0) ctx.moveTo(X(steps[i]), Y(v)); else ctx.lineTo(X(steps[i]), Y(v));
    });
    ctx.stroke();
  }
}

const fmt = (v, d = 3) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));
const sci = (v) => (v === null || v === undefined ? "-" : Number(v).toExponential(1));

function drawLosses(s) {
  const h = s.losses, all = h.d_loss.concat(h.g_loss).filter((v) => v !== null);
  // the saturating G loss, log(1 - D(G(z))), is negative
  const ymax = Math.min(Math.max(1.5, ...all) * 1.05, 8), ymin = Math.max(Math.min(0, ...all) * 1.05, -8);
  lineChart($("losses").getContext("2d"), h.step, { d_loss: h.d_loss, g_loss: h.g_loss },
            { d_loss: COLOR.d, g_loss: COLOR.g }, [ymin, ymax],
            { y: Math.LN2, label: "ln 2: D loss when D(x) = 1/2 everywhere" });
  const r = s.readout;
  $("loss-readout").innerHTML =
    `step <b>${s.step}</b> · <span style="color:${COLOR.d}">D loss <b>${fmt(r.d_loss)}</b></span>` +
    ` · <span style="color:${COLOR.g}">G loss <b>${fmt(r.g_loss)}</b></span>` +
    ` · mean D(G(z)) ${fmt(r.d_of_fake)} · |gradient of G| ${sci(r.g_grad_norm)}` +
    ` · D right on real ${fmt(r.d_acc_real === null ? null : 100 * r.d_acc_real, 0)}%,` +
    ` on fake ${fmt(r.d_acc_fake === null ? null : 100 * r.d_acc_fake, 0)}%`;
}

function drawModes(s) {
  const m = s.modes, ctx = $("modes").getContext("2d"), W = ctx.canvas.width;
  $("modes-count").textContent = `${m.covered} of ${m.total}`;
  $("modes-detail").textContent = `${fmt(100 * m.on_data, 0)}% of G's points on the data`;
  clear(ctx);
  const barH = 70, even = 1 / m.total, top = Math.max(2 * even, ...m.per_mode.map((v) => v || 0));
  const bw = (W - 20) / m.total;
  m.per_mode.forEach((v, i) => {
    const h = ((v || 0) / top) * barH;
    ctx.fillStyle = (v || 0) >= 0.01 ? COLOR.fake : "#ccc";
    ctx.fillRect(10 + i * bw + 2, 4 + barH - h, bw - 4, h);
  });
  ctx.strokeStyle = "#999"; ctx.setLineDash([3, 3]);
  ctx.beginPath(); ctx.moveTo(10, 4 + barH - (even / top) * barH); ctx.lineTo(W - 10, 4 + barH - (even / top) * barH);
  ctx.stroke(); ctx.setLineDash([]);
  const hist = document.createElement("canvas");
  hist.width = W; hist.height = ctx.canvas.height - barH - 10;
  lineChart(hist.getContext("2d"), m.history.step, { covered: m.history.covered }, { covered: COLOR.fake },
            [0, m.total], null, m.total / 2);
  ctx.drawImage(hist, 0, barH + 10);
}

function render(s) {
  lab.state = s;
  showMessages();
  drawPoints(s); drawHeat(s); drawMapping(s); drawLosses(s); drawModes(s);
  for (const k of ["points", "heat", "mapping", "losses", "modes"]) $(`by-${k}`).textContent = s.computed_by[k];
  lab.frames += 1;
  frameTimes.push(performance.now());
  while (frameTimes.length > 1 && frameTimes[0] < performance.now() - 2000) frameTimes.shift();
  const fps = frameTimes.length > 1 ? (frameTimes.length - 1) / ((frameTimes.at(-1) - frameTimes[0]) / 1000) : 0;
  $("status").textContent = `step ${s.step}` + (lab.playing ? ` · ${fps.toFixed(1)} frames/s · ` +
    `${(fps * fieldValue("spf")).toFixed(0)} steps/s` : "");
}
const frameTimes = [];

// -- controls ----------------------------------------------------------------------------------
async function reset(extra = {}) {
  const body = { ...settingsFromControls(LIVE.concat(RESET_ONLY)), ...extra };
  if (body.dataset === "drawn") body.points = lab.drawn.length ? lab.drawn : null;
  const s = await api("POST", "/api/reset", body, true);
  if (s) { controlsFromSettings(s.settings); render(s); }
  return s;
}

async function step() {
  const s = await api("POST", "/api/step", { steps: fieldValue("spf") });
  if (s) render(s);
  return s;
}

function setPlaying(on) {
  lab.playing = on;
  $("play").textContent = on ? "Pause" : "Play";
}

// One loop at a time: a loop started earlier (before a preset's reset, say) ends at its next turn.
let loopId = 0;
async function playLoop() {
  const id = ++loopId;
  setPlaying(true);
  while (lab.playing && id === loopId) {
    const s = await step();
    if (!s || s.diverged) break;
    // the next frame when the browser paints (or after 100 ms where it does not: a hidden tab)
    await Promise.race([new Promise((r) => requestAnimationFrame(r)), new Promise((r) => setTimeout(r, 100))]);
  }
  if (id === loopId) setPlaying(false);
}

function wire() {
  $("play").addEventListener("click", () => (lab.playing ? setPlaying(false) : playLoop()));
  $("step").addEventListener("click", () => { if (!lab.playing) api("POST", "/api/step", { steps: 1 }).then((s) => s && render(s)); });
  $("reset").addEventListener("click", () => reset());
  for (const k of LIVE) {
    $(k).addEventListener("change", async () => {
      const s = await api("POST", "/api/settings", { [k]: fieldValue(k) }, true);
      $(k).classList.toggle("invalid", !s);
      if (s) render(s);
    });
  }
  $("dataset").addEventListener("change", () => {
    const drawn = $("dataset").value === "drawn";
    $("draw-tools").hidden = !drawn;
    if (!drawn) { lab.drawn = []; reset(); } else { setPlaying(false); drawPoints(lab.state); }
  });
  // drawing your own data: click and drag on the points panel
  const canvas = $("points");
  let drawing = false;
  const addPoint = (ev) => {
    const rect = canvas.getBoundingClientRect(), e = extent();
    const x = ((ev.clientX - rect.left) / rect.width) * 2 * e - e, y = e - ((ev.clientY - rect.top) / rect.height) * 2 * e;
    const last = lab.drawn.at(-1);
    if (last && Math.hypot(last[0] - x, last[1] - y) < 0.05) return;
    lab.drawn.push([+x.toFixed(3), +y.toFixed(3)]);
    $("draw-count").textContent = `${lab.drawn.length} points`;
    drawPoints(lab.state);
  };
  canvas.addEventListener("mousedown", (ev) => { if ($("dataset").value === "drawn") { drawing = true; addPoint(ev); } });
  canvas.addEventListener("mousemove", (ev) => { if (drawing) addPoint(ev); });
  window.addEventListener("mouseup", () => { drawing = false; });
  $("draw-clear").addEventListener("click", () => { lab.drawn = []; $("draw-count").textContent = "0 points"; drawPoints(lab.state); });
  $("draw-use").addEventListener("click", () => reset({ dataset: "drawn" }));
}

function buildOptions(o) {
  lab.options = o;
  const labels = { ring: "ring of 8 Gaussians", spiral: "spiral", moons: "two moons", drawn: "draw your own",
                   sgd: "SGD", adam: "Adam (beta1 0.5)", nadam: "Nadam (beta1 0.5)",
                   non_saturating: "non-saturating: -log D(G(z))", saturating: "saturating: log(1 - D(G(z)))" };
  for (const [name, values] of Object.entries(o.choices)) {
    $(name).replaceChildren(...values.map((v) => new Option(labels[v] || v, v)));
  }
  for (const [key, p] of Object.entries(o.presets)) {
    const b = document.createElement("button");
    b.type = "button"; b.textContent = p.label; b.id = `preset-${key}`;
    b.addEventListener("click", async () => {
      setPlaying(false);
      controlsFromSettings(p.settings);
      $("preset-explain").textContent = p.explain;
      if (await reset(p.settings)) playLoop();
    });
    $("presets").append(b);
  }
}

async function start() {
  wire();
  const o = await api("GET", "/api/options");
  if (!o) return;
  buildOptions(o);
  const s = await api("GET", "/api/state");
  if (s) { controlsFromSettings(s.settings); render(s); }
  lab.ready = true;
}

start();
