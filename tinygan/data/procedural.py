"""An embedded default dataset: cartoon faces drawn with PIL, deterministic from a seed.

Why: the library must train out of the box, offline, in seconds of CPU, and a GAN needs data
with real structure (two eyes level with each other above a nose above a mouth, hair framing a
skin-coloured oval) to show whether it learns anything.  These faces are framed roughly like
the classic 108x108 CelebA crop (a face filling most of the picture, hair at the edges) and vary
in what a GAN should pick up: skin tone, face shape, hair style and colour, eye colour and gaze,
eyebrows, nose, mouth (neutral/smile/open), glasses, beards, background gradient, pose jitter.

Each face is drawn at ``supersample`` times the output size and box-downsampled, which
anti-aliases the edges.  Face ``i`` of seed ``s`` depends only on (s, i), through
``random.Random("tinygan-faces:s:i")`` (string seeding is SHA-512 based, stable across runs and
Python versions), so the first 100 faces of n=5000 equal the faces of n=100.  About 2,000
faces/s at 64x64 on one core (1,100/s at 128x128): the default 5,000 take a few seconds once,
then come from the cache.
"""
from __future__ import annotations

import colorsys
import math
import random
import time

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from tinygan.data import cache as _cache
from tinygan.data.batches import FaceDataset
from tinygan.data.celeba import image_hw
from tinygan.errors import DataError

DEFAULT_N = 5000
PROCEDURAL_VERSION = 1  # bump when the drawing changes, so cached faces are redrawn

# Synthetic labels in CelebA's naming and {-1, +1} coding, so the same code can condition on them.
ATTR_NAMES = ["Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses", "Gray_Hair",
              "Mouth_Slightly_Open", "Mustache", "No_Beard", "Smiling", "Wavy_Hair"]

SKIN = [(255, 226, 200), (246, 208, 178), (236, 188, 150), (222, 170, 130), (198, 140, 100),
        (172, 115, 80), (140, 92, 64), (105, 68, 48), (250, 215, 190), (228, 180, 150)]
# (colour, attribute) with rough frequencies: black, browns, auburn, blonds, greys.
HAIR = [((28, 22, 20), "Black_Hair"), ((22, 18, 18), "Black_Hair"), ((62, 42, 30), "Brown_Hair"),
        ((98, 64, 40), "Brown_Hair"), ((125, 85, 55), "Brown_Hair"), ((150, 70, 35), None),
        ((205, 170, 105), "Blond_Hair"), ((232, 205, 150), "Blond_Hair"), ((150, 148, 145), "Gray_Hair"),
        ((215, 212, 205), "Gray_Hair")]
HAIR_P = [0.17, 0.10, 0.14, 0.14, 0.07, 0.07, 0.10, 0.08, 0.07, 0.06]
EYES = [(62, 40, 24), (96, 62, 34), (40, 30, 24), (70, 110, 160), (82, 122, 86), (112, 122, 128)]
HAIR_STYLES = ["short", "long", "bob", "curly", "bald", "side"]
HAIR_STYLE_P = [0.25, 0.30, 0.17, 0.10, 0.04, 0.14]


def _jitter(rgb, r: random.Random, amount: int):
    return tuple(max(0, min(255, int(c + r.uniform(-amount, amount)))) for c in rgb)


def _mix(a, b, t: float):
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _shade(rgb, f: float):
    return tuple(max(0, min(255, int(c * f))) for c in rgb)


def _pick(r: random.Random, items, weights):
    return r.choices(items, weights)[0]


def _background(r: random.Random, size: tuple[int, int]) -> Image.Image:
    """Smooth two-colour gradient: a 2x2 image upsampled bilinearly (far cheaper than NumPy)."""
    h = r.random()
    c1 = colorsys.hsv_to_rgb(h, r.uniform(0.05, 0.45), r.uniform(0.35, 0.95))
    c2 = colorsys.hsv_to_rgb((h + r.uniform(-0.15, 0.15)) % 1, r.uniform(0.05, 0.45), r.uniform(0.25, 0.95))
    c1, c2 = (tuple(int(v * 255) for v in c) for c in (c1, c2))
    mid = _mix(c1, c2, 0.5)
    corners = [c1, mid, mid, c2] if r.random() < 0.5 else [c1, c1, c2, c2]
    small = Image.new("RGB", (2, 2))
    small.putdata(corners)
    return small.resize(size, Image.BILINEAR)


def draw_face(seed, image_size=64, supersample: int | None = None):
    """One procedural face: (PIL RGB image of ``image_size``, {attribute: bool}).

    ``seed`` is an int/str or a ``random.Random``.  ``supersample`` (default 4 below 32 px,
    3 up to 64 px, else 2) sets the drawing resolution relative to the output.
    """
    r = seed if isinstance(seed, random.Random) else random.Random(str(seed))
    H, W = image_hw(image_size)
    ss = supersample or (4 if max(H, W) < 32 else 3 if max(H, W) <= 64 else 2)
    cw, ch = W * ss, H * ss
    img = _background(r, (cw, ch))
    d = ImageDraw.Draw(img)
    X = lambda x: x * cw  # noqa: E731  unit coordinates -> canvas pixels
    Y = lambda y: y * ch  # noqa: E731
    lw = max(1, round(ss * min(W, H) / 40))  # a line about 1.6 output pixels wide at 64x64

    def ell(x, y, rx, ry, **kw):
        d.ellipse((X(x - rx), Y(y - ry), X(x + rx), Y(y + ry)), **kw)

    # --- head geometry and pose ------------------------------------------------------------
    cx, cy = 0.5 + r.gauss(0, 0.03), 0.55 + r.gauss(0, 0.025)
    rx, ry = r.uniform(0.29, 0.35), r.uniform(0.39, 0.46)
    yaw = r.gauss(0, 0.06)                 # features slide sideways: a cheap turn of the head
    tilt = math.radians(r.gauss(0, 4))     # feature centres rotate about the face centre

    def at(dx, dy, depth=1.0):
        """Point at offset (dx, dy) from the face centre, after tilt and yaw."""
        dx = dx + yaw * rx * depth
        return (cx + dx * math.cos(tilt) - dy * math.sin(tilt) * ch / cw,
                cy + dx * math.sin(tilt) * cw / ch + dy * math.cos(tilt))

    skin = _jitter(r.choice(SKIN), r, 10)
    hair_rgb, hair_attr = _pick(r, HAIR, HAIR_P)
    hair = _jitter(hair_rgb, r, 12)
    hair_dark = _shade(hair, 0.7)
    style = _pick(r, HAIR_STYLES, HAIR_STYLE_P)
    bangs = style in ("short", "long", "bob") and r.random() < 0.3
    curly = style == "curly"
    beard = style in ("short", "side", "bald") and r.random() < 0.25
    mustache = beard and r.random() < 0.7 or (style == "short" and r.random() < 0.05)
    glasses = r.random() < 0.15
    mouth_kind = _pick(r, ["neutral", "smile", "open"], [0.35, 0.4, 0.25])

    # --- behind the head: clothes, long hair, neck ------------------------------------------
    clothes = _jitter(tuple(int(v * 255) for v in colorsys.hsv_to_rgb(r.random(), r.uniform(0.1, 0.7),
                                                                      r.uniform(0.15, 0.9))), r, 5)
    ell(cx, 1.12, 0.55, 0.22, fill=clothes)
    hair_w = rx * r.uniform(1.12, 1.3)
    if style == "long":
        d.rectangle((X(cx - hair_w), Y(cy - 0.05), X(cx + hair_w), Y(1.05)), fill=hair)
    if style in ("long", "bob", "curly"):
        bob_len = {"long": 0.0, "bob": r.uniform(0.15, 0.3), "curly": r.uniform(0.05, 0.2)}[style]
        ell(cx, cy - ry * 0.12 + bob_len / 2, hair_w, ry * 1.12 + bob_len / 2, fill=hair)
    if curly:  # a ring of curls gives volume and a bumpy outline
        for k in range(14):
            a = math.pi * (0.85 + 1.3 * k / 13)
            ell(cx + math.cos(a) * hair_w * 1.05, cy - ry * 0.1 + math.sin(a) * ry * 1.1,
                rx * 0.22, rx * 0.22, fill=_shade(hair, r.uniform(0.85, 1.1)))
    neck = _shade(skin, 0.82)
    d.rectangle((X(cx - rx * 0.45), Y(cy + ry * 0.5), X(cx + rx * 0.45), Y(1.0)), fill=neck)

    # --- ears and face, with a cheap shading: dark oval, then a lighter one offset to the light --
    for side in (-1, 1):
        ex, ey = at(side * rx * 0.97, ry * 0.02)
        ell(ex, ey, rx * 0.15, ry * 0.17, fill=_shade(skin, 0.9))
    ell(cx, cy, rx, ry, fill=_shade(skin, 0.86))
    light = r.uniform(-0.08, 0.08)
    ell(cx + light * rx, cy - 0.02 * ry, rx * 0.93, ry * 0.95, fill=skin)

    # --- hair on top: a chord over the forehead, plus style details --------------------------
    if style != "bald":
        top = cy - ry * (1.12 if curly else 1.05)
        hairline = cy - ry * (0.35 if bangs else r.uniform(0.5, 0.68))
        # Upper half of an ellipse whose centre line is the hairline: a rounded skull cap whose
        # flat lower edge is the fringe.
        cap = hairline - top
        d.chord((X(cx - rx * 1.06), Y(top), X(cx + rx * 1.06), Y(hairline + cap)), 180, 360, fill=hair)
        if style in ("short", "side"):  # hair down the temples, so the cap is not a hat
            for side in (-1, 1):
                ell(cx + side * rx * 0.93, hairline + ry * 0.08, rx * 0.13, ry * 0.26, fill=hair)
        if style == "side":  # swept fringe falling to one side
            s = r.choice((-1, 1))
            d.polygon([(X(cx - s * rx * 0.9), Y(hairline - ry * 0.05)), (X(cx + s * rx * 0.2), Y(top + 0.02)),
                       (X(cx + s * rx * 1.05), Y(hairline + ry * 0.12)),
                       (X(cx + s * rx * 0.6), Y(hairline - ry * 0.02))],
                      fill=hair)
        if style in ("long", "bob"):  # strands framing the cheeks
            for side in (-1, 1):
                d.polygon([(X(cx + side * rx * 1.08), Y(hairline - ry * 0.1)),
                           (X(cx + side * rx * r.uniform(0.72, 0.85)), Y(hairline + ry * 0.05)),
                           (X(cx + side * rx * 0.9), Y(cy + ry * 0.55)),
                           (X(cx + side * rx * 1.12), Y(cy + ry * 0.6))], fill=hair)
    else:  # bald: a little hair above the ears
        for side in (-1, 1):
            ell(cx + side * rx * 0.95, cy - ry * 0.15, rx * 0.12, ry * 0.22, fill=hair)

    # --- eyes, brows ------------------------------------------------------------------------
    eye_dx, eye_dy = rx * r.uniform(0.36, 0.44), -ry * r.uniform(0.08, 0.16)
    erx, ery = rx * r.uniform(0.16, 0.21), ry * r.uniform(0.055, 0.085)
    iris = _jitter(r.choice(EYES), r, 10)
    gaze = r.gauss(0, 0.25) * erx
    brow_lift, brow_slant = r.uniform(0.12, 0.2) * ry, r.uniform(-0.03, 0.04) * ry
    brow_col = hair_dark if hair_attr not in ("Blond_Hair", "Gray_Hair") else _shade(hair, 0.55)
    for side in (-1, 1):
        ex, ey = at(side * eye_dx, eye_dy, depth=1.1)
        ell(ex, ey, erx, ery, fill=(245, 242, 238))
        ir = ery * 0.95
        ell(ex + gaze, ey, ir * ch / cw, ir, fill=iris)
        ell(ex + gaze, ey, ir * 0.5 * ch / cw, ir * 0.5, fill=(12, 10, 10))
        ell(ex + gaze + ir * 0.3 * ch / cw, ey - ir * 0.35, ir * 0.18 * ch / cw, ir * 0.18,
            fill=(255, 255, 255))
        d.arc((X(ex - erx), Y(ey - ery), X(ex + erx), Y(ey + ery)), 190, 350, fill=(35, 25, 22), width=lw)
        bx, by = ex, ey - brow_lift
        d.line([(X(bx - side * erx * 1.1), Y(by + brow_slant)), (X(bx), Y(by - ry * 0.02)),
                (X(bx + side * erx * 1.15), Y(by + ry * 0.03))],
               fill=brow_col, width=lw + ss // 2, joint="curve")

    # --- nose -----------------------------------------------------------------------------
    nx, ny = at(0, ry * r.uniform(0.18, 0.26), depth=1.4)
    nose_col = _shade(skin, 0.78)
    d.line([(X(nx + rx * 0.04), Y(cy + eye_dy + ry * 0.05)), (X(nx + rx * 0.07), Y(ny))],
           fill=_shade(skin, 0.9), width=lw)
    ell(nx, ny + ry * 0.01, rx * 0.12, ry * 0.05, fill=_shade(skin, 0.92))
    for side in (-1, 1):
        ell(nx + side * rx * 0.065, ny + ry * 0.03, rx * 0.035, ry * 0.018, fill=nose_col)

    # --- beard / mustache (under the mouth) -----------------------------------------------------
    if beard:
        # The lower part of the face oval, its straight top edge across the cheeks; a thin beard
        # (stubble) is hair colour mixed into the skin.
        d.chord((X(cx - rx * 0.98), Y(cy - ry * 0.9), X(cx + rx * 0.98), Y(cy + ry * 1.01)), 22, 158,
                fill=_mix(skin, hair, r.choice((0.55, 0.9, 1.0))))
    mx, my = at(0, ry * r.uniform(0.48, 0.56), depth=1.2)
    mw = rx * r.uniform(0.3, 0.42)
    lip = _mix(skin, _jitter((185, 70, 75), r, 20), r.uniform(0.35, 0.75))
    if mustache:
        d.polygon([(X(mx - mw * 1.05), Y(my + ry * 0.02)), (X(mx), Y(my - ry * 0.1)),
                   (X(mx + mw * 1.05), Y(my + ry * 0.02)), (X(mx), Y(my - ry * 0.04))],
                  fill=_shade(hair, 0.9))

    # --- mouth --------------------------------------------------------------------------------
    if mouth_kind == "neutral":
        ell(mx, my, mw, ry * 0.045, fill=lip)
        d.line([(X(mx - mw), Y(my)), (X(mx + mw), Y(my))], fill=_shade(lip, 0.55), width=max(1, lw // 2))
    elif mouth_kind == "smile":
        depth = ry * r.uniform(0.06, 0.12)
        d.arc((X(mx - mw), Y(my - depth), X(mx + mw), Y(my + depth)), 10, 170, fill=_shade(lip, 0.75),
              width=lw + ss // 2)
    else:  # open smile with teeth
        open_h = ry * r.uniform(0.08, 0.14)
        box = (X(mx - mw), Y(my - open_h), X(mx + mw), Y(my + open_h))
        d.chord(box, 0, 180, fill=(95, 30, 35), outline=lip, width=lw)
        d.chord((X(mx - mw * 0.8), Y(my - open_h * 0.4), X(mx + mw * 0.8), Y(my + open_h * 0.5)), 0, 180,
                fill=(240, 236, 228))

    # --- glasses on top of everything ------------------------------------------------------------
    if glasses:
        frame = _jitter(r.choice([(20, 20, 20), (90, 60, 40), (150, 150, 160), (120, 20, 30)]), r, 10)
        sun = r.random() < 0.2
        gy = None
        for side in (-1, 1):
            ex, ey = at(side * eye_dx, eye_dy, depth=1.1)
            gy = ey
            box = (X(ex - erx * 1.45), Y(ey - ery * 2.3), X(ex + erx * 1.45), Y(ey + ery * 2.2))
            d.rounded_rectangle(box, radius=X(erx * 0.6), outline=frame, width=lw,
                                fill=(30, 30, 40) if sun else None)
            d.line([(X(ex + side * erx * 1.45), Y(ey - ery)), (X(cx + side * rx * 0.98), Y(ey - ery * 1.2))],
                   fill=frame, width=lw)
        d.line([(X(cx - eye_dx + erx * 1.45), Y(gy - ery)), (X(cx + eye_dx - erx * 1.45), Y(gy - ery))],
               fill=frame, width=lw)

    out = img.reduce(ss)  # box filter over ss x ss blocks: the anti-aliasing step
    attrs = {"Bangs": bangs, "Black_Hair": hair_attr == "Black_Hair", "Blond_Hair": hair_attr == "Blond_Hair",
             "Brown_Hair": hair_attr == "Brown_Hair", "Eyeglasses": glasses,
             "Gray_Hair": hair_attr == "Gray_Hair",
             "Mouth_Slightly_Open": mouth_kind == "open", "Mustache": mustache, "No_Beard": not beard,
             "Smiling": mouth_kind != "neutral", "Wavy_Hair": curly}
    return out, attrs


def _face_rng(seed: int, i: int) -> random.Random:
    return random.Random(f"tinygan-faces:{seed}:{i}")


def _draw_into(out, attrs, seed, start, image_size, supersample, progress):
    for i in tqdm(range(len(out)), desc=f"drawing {len(out)} faces", unit="face", disable=not progress,
                  leave=False):
        im, a = draw_face(_face_rng(seed, start + i), image_size, supersample)
        out[i] = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
        attrs[i] = [1 if a[name] else -1 for name in ATTR_NAMES]


def embedded_faces(n: int = DEFAULT_N, image_size=64, seed: int = 0, *, cache_dir=None,
                   use_cache: bool = True, progress: bool = True,
                   supersample: int | None = None) -> FaceDataset:
    """``n`` procedural faces as a :class:`FaceDataset` (uint8 storage, synthetic attributes).

    Deterministic in (n, image_size, seed, supersample); cached like real data, so a second
    call opens a memmap instead of drawing again.
    """
    n = int(n)
    if n < 1:
        raise DataError(f"embedded_faces: the number of faces must be >= 1, got {n}")
    h, w = image_hw(image_size)
    t0 = time.perf_counter()
    report = {"source": "embedded procedural faces", "source_kind": "procedural", "files_found": n,
              "seed": seed, "image_size": [h, w], "supersample": supersample,
              "storage": "uint8 NCHW, scaled to float [-1, 1] per batch", "skipped": 0}
    names = [f"face_{seed}_{i:06d}" for i in range(n)]

    if not use_cache:
        pixels = np.empty((n, 3, h, w), dtype=np.uint8)
        attrs = np.empty((n, len(ATTR_NAMES)), dtype=np.int8)
        _draw_into(pixels, attrs, seed, 0, (h, w), supersample, progress)
        rep = dict(report, images=n, cache_hit=False, drawn_this_call=n,
                   build_seconds=round(time.perf_counter() - t0, 2))
        return FaceDataset(pixels, names, attrs, ATTR_NAMES, rep, name="embedded")

    spec = {"loader": "procedural", "version": PROCEDURAL_VERSION, "n": n, "image_size": [h, w],
            "seed": seed, "supersample": supersample}
    directory = _cache.cache_dir(cache_dir)
    stem = f"embedded-{h}x{w}-n{n}-{_cache.cache_key(spec)}"
    entry = _cache.load_entry(directory, stem, (3, h, w))
    hit = entry is not None
    if not hit:
        attrs = np.empty((n, len(ATTR_NAMES)), dtype=np.int8)

        def fill(out):
            _draw_into(out, attrs, seed, 0, (h, w), supersample, progress)
            return range(n)

        def finish(kept):
            rep = dict(report, images=n, build_seconds=round(time.perf_counter() - t0, 2))
            return {"filenames": names, "report": rep, "attr_names": ATTR_NAMES}, attrs

        entry = _cache.build_entry(directory, stem, n, (3, h, w), fill, finish)
    pixels, attrs, meta = entry
    rep = dict(meta["report"], cache_path=str(directory / f"{stem}.npy"), cache_hit=hit,
               drawn_this_call=0 if hit else n, decoded_this_call=0 if hit else n,
               load_seconds=round(time.perf_counter() - t0, 2))
    return FaceDataset(pixels, meta["filenames"], attrs, meta["attr_names"], rep, name="embedded")
