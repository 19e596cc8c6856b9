"""CelebA (or any folder/zip of face images) -> preprocessed, cached :class:`FaceDataset`.

Sources understood by :func:`find_source`:

* an ``img_align_celeba/`` folder, or a folder containing it (the official download layout);
* the official ``img_align_celeba.zip`` (members are read straight from the zip, never extracted),
  or a folder containing it;
* any folder of ``.jpg``/``.jpeg``/``.png`` images, searched recursively, in sorted order.  Symbolic
  links are followed, but each folder and each file is taken once (a link back to a parent folder
  would otherwise list the same images again and again).

The optional ``list_attr_celeba.txt`` (auto-detected next to the images or given by path) labels
images with CelebA's 40 binary attributes and allows filtering, e.g. ``require={"Young": False}``.
A file that cannot be used is an error when a filter needs it, else a warning and no attributes.

Preprocessing follows the classic face GANs (DCGAN-tensorflow, the Keras CelebA examples):
crop the face out of the aligned 178x218 image with a 108x108 box centred on the image
(pixels x 35..143, y 55..163), resize with Lanczos to ``image_size``, keep RGB.  The box is
stored as fractions of the image size (:data:`CELEBA_CROP`), so the same face region is cut
from the full-size images and from half-size 89x109 copies.  Pixels are cached as uint8
(see :mod:`tinygan.data.cache`) and served as float in [-1, 1], NCHW.

Every problem a user can fix is a :class:`~tinygan.errors.DataError` naming the path and what
was expected; unreadable images among readable ones are skipped and counted in the report.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import struct
import threading
import time
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from tinygan.data import cache as _cache
from tinygan.data.batches import FaceDataset
from tinygan.errors import DataError, DataWarning

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

# What PIL raises for bytes that are not a complete, valid image: UnidentifiedImageError and
# "image file is truncated" are OSErrors; corrupt PNG chunks raise SyntaxError; bad headers
# ValueError, EOFError or struct.error; oversized images DecompressionBombError.  Anything else
# (MemoryError, a bug) is not a bad file and propagates.
DECODE_ERRORS = (Image.UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error,
                 Image.DecompressionBombError)
# What reading a file or a zip member raises when it is gone, unreadable or corrupt in the zip.
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError)


class ImageFileError(DataError):
    """An image file is missing, a folder, or not a decodable JPEG/PNG."""


# ---------------------------------------------------------------------------------------------
# Preprocessing one image
# ---------------------------------------------------------------------------------------------
def image_hw(image_size) -> tuple[int, int]:
    """``64`` -> (64, 64); ``(h, w)`` stays (h, w)."""
    try:
        if isinstance(image_size, (int, np.integer)):
            h = w = int(image_size)
        else:
            h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise DataError(f"image_size must be a positive int or (height, width), got {image_size!r}") from None
    if h < 1 or w < 1:
        raise DataError(f"image_size must be positive, got {image_size!r}")
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
        raise DataError(f"unknown crop {crop!r}; expected 'celeba', 'square', 'none' or "
                        f"(left, top, right, bottom) fractions of the image size")
    left, top, right, bottom = (float(v) for v in crop)
    if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
        raise DataError(f"crop fractions {crop!r} must satisfy 0 <= left < right <= 1 and "
                        f"0 <= top < bottom <= 1")
    return (left * width, top * height, right * width, bottom * height)


_WIDE_GRAY = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _wide_gray_to_rgb(im: Image.Image) -> Image.Image:
    """16-bit grayscale (PIL mode I;16 or I) -> 8-bit RGB.

    ``convert("RGB")`` clips these values at 255 instead of scaling them, so a 16-bit PNG
    would come out white.  v / 257 maps 0..65535 onto 0..255 exactly (65535 = 255 * 257).
    """
    v = np.clip(np.asarray(im).astype(np.int64), 0, 65535)
    gray = ((v * 255 + 32767) // 65535).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")


def _decode_rgb(src) -> tuple[Image.Image, tuple[int, int]]:
    """Fully decoded RGB image and its original (width, height); raises PIL's errors."""
    with Image.open(src) as im:
        size = im.size
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            # Flatten transparency onto mid-grey instead of whatever the hidden pixels hold.
            rgba = im.convert("RGBA")
            im = Image.new("RGB", rgba.size, (128, 128, 128))
            im.paste(rgba, mask=rgba.getchannel("A"))
        elif im.mode in _WIDE_GRAY:
            im = _wide_gray_to_rgb(im)
        else:
            im = im.convert("RGB")  # also forces the full decode, so truncated files fail here
    return im, size


def preprocess_image(data, image_size=64, crop="celeba", resample="lanczos"):
    """Encoded bytes / path / file -> ((3, H, W) uint8, (original width, original height)).

    Raises :class:`ImageFileError` (a DataError) naming the file when it is missing, a folder,
    or not a decodable image; the loader catches those and counts the file as skipped.
    """
    h, w = image_hw(image_size)
    if isinstance(data, (bytes, bytearray)):
        src, name = io.BytesIO(data), "image data"
    elif isinstance(data, (str, os.PathLike)):
        src = name = Path(data)
        if src.is_dir():
            raise ImageFileError(f"{src} is a folder; expected an image file (JPEG or PNG)")
        if not src.exists():
            raise ImageFileError(f"no such image file: {src}")
    else:
        src, name = data, getattr(data, "name", "image file")
    try:
        im, size = _decode_rgb(src)
    except DECODE_ERRORS as e:
        raise ImageFileError(f"cannot decode {name}: {type(e).__name__}: {e}; expected a JPEG or PNG "
                             f"image") from e
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
            raise DataError(f"unknown attribute name(s) {unknown} for {self.path}; valid names: "
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


_ATTR_VALUES = {"-1", "1"}
_NAME_RE = re.compile(r"^(?=.*[A-Za-z])[\w\-]+$")  # 5_o_Clock_Shadow yes; -1, 000001.jpg no


def _bad_row_reason(vals: list[str], n_attr: int) -> str:
    if len(vals) != n_attr:
        return f"{len(vals)} values for the {n_attr} attribute names"
    if set(vals) <= {"0", "1"}:
        return "0/1 values, but CelebA codes an attribute as 1 (present) or -1 (absent)"
    bad = next(v for v in vals if v not in _ATTR_VALUES)
    return f"a value {bad!r} that is not -1 or 1"


def parse_attributes(path) -> AttributeTable:
    """Parse a CelebA attribute file.

    Accepts the official layout (count line, line of names, ``000001.jpg -1  1 ...`` rows) and the
    CSV variant (``image_id,5_o_Clock_Shadow,...``).  Any run of spaces/tabs/commas separates
    fields.  A few bad lines among good ones are skipped and counted (``malformed``), as is a
    truncated file: ``announced`` vs ``present`` tells how much is missing.

    Raises :class:`~tinygan.errors.DataError` naming the file, the first bad line and what was
    expected when the file cannot be a CelebA attribute file at all: empty, binary, no line of
    names, only a header, or no usable row (wrong number of columns, 0/1 instead of -1/1 ...).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"attribute file {path} does not exist; expected CelebA's list_attr_celeba.txt")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read attribute file {path}: {e.strerror or e}") from e
    expected_row = "rows like '000001.jpg -1 1 -1 ...' (an image name, then one -1 or 1 per attribute)"
    if b"\0" in raw[:65536]:
        raise DataError(f"attribute file {path} is binary, not text; expected CelebA's list_attr_celeba.txt: "
                        f"a count line, a line of attribute names, then {expected_row}")
    text = raw.decode("utf-8-sig", errors="replace")  # -sig: a byte-order mark from a Windows editor
    if "," in text:  # CSV variant: commas become whitespace, then one splitting rule for both
        text = text.replace(",", " ")
    lines = text.splitlines()
    # Header: an optional count line, then the attribute names (first two non-blank lines).
    body = iter(enumerate(lines, 1))
    first = next(((i, ln.split()) for i, ln in body if ln.strip()), None)
    if first is None:
        raise DataError(f"attribute file {path} is empty; expected a line of attribute names "
                        f"followed by {expected_row}")
    announced, (names_line, names) = None, first
    if len(names) == 1 and names[0].isdigit():
        announced = int(names[0])
        second = next(((i, ln.split()) for i, ln in body if ln.strip()), None)
        if second is None:
            raise DataError(f"attribute file {path} holds only a count line ({announced}); expected a "
                            f"line of attribute names next, then {expected_row}")
        names_line, names = second
    if names[0].lower() in ("image_id", "image", "filename", "file", "name"):
        names = names[1:]  # CSV header names the file column too
    bad_names = [n for n in names if not _NAME_RE.match(n)]
    if not names or bad_names:
        raise DataError(f"attribute file {path}, line {names_line}: expected the attribute names "
                        f"(e.g. '5_o_Clock_Shadow Arched_Eyebrows ...'), found "
                        f"{lines[names_line - 1].strip()[:60]!r}")
    n_attr = len(names)
    flat: list[str] = []
    row_of: dict[str, int] = {}
    malformed, duplicates, examples = 0, 0, []
    first_bad = None
    for lineno, line in body:
        t = line.split()
        if not t:
            continue
        vals = t[1:]
        if len(vals) != n_attr or not _ATTR_VALUES.issuperset(vals):
            malformed += 1
            if first_bad is None:
                first_bad = (lineno, line.strip()[:60], _bad_row_reason(vals, n_attr))
            if len(examples) < _EXAMPLES:
                examples.append(f"line {lineno}: {line.strip()[:60]!r}")
            continue
        key = _stem(t[0])
        if key in row_of:
            duplicates += 1
            continue
        row_of[key] = len(row_of)
        flat.extend(vals)
    if not row_of:
        if first_bad is None:
            raise DataError(f"attribute file {path} has a header but no rows; expected {expected_row}")
        lineno, text_, reason = first_bad
        raise DataError(f"attribute file {path} has no usable row: line {lineno} {text_!r} has {reason}; "
                        f"expected {n_attr} values of -1 or 1 after the image name"
                        + (f" ({malformed} such lines)" if malformed > 1 else ""))
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
    unusable: list[tuple[str, str]] = field(default_factory=list)  # (name, why) found but not listed
    duplicates: int = 0        # files reached again through a link (each file is listed once)
    listing_key: dict = field(default_factory=dict)  # cheap identity of the listing (stat data)

    def fingerprint(self) -> dict:
        """What identifies this listing for the cache key (cheap: stat only, no decoding)."""
        return dict(self.listing_key, kind=self.kind, path=str(self.path), count=len(self.names))

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
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise DataError(f"zip archive {path} is corrupt or unreadable ({type(e).__name__}: {e}); "
                        f"expected {_expected()}") from e
    infos = sorted((i for i in infos if _is_image(i.filename) and not i.is_dir()
                    and not i.filename.startswith("__MACOSX/") and not _stem(i.filename).startswith(".")),
                   key=lambda i: i.filename)
    unusable = [(i.filename, "encrypted zip member") for i in infos if i.flag_bits & 0x1]
    members = [i.filename for i in infos if not i.flag_bits & 0x1]
    # The official zip holds img_align_celeba/000001.jpg ...: drop a shared top folder so names
    # match the extracted folder's ("000001.jpg").
    tops = {m.split("/", 1)[0] for m in members if "/" in m}
    strip = len(tops) == 1 and all("/" in m for m in members)
    names = [m.split("/", 1)[1] if strip else m for m in members]
    st = path.stat()
    return ImageSource("zip", path, names, members, path.name.startswith(CELEBA_FOLDER), unusable,
                       listing_key={"size": st.st_size, "mtime_ns": st.st_mtime_ns})


def _folder_source(root: Path) -> ImageSource:
    """List image files under ``root``, following links but visiting each folder and file once.

    Of two paths to one file the first in sorted order is kept; of two paths to one folder, the first
    one walked (folders are walked in sorted order), so the listing is deterministic.
    """
    found: dict[tuple[int, int], tuple[str, int, int]] = {}   # (device, inode) -> (name, size, mtime_ns)
    unusable: list[tuple[str, str]] = []
    walk_errors: list[OSError] = []
    seen_dirs: set[tuple[int, int]] = set()
    duplicates = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=walk_errors.append):
        try:
            st = os.stat(dirpath)
        except OSError as e:
            walk_errors.append(e)
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:  # a link back to a folder already listed
            dirnames[:] = []
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = os.path.relpath(dirpath, root)
        for f in sorted(filenames):
            if not _is_image(f) or f.startswith("."):
                continue
            name = f if rel == "." else f"{rel}/{f}".replace(os.sep, "/")
            try:
                fst = os.stat(os.path.join(dirpath, f))
            except OSError as e:
                unusable.append((name, "broken link" if os.path.islink(os.path.join(dirpath, f))
                                 else f"{type(e).__name__}: {e.strerror}"))
                continue
            if not stat.S_ISREG(fst.st_mode):
                unusable.append((name, "not a regular file"))
                continue
            key = (fst.st_dev, fst.st_ino)
            if key in found:  # the same file through another link: keep the first name in sorted order
                duplicates += 1
                name = min(name, found[key][0])
            found[key] = (name, fst.st_size, fst.st_mtime_ns)
    if not found and walk_errors:
        e = walk_errors[0]
        raise DataError(f"cannot read folder {e.filename or root} ({e.strerror or e}); "
                        f"expected {_expected()}")
    unusable += [(os.path.relpath(e.filename, root) if e.filename else "?",
                  f"unreadable folder: {e.strerror}") for e in walk_errors]
    listing = sorted(found.values())
    h = hashlib.sha256()
    for name, size, mtime in listing:
        h.update(f"{name}\t{size}\t{mtime}\n".encode())
    names = [n for n, _, _ in listing]
    return ImageSource("folder", root, names, names, root.name == CELEBA_FOLDER, unusable, duplicates,
                       listing_key={"listing_sha256": h.hexdigest()})


def find_source(path) -> ImageSource:
    """Resolve ``path`` (folder, CelebA parent folder, or zip) to an :class:`ImageSource`.

    Raises :class:`~tinygan.errors.DataError` naming the path and what was expected when it does
    not exist, is neither a folder nor a zip, is a corrupt zip, or holds no images.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"face image source {str(p)!r} does not exist; expected {_expected()}")
    p = p.resolve()
    if p.is_file():
        if not zipfile.is_zipfile(p):
            what = ("not a valid zip archive (truncated or corrupt?)" if p.suffix.lower() == ".zip"
                    else "a file but not a zip archive")
            raise DataError(f"face image source {str(p)!r} is {what}; expected {_expected()}")
        source = _zip_source(p)
    elif not p.is_dir():
        raise DataError(f"face image source {str(p)!r} is neither a folder nor a zip file; "
                        f"expected {_expected()}")
    elif (p / CELEBA_FOLDER).is_dir():
        source = _folder_source(p / CELEBA_FOLDER)
    elif (p / CELEBA_ZIP).is_file():
        if not zipfile.is_zipfile(p / CELEBA_ZIP):
            raise DataError(f"{p / CELEBA_ZIP} is not a valid zip archive (truncated or corrupt?); "
                            f"expected {_expected()}")
        source = _zip_source(p / CELEBA_ZIP)
    else:
        source = _folder_source(p)
    if not source.names:
        where = (f"zip archive {source.path}" if source.kind == "zip"
                 else f"{source.path} (searched recursively)")
        why = (f"; {len(source.unusable)} unusable, e.g. "
               + ", ".join(f"{n} ({e})" for n, e in source.unusable[:_EXAMPLES])) if source.unusable else ""
        raise DataError(f"no .jpg/.jpeg/.png images in {where}{why}; expected {_expected()}")
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
@dataclass
class _Decoded:
    kept: list[int] = field(default_factory=list)                   # positions into indices
    skipped: list[tuple[str, str]] = field(default_factory=list)    # (name, why)
    sizes: Counter = field(default_factory=Counter)                 # "WxH" of the originals
    upscaled: list[tuple[str, str]] = field(default_factory=list)   # (name, "WxH" of its crop)
    smallest_crop: str | None = None                                # "WxH" of the smallest crop
    _smallest_area: float = float("inf")


def _decode_into(out, read, indices, names, image_size, crop, resample, workers, progress, desc) -> _Decoded:
    """Decode files ``indices`` into ``out[0..]`` in order, skipping unreadable ones.

    Only read and decode errors (:data:`READ_ERRORS`, :class:`ImageFileError`) skip a file;
    anything else stops the load.  PIL decodes and resizes with the GIL released, so a few threads
    overlap file reads and decoding (about 1.3x on 2 cores; more on bigger machines).
    """
    h, w = image_size
    result = _Decoded()

    def work(j):
        try:
            data = read(int(indices[j]))
        except READ_ERRORS as e:
            return None, f"{type(e).__name__}: {e}"
        try:
            return preprocess_image(data, image_size, crop, resample), None
        except ImageFileError as e:
            cause = e.__cause__ or e
            # PIL names the in-memory buffer it was given ("<_io.BytesIO object at 0x...>"), which
            # says nothing to the user; the file's own name goes beside this text.
            return None, f"{type(cause).__name__}: " + re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "",
                                                              str(cause))

    n = len(indices)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        with tqdm(total=n, desc=desc, unit="img", disable=not progress, leave=False) as bar:
            for start in range(0, n, _DECODE_CHUNK):
                js = range(start, min(n, start + _DECODE_CHUNK))
                results = pool.map(work, js) if pool else map(work, js)
                for j, (res, err) in zip(js, results):
                    name = names[int(indices[j])]
                    if err is not None:
                        result.skipped.append((name, err))
                        continue
                    pixels, (ow, oh) = res
                    out[len(result.kept)] = pixels
                    result.kept.append(j)
                    result.sizes[f"{ow}x{oh}"] += 1
                    left, top, right, bottom = crop_box(crop, ow, oh)
                    bw, bh = right - left, bottom - top
                    if bw < w or bh < h:  # the crop is enlarged: a blurry face, worth counting
                        crop_size = f"{bw:.4g}x{bh:.4g}"
                        result.upscaled.append((name, crop_size))
                        if bw * bh < result._smallest_area:
                            result._smallest_area, result.smallest_crop = bw * bh, crop_size
                bar.update(len(js))
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)  # on Ctrl-C, do not decode the rest of the chunk
    return result


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _warn_about_attributes(report: dict) -> None:
    """Say, on every load (cache hits too), what about the attribute file was not as given."""
    if report.get("attr_file_problem"):
        warnings.warn(f"{report['attr_file_problem']}; loading the images without attributes",
                      DataWarning, stacklevel=3)
    elif report.get("attr_rows_malformed"):
        warnings.warn(f"attribute file {report['attr_file']}: skipped {report['attr_rows_malformed']} "
                      f"malformed lines, e.g. {report['attr_malformed_examples'][0]}",
                      DataWarning, stacklevel=3)


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

    Raises :class:`~tinygan.errors.DataError` for anything about the data a user can fix (see the
    module docstring).  An attribute file that cannot be used only raises when ``require`` needs
    it; otherwise it is a :class:`~tinygan.errors.DataWarning` and the images load without one.
    """
    t0 = time.perf_counter()
    if limit is not None and (isinstance(limit, bool) or int(limit) < 1):
        raise DataError(f"limit must be a positive number of images (or None for all), got {limit!r}")
    h, w = image_hw(image_size)
    if resample not in RESAMPLE:
        raise DataError(f"unknown resample {resample!r}; expected one of {', '.join(RESAMPLE)}")
    source = find_source(path)
    if attr_file == "auto":
        attr_path = find_attr_file(source)
    elif attr_file is not None:
        attr_path = Path(attr_file).expanduser().resolve()
        if not attr_path.is_file():
            raise DataError(f"attribute file {attr_path} does not exist; expected CelebA's "
                            f"list_attr_celeba.txt (or attr_file='auto' / None)")
    else:
        attr_path = None
    if require and attr_path is None:
        raise DataError(f"the attribute filter {dict(require)} needs an attribute file, but none was found "
                        f"next to {source.path}; expected list_attr_celeba.txt there or attr_file=PATH")
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
        entry = _cache.load_entry(directory, stem, (3, h, w))
        if entry is not None:
            pixels, attrs, meta = entry
            rep = dict(meta["report"], cache_path=str(directory / f"{stem}.npy"), cache_hit=True,
                       decoded_this_call=0, load_seconds=round(time.perf_counter() - t0, 2))
            _warn_about_attributes(rep)
            return FaceDataset(pixels, meta["filenames"], attrs, meta["attr_names"], rep, name=name)

    # Cache miss: parse attributes, match them to files, filter, limit, then decode.
    report = {"source": str(source.path), "source_kind": source.kind, "files_found": len(source.names),
              "image_size": [h, w], "crop": crop_spec,
              "crop_box": [round(v, 4) for v in crop_box(crop, 1, 1)], "resample": resample,
              "storage": "uint8 NCHW, scaled to float [-1, 1] per batch",
              "filter": dict(require or {}), "limit": limit, "duplicate_paths": source.duplicates}
    table = None
    if attr_path is not None:
        try:
            table = parse_attributes(attr_path)
        except DataError as e:
            if require:
                raise DataError(f"{e} (needed for the attribute filter {dict(require)})") from None
            report.update(attr_file=None, attr_file_problem=str(e))
    selected = np.arange(len(source.names))
    rows = None
    if table is not None:
        rows = table.lookup(source.names)
        matched = int((rows >= 0).sum())
        if matched == 0 and not require:
            # Attributes that label no image would read as "all absent": say so and drop them.
            report.update(attr_file=None, attr_file_problem=(
                f"attribute file {table.path} has no row for any of the {len(rows)} images (rows are "
                f"matched by file name without extension, e.g. {_stem(source.names[0])!r})"))
            table = rows = None
        else:
            report.update(table.report(), images_with_attrs=matched, images_without_attrs=len(rows) - matched)
    if require:
        table.check_names(require)
        has = rows >= 0
        match = has.copy()
        for attr, want in require.items():
            col = table.values[np.where(has, rows, 0), table.names.index(attr)]
            match &= (col > 0) == bool(want)
        selected = np.flatnonzero(match)
        report.update(dropped_no_attrs=int((~has).sum()),
                      dropped_by_filter=int(has.sum() - match.sum()), matched_filter=int(match.sum()))
        if len(selected) == 0:
            raise DataError(f"no images in {source.path} match the attribute filter {dict(require)}: "
                            f"{int(has.sum())} of {len(has)} images have a row in {table.path}, "
                            f"{int(has.sum() - match.sum())} of those have other values")
    if limit is not None:
        selected = selected[:int(limit)]
    report["selected"] = len(selected)
    _warn_about_attributes(report)

    read = source.reader()
    workers = workers or _default_workers()
    decoded = {}

    def fill(out):
        d = _decode_into(out, read, selected, source.names, (h, w), crop, resample,
                         workers, progress, f"preprocessing {source.path.name} -> {h}x{w}")
        if not d.kept:
            raise DataError(f"none of the {len(selected)} image files in {source.path} could be read, e.g. "
                            + "; ".join(f"{n} ({e})" for n, e in d.skipped[:3])
                            + "; expected JPEG or PNG images")
        decoded["d"] = d
        return d.kept

    def finish(kept_pos):
        d = decoded["d"]
        kept = selected[np.asarray(kept_pos, dtype=np.int64)]
        skipped = list(source.unusable) + d.skipped
        rep = dict(report, images=len(kept), skipped=len(skipped),
                   skipped_examples=[f"{n} ({e})" for n, e in skipped[:_EXAMPLES]],
                   original_sizes=dict(d.sizes.most_common()),
                   upscaled=len(d.upscaled),
                   upscaled_examples=[f"{n} (crop {s})" for n, s in d.upscaled[:_EXAMPLES]],
                   smallest_crop=d.smallest_crop,
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
