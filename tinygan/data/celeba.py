"""CelebA (or any folder/zip of face images) -> preprocessed, cached :class:`FaceDataset`.

Sources understood by :func:`find_source`:

* an ``img_align_celeba/`` folder, or a folder containing it (the official download layout);
* the official ``img_align_celeba.zip`` (members are read straight from the zip, never extracted),
  or a folder containing it;
* any folder of ``.jpg``/``.jpeg``/``.png`` images, searched recursively, in sorted order.

The optional ``list_attr_celeba.txt`` (auto-detected next to the images or given by path) labels
images with CelebA's 40 binary attributes and allows filtering, e.g. ``require={"Young": False}``.

Preprocessing follows the classic face GANs (DCGAN-tensorflow, the Keras CelebA examples):
crop the face out of the aligned 178x218 image with a 108x108 box centred on the image
(pixels x 35..143, y 55..163), resize with Lanczos to ``image_size``, keep RGB.  The box is
stored as fractions of the image size (:data:`CELEBA_CROP`), so the same face region is cut
from the full-size images and from half-size 89x109 copies.  Pixels are cached as uint8
(see :mod:`tinygan.data.cache`) and served as float in [-1, 1], NCHW.
"""
from __future__ import annotations

import io
import os
import threading
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from tinygan.data import cache as _cache
from tinygan.data.batches import FaceDataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
ATTR_FILENAMES = ("list_attr_celeba.txt", "list_attr_celeba.csv")
CELEBA_FOLDER, CELEBA_ZIP = "img_align_celeba", "img_align_celeba.zip"

# (left, top, right, bottom) as fractions of width/height: the classic 108x108 centre crop of the
# 178x218 aligned image, i.e. pixels x in [35, 143), y in [55, 163).  At 89x109 this is the
# 54x54 box x in [17.5, 71.5), y in [27.5, 81.5) (PIL resamples fractional boxes exactly).
CELEBA_CROP = (35 / 178, 55 / 218, 143 / 178, 163 / 218)
CROP_NAMES = ("auto", "celeba", "square", "none")
RESAMPLE = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR,
            "box": Image.BOX}
_DECODE_CHUNK = 512     # files handed to the thread pool at a time (bounds memory for 200k files)
_EXAMPLES = 5           # how many skipped/malformed names a report lists


# ---------------------------------------------------------------------------------------------
# Preprocessing one image
# ---------------------------------------------------------------------------------------------
def image_hw(image_size) -> tuple[int, int]:
    """``64`` -> (64, 64); ``(h, w)`` stays (h, w)."""
    if isinstance(image_size, (int, np.integer)):
        h = w = int(image_size)
    else:
        h, w = (int(v) for v in image_size)
    if h < 1 or w < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return h, w


def crop_box(crop, width: int, height: int) -> tuple[float, float, float, float]:
    """Pixel box (left, top, right, bottom) for ``crop`` on a ``width`` x ``height`` image.

    ``crop`` is ``"celeba"`` (:data:`CELEBA_CROP`), ``"square"`` (largest centred square),
    ``"none"``/``None`` (whole image, aspect ratio not kept) or 4 fractions (left, top, right, bottom).
    """
    if crop == "celeba":
        crop = CELEBA_CROP
    elif crop == "square":
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        return (left, top, left + side, top + side)
    elif crop in (None, "none"):
        crop = (0.0, 0.0, 1.0, 1.0)
    if isinstance(crop, str) or len(crop) != 4:
        raise ValueError(f"unknown crop {crop!r}; expected 'celeba', 'square', 'none' or "
                         f"(left, top, right, bottom) fractions of the image size")
    l, t, r, b = (float(v) for v in crop)
    if not (0 <= l < r <= 1 and 0 <= t < b <= 1):
        raise ValueError(f"crop fractions {crop!r} must satisfy 0 <= left < right <= 1 and "
                         f"0 <= top < bottom <= 1")
    return (l * width, t * height, r * width, b * height)


def preprocess_image(data, image_size=64, crop="celeba", resample="lanczos"):
    """Encoded bytes / path / file -> ((3, H, W) uint8, (original width, original height)).

    Raises whatever PIL raises for unreadable files; the loader catches and counts those.
    """
    h, w = image_hw(image_size)
    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    with Image.open(src) as im:
        size = im.size
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            # Flatten transparency onto mid-grey instead of whatever the hidden pixels hold.
            rgba = im.convert("RGBA")
            im = Image.new("RGB", rgba.size, (128, 128, 128))
            im.paste(rgba, mask=rgba.getchannel("A"))
        else:
            im = im.convert("RGB")  # also forces the full decode, so truncated files fail here
        out = im.resize((w, h), RESAMPLE[resample], box=crop_box(crop, *size))
    return np.asarray(out, dtype=np.uint8).transpose(2, 0, 1), size


# ---------------------------------------------------------------------------------------------
# Attribute file
# ---------------------------------------------------------------------------------------------
@dataclass
class AttributeTable:
    """Parsed ``list_attr_celeba.txt``: rows keyed by image name without extension."""
    path: Path
    names: list[str]
    values: np.ndarray                       # (rows_present, len(names)) int8 in {-1, +1}
    row_of: dict[str, int]                   # "000001" -> row index into values
    announced: int | None                    # the count on the first line (202599), if any
    malformed: int = 0                       # lines skipped: wrong token count or values
    malformed_examples: list[str] = field(default_factory=list)
    duplicates: int = 0                      # repeated image names (first row kept)

    @property
    def present(self) -> int:
        return len(self.row_of)

    def check_names(self, names) -> None:
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise KeyError(f"unknown attribute name(s) {unknown} for {self.path}; valid names: "
                           f"{', '.join(self.names)}")

    def lookup(self, filenames) -> np.ndarray:
        """Row index per file name (matched by name without extension), -1 where there is none."""
        return np.array([self.row_of.get(_stem(f), -1) for f in filenames], dtype=np.int64)

    def report(self) -> dict:
        return {"attr_file": str(self.path), "attr_rows_announced": self.announced,
                "attr_rows_present": self.present, "attr_rows_malformed": self.malformed,
                "attr_malformed_examples": self.malformed_examples,
                "attr_rows_duplicate": self.duplicates}


def _stem(name: str) -> str:
    """'img/000001.jpg' -> '000001': attribute rows and image files are matched on this."""
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def parse_attributes(path) -> AttributeTable:
    """Parse a CelebA attribute file tolerantly.

    Accepts the official layout (count line, line of names, ``000001.jpg -1  1 ...`` rows) and the
    CSV variant (``image_id,5_o_Clock_Shadow,...``).  Any run of spaces/tabs/commas separates
    fields.  A line whose field count or values (only -1/1) are wrong is skipped and counted, as
    is a truncated file: ``announced`` vs ``present`` tells how much is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"attribute file {path} does not exist; expected CelebA's "
                                f"list_attr_celeba.txt")
    text = path.read_text(errors="replace")
    if "," in text:  # CSV variant: commas become whitespace, then one splitting rule for both
        text = text.replace(",", " ")
    lines = text.splitlines()
    # Header: an optional count line, then the attribute names (first two non-blank lines).
    body = iter(enumerate(lines, 1))
    first = next(((i, ln.split()) for i, ln in body if ln.strip()), None)
    if first is None:
        raise ValueError(f"attribute file {path} is empty; expected a line of attribute names "
                         f"followed by rows like '000001.jpg -1 1 ...'")
    announced, names = None, first[1]
    if len(names) == 1 and names[0].isdigit():
        announced = int(names[0])
        names = next((ln.split() for i, ln in body if ln.strip()), None)
        if names is None:
            raise ValueError(f"attribute file {path} has no line of attribute names")
    if names[0].lower() in ("image_id", "image", "filename", "file", "name"):
        names = names[1:]  # CSV header names the file column too
    n_attr = len(names)
    valid = {"-1", "1"}
    flat: list[str] = []
    row_of: dict[str, int] = {}
    malformed, duplicates, examples = 0, 0, []
    for lineno, line in body:
        t = line.split()
        if not t:
            continue
        vals = t[1:]
        if len(vals) != n_attr or not valid.issuperset(vals):
            malformed += 1
            if len(examples) < _EXAMPLES:
                examples.append(f"line {lineno}: {line.strip()[:60]!r}")
            continue
        key = _stem(t[0])
        if key in row_of:
            duplicates += 1
            continue
        row_of[key] = len(row_of)
        flat.extend(vals)
    values = np.array(flat, dtype=np.int8).reshape(len(row_of), n_attr)
    return AttributeTable(path, list(names), values, row_of, announced, malformed, examples, duplicates)


# ---------------------------------------------------------------------------------------------
# Sources: a folder or a zip
# ---------------------------------------------------------------------------------------------
def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


@dataclass
class ImageSource:
    """Where images are read from: ``kind`` "folder" or "zip", ``names`` relative and sorted."""
    kind: str
    path: Path                 # the image folder, or the zip file
    names: list[str]           # display names: relative paths (zip: without a common top folder)
    members: list[str]         # what to read: same as names for folders, member names for zips
    is_celeba: bool            # official layout (folder img_align_celeba / img_align_celeba*.zip)

    def fingerprint(self) -> dict:
        """What identifies this listing for the cache key (cheap: stat only, no decoding)."""
        if self.kind == "zip":
            st = self.path.stat()
            return {"kind": "zip", "path": str(self.path), "count": len(self.names),
                    "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        import hashlib
        h = hashlib.sha256()
        for name in self.members:
            st = os.stat(self.path / name)
            h.update(f"{name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        return {"kind": "folder", "path": str(self.path), "count": len(self.names),
                "listing_sha256": h.hexdigest()}

    def reader(self) -> Callable[[int], bytes]:
        """``read(i)`` -> bytes of image i; safe to call from several threads."""
        if self.kind == "folder":
            def read(i):
                with open(self.path / self.members[i], "rb") as f:
                    return f.read()
            return read
        local = threading.local()  # one ZipFile handle per thread: no shared file position

        def read(i):
            if not hasattr(local, "zf"):
                local.zf = zipfile.ZipFile(self.path)
            return local.zf.read(self.members[i])
        return read


def _expected() -> str:
    return (f"a folder of face images ({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)}, searched recursively), "
            f"a CelebA folder containing {CELEBA_FOLDER}/ or {CELEBA_ZIP}, or {CELEBA_ZIP} itself")


def _zip_source(path: Path) -> ImageSource:
    with zipfile.ZipFile(path) as zf:
        members = sorted(m for m in zf.namelist()
                         if _is_image(m) and not m.endswith("/") and not m.startswith("__MACOSX/")
                         and not _stem(m).startswith("."))
    # The official zip holds img_align_celeba/000001.jpg ...: drop a shared top folder so names
    # match the extracted folder's ("000001.jpg").
    tops = {m.split("/", 1)[0] for m in members if "/" in m}
    strip = len(tops) == 1 and all("/" in m for m in members)
    names = [m.split("/", 1)[1] if strip else m for m in members]
    return ImageSource("zip", path, names, members, path.name.startswith(CELEBA_FOLDER))


def _folder_source(root: Path) -> ImageSource:
    names = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = os.path.relpath(dirpath, root)
        for f in filenames:
            if _is_image(f) and not f.startswith("."):
                names.append(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/"))
    names.sort()
    return ImageSource("folder", root, names, names, root.name == CELEBA_FOLDER)


def find_source(path) -> ImageSource:
    """Resolve ``path`` (folder, CelebA parent folder, or zip) to an :class:`ImageSource`.

    Raises FileNotFoundError naming the path and what was expected when it does not exist or
    holds no images.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"face image source {str(p)!r} does not exist; expected {_expected()}")
    p = p.resolve()
    if p.is_file():
        if not zipfile.is_zipfile(p):
            raise ValueError(f"face image source {str(p)!r} is a file but not a zip archive; "
                             f"expected {_expected()}")
        source = _zip_source(p)
    elif (p / CELEBA_FOLDER).is_dir():
        source = _folder_source(p / CELEBA_FOLDER)
    elif (p / CELEBA_ZIP).is_file():
        source = _zip_source(p / CELEBA_ZIP)
    else:
        source = _folder_source(p)
    if not source.names:
        raise FileNotFoundError(f"face image source {str(p)!r} holds no images; expected {_expected()}")
    return source


def find_attr_file(source: ImageSource) -> Path | None:
    """The attribute file next to the images (or one folder up), or None."""
    folder = source.path.parent if source.kind == "zip" else source.path
    for d in (folder, folder.parent):
        for name in ATTR_FILENAMES:
            if (d / name).is_file():
                return d / name
    return None


# ---------------------------------------------------------------------------------------------
# Decoding into the cache
# ---------------------------------------------------------------------------------------------
def _decode_into(out, read, indices, names, image_size, crop, resample, workers, progress, desc):
    """Decode files ``indices`` into ``out[0..]`` in order, skipping unreadable ones.

    Returns (kept positions into ``indices``, [(name, error)] skipped, Counter of "WxH" sizes).
    PIL decodes and resizes with the GIL released, so a few threads overlap file reads and
    decoding (about 1.3x on 2 cores; more on bigger machines).
    """
    kept, skipped, sizes = [], [], Counter()

    def work(j):
        try:
            return preprocess_image(read(int(indices[j])), image_size, crop, resample), None
        except Exception as e:  # corrupt, truncated or not-really-an-image: skip and count
            return None, f"{type(e).__name__}: {e}"

    n = len(indices)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        with tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar:
            for start in range(0, n, _DECODE_CHUNK):
                js = range(start, min(n, start + _DECODE_CHUNK))
                results = pool.map(work, js) if pool else map(work, js)
                for j, (res, err) in zip(js, results):
                    if err is None:
                        out[len(kept)] = res[0]
                        kept.append(j)
                        sizes[f"{res[1][0]}x{res[1][1]}"] += 1
                    else:
                        skipped.append((names[int(indices[j])], err))
                bar.update(len(js))
    finally:
        if pool:
            pool.shutdown()
    return kept, skipped, sizes


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def load_celeba(path, image_size=64, *, crop="auto", attr_file="auto",
                require: Mapping[str, bool] | None = None, limit: int | None = None,
                cache_dir=None, use_cache: bool = True, progress: bool = True,
                workers: int | None = None, resample: str = "lanczos") -> FaceDataset:
    """Load CelebA, or any folder/zip of face images, as a preprocessed :class:`FaceDataset`.

    path        folder, CelebA parent folder, or zip (see :func:`find_source`)
    image_size  output size: int (square) or (H, W)
    crop        "auto" (CelebA box for the official layout or when an attribute file is found,
                else "square"), "celeba", "square", "none", or (l, t, r, b) fractions
    attr_file   "auto" (look next to the images), a path, or None (ignore attributes)
    require     keep only images whose attributes match, e.g. {"Young": False, "Male": True};
                images without an attribute row are dropped (and counted)
    limit       keep only the first ``limit`` selected files (after filtering), e.g. for tests
    cache_dir   where the uint8 memmap lives (default $TINYGAN_CACHE or ~/.cache/tinygan)
    use_cache   False: decode into RAM and write nothing
    workers     decoding threads (default min(4, CPUs))
    """
    t0 = time.perf_counter()
    source = find_source(path)
    h, w = image_hw(image_size)
    if resample not in RESAMPLE:
        raise ValueError(f"unknown resample {resample!r}; expected one of {', '.join(RESAMPLE)}")
    if attr_file == "auto":
        attr_path = find_attr_file(source)
    elif attr_file is not None:
        attr_path = Path(attr_file).expanduser().resolve()
        if not attr_path.is_file():
            raise FileNotFoundError(f"attribute file {attr_path} does not exist; expected CelebA's "
                                    f"list_attr_celeba.txt (or attr_file='auto' / None)")
    else:
        attr_path = None
    if crop == "auto":
        crop = "celeba" if (source.is_celeba or attr_path is not None) else "square"
    crop_box(crop, 178, 218)  # validate early, before any decoding
    crop_spec = crop if isinstance(crop, str) else [float(v) for v in crop]
    name = "celeba" if source.is_celeba else source.path.name

    # Everything that determines the pixels goes into the key; the attribute file is identified by
    # path/size/mtime so a hit needs no parsing (3 s for the full 202,599-row file).
    spec = {"loader": "celeba", "source": source.fingerprint(), "image_size": [h, w], "crop": crop_spec,
            "resample": resample, "filter": sorted(dict(require or {}).items()), "limit": limit,
            "attr_file": None if attr_path is None else
            [str(attr_path), attr_path.stat().st_size, attr_path.stat().st_mtime_ns]}
    directory = _cache.cache_dir(cache_dir)
    stem = f"{'celeba' if source.is_celeba else 'faces'}-{h}x{w}-{_cache.cache_key(spec)}"
    if use_cache:
        entry = _cache.load_entry(directory, stem)
        if entry is not None:
            pixels, attrs, meta = entry
            rep = dict(meta["report"], cache_path=str(directory / f"{stem}.npy"), cache_hit=True,
                       decoded_this_call=0, load_seconds=round(time.perf_counter() - t0, 2))
            return FaceDataset(pixels, meta["filenames"], attrs, meta["attr_names"], rep, name=name)

    # Cache miss: parse attributes, match them to files, filter, limit, then decode.
    table = parse_attributes(attr_path) if attr_path is not None else None
    report = {"source": str(source.path), "source_kind": source.kind, "files_found": len(source.names),
              "image_size": [h, w], "crop": crop_spec,
              "crop_box": [round(v, 4) for v in crop_box(crop, 1, 1)], "resample": resample,
              "storage": "uint8 NCHW, scaled to float [-1, 1] per batch",
              "filter": dict(require or {}), "limit": limit}
    selected = np.arange(len(source.names))
    rows = None
    if table is not None:
        rows = table.lookup(source.names)
        report.update(table.report(), images_with_attrs=int((rows >= 0).sum()),
                      images_without_attrs=int((rows < 0).sum()))
    if require:
        if table is None:
            raise ValueError(f"require={dict(require)} needs an attribute file, but none was found for "
                             f"{source.path}; pass attr_file='.../list_attr_celeba.txt'")
        table.check_names(require)
        has = rows >= 0
        match = has.copy()
        for attr, want in require.items():
            col = table.values[np.where(has, rows, 0), table.names.index(attr)]
            match &= (col > 0) == bool(want)
        selected = np.flatnonzero(match)
        report.update(dropped_no_attrs=int((~has).sum()),
                      dropped_by_filter=int(has.sum() - match.sum()), matched_filter=int(match.sum()))
    if limit is not None:
        selected = selected[:max(0, int(limit))]
    report["selected"] = len(selected)
    if len(selected) == 0:
        raise ValueError(f"no images left to load from {source.path}: {report.get('matched_filter', 0)} "
                         f"matched filter {dict(require or {})}, limit={limit}")

    read = source.reader()
    workers = workers or _default_workers()
    decoded = {}

    def fill(out):
        kept_pos, skipped, sizes = _decode_into(out, read, selected, source.names, (h, w), crop, resample,
                                                workers, progress, f"preprocessing {source.path.name} -> {h}x{w}")
        decoded.update(skipped=skipped, sizes=sizes)
        return kept_pos

    def finish(kept_pos):
        kept = selected[np.asarray(kept_pos, dtype=np.int64)]
        skipped = decoded["skipped"]
        rep = dict(report, images=len(kept), skipped=len(skipped),
                   skipped_examples=[f"{n} ({e})" for n, e in skipped[:_EXAMPLES]],
                   original_sizes=dict(decoded["sizes"].most_common()),
                   build_seconds=round(time.perf_counter() - t0, 2))
        attrs = None
        if table is not None:  # rows without an entry stay all-zero (attr_mask False)
            r = rows[kept]
            attrs = np.where((r >= 0)[:, None], table.values[np.maximum(r, 0)], 0).astype(np.int8)
        meta = {"filenames": [source.names[i] for i in kept], "report": rep,
                "attr_names": table.names if table is not None else []}
        return meta, attrs

    if use_cache:
        pixels, attrs, meta = _cache.build_entry(directory, stem, len(selected), (3, h, w), fill, finish)
        extra = {"cache_path": str(directory / f"{stem}.npy")}
    else:
        pixels = np.empty((len(selected), 3, h, w), dtype=np.uint8)
        kept_pos = fill(pixels)
        meta, attrs = finish(kept_pos)
        pixels, extra = pixels[:len(kept_pos)], {}
    rep = dict(meta["report"], **extra, cache_hit=False, decoded_this_call=len(selected),
               load_seconds=round(time.perf_counter() - t0, 2))
    return FaceDataset(pixels, meta["filenames"], attrs, meta["attr_names"], rep, name=name)
