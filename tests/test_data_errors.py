"""What the loaders do with bad input: a DataError naming the path and what was expected, a
warning when the load can go on without the bad part, and never a silently wrong dataset.

Everything here is built from small synthetic folders under tmp_path, so it runs in seconds
without the shared CelebA sample.
"""
import io
import os
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinygan.data import ImageFileError, load_faces, parse_attributes, preprocess_image
from tinygan.data import celeba as celeba_module
from tinygan.errors import DataError, DataWarning


def _write_images(folder: Path, names, size=(40, 30), seed=0):
    """Random RGB images (w, h) = size; returns their pixels by name, (h, w, 3) uint8."""
    rng = np.random.default_rng(seed)
    pixels = {}
    for n in names:
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        pixels[n] = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels[n]).save(p)
    return pixels


def _load(path, tmp_path, size=8, **kw):
    return load_faces(path, size, cache_dir=tmp_path / "cache", progress=False, **kw)


def _cache_files(tmp_path):
    c = tmp_path / "cache"
    return sorted(os.listdir(c)) if c.exists() else []


# --- the --data path -------------------------------------------------------------------------
def test_empty_folder_names_the_path_and_the_image_types(tmp_path):
    """An empty folder: which extensions were looked for, where, and what would have worked."""
    (tmp_path / "faces").mkdir()
    with pytest.raises(DataError, match=r"no \.jpg/\.jpeg/\.png images in .*faces.*CelebA folder"):
        _load(tmp_path / "faces", tmp_path)


def test_plain_file_is_neither_folder_nor_zip(tmp_path):
    """--data pointing at a text file: said to be a file but not a zip."""
    f = tmp_path / "faces.txt"
    f.write_text("hello")
    with pytest.raises(DataError, match=r"faces\.txt.* is a file but not a zip archive"):
        _load(f, tmp_path)


def test_truncated_zip_is_named_as_corrupt(tmp_path):
    """A zip cut in half (no end-of-archive record): 'not a valid zip archive', naming the file."""
    _write_images(tmp_path / "src", ["a.png", "b.png"])
    z = tmp_path / "faces.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for n in ("a.png", "b.png"):
            zf.write(tmp_path / "src" / n, n)
    z.write_bytes(z.read_bytes()[:200])
    with pytest.raises(DataError, match=r"faces\.zip.* is not a valid zip archive"):
        _load(z, tmp_path)


def test_zip_with_corrupt_directory_is_a_data_error(tmp_path):
    """End record intact but the central directory damaged: zipfile's BadZipFile becomes a DataError."""
    _write_images(tmp_path / "src", ["a.png"])
    z = tmp_path / "faces.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(tmp_path / "src/a.png", "a.png")
    data = bytearray(z.read_bytes())
    at = data.index(b"PK\x01\x02")          # central directory entry signature
    data[at:at + 4] = b"XXXX"
    z.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"faces\.zip is corrupt or unreadable.*BadZipFile"):
        _load(z, tmp_path)


def test_zip_whose_members_all_fail_their_crc_is_a_data_error(tmp_path):
    """Every member's bytes damaged (CRC mismatch): 'none of the 2 image files could be read'."""
    _write_images(tmp_path / "src", ["a.png", "b.png"])
    z = tmp_path / "faces.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_STORED) as zf:
        for n in ("a.png", "b.png"):
            zf.write(tmp_path / "src" / n, n)
    data = bytearray(z.read_bytes())
    for n in (b"a.png", b"b.png"):          # flip bytes inside each member's stored data
        at = data.index(n) + len(n) + 100
        data[at:at + 8] = bytes(8)
    z.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"none of the 2 image files in .*faces\.zip could be read.*CRC"):
        _load(z, tmp_path)


def test_all_files_unreadable_is_a_data_error_not_a_batch_size_message(tmp_path):
    """Three .jpg files of garbage: one error naming the folder and the files, and no cache written."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for n in ("a.jpg", "b.jpg", "c.jpg"):
        (folder / n).write_bytes(b"not an image at all" * 20)
    with pytest.raises(DataError, match=r"none of the 3 image files in .*faces could be read, e\.g\. "
                                        r"a\.jpg \(UnidentifiedImageError.*expected JPEG or PNG"):
        _load(folder, tmp_path)
    assert _cache_files(tmp_path) == []   # neither an entry nor a temp file


def test_limit_below_one_is_a_data_error(tmp_path):
    """limit=0 would load nothing: refused up front, for folders and the embedded faces alike."""
    _write_images(tmp_path / "faces", ["a.png"])
    for source in (tmp_path / "faces", None):
        with pytest.raises(DataError, match=r"limit must be a positive number of images .*got 0"):
            _load(source, tmp_path, limit=0)


# --- decoding ----------------------------------------------------------------------------------
def test_unreadable_files_among_good_ones_are_skipped_and_named(tmp_path):
    """A garbage file and a half-written PNG are skipped and listed; the others load in order."""
    folder = tmp_path / "faces"
    _write_images(folder, ["a.png", "b.png", "c.png", "d.png"])
    (folder / "b.png").write_bytes(b"garbage" * 30)
    data = (folder / "c.png").read_bytes()
    (folder / "c.png").write_bytes(data[:len(data) // 2])
    ds = _load(folder, tmp_path)
    assert ds.filenames == ["a.png", "d.png"] and ds.report["skipped"] == 2
    examples = " ".join(ds.report["skipped_examples"])
    assert "b.png (UnidentifiedImageError" in examples and "c.png (" in examples
    assert "BytesIO" not in examples          # PIL's name for the in-memory buffer means nothing to a user


@pytest.mark.parametrize("error", [MemoryError, TypeError])
def test_errors_that_are_not_bad_files_propagate(tmp_path, monkeypatch, error):
    """A MemoryError or a bug while decoding stops the load instead of being counted as a bad file,
    and the interrupted cache build leaves no temp file."""
    _write_images(tmp_path / "faces", ["a.png", "b.png"])

    def broken(src):
        raise error("not a decoding problem")
    monkeypatch.setattr(celeba_module, "_decode_rgb", broken)
    with pytest.raises(error, match="not a decoding problem"):
        _load(tmp_path / "faces", tmp_path, workers=2)
    assert _cache_files(tmp_path) == []


@pytest.mark.parametrize("error", [SyntaxError("broken PNG file"), ValueError("tile cannot extend"),
                                   Image.DecompressionBombError("too many pixels")])
def test_pil_decoding_errors_skip_the_file(tmp_path, monkeypatch, error):
    """What PIL raises for a corrupt or oversized image (SyntaxError, ValueError, DecompressionBombError)
    skips that one file."""
    _write_images(tmp_path / "faces", ["a.png", "b.png"])
    real = celeba_module._decode_rgb

    def fails_on_b(src):
        im, size = real(src)
        if size == (40, 30) and not hasattr(fails_on_b, "done"):
            fails_on_b.done = True      # the first file decoded (a.png, one worker) fails
            raise error
        return im, size
    monkeypatch.setattr(celeba_module, "_decode_rgb", fails_on_b)
    ds = _load(tmp_path / "faces", tmp_path, workers=1)
    assert ds.filenames == ["b.png"] and type(error).__name__ in ds.report["skipped_examples"][0]


def test_16_bit_grayscale_png_is_scaled_to_8_bits(tmp_path):
    """A 16-bit grayscale PNG (PIL mode I;16) keeps its tones: value v becomes round(v / 257) in all
    three channels, instead of everything above 255 clipping to white."""
    v = np.linspace(0, 65535, 32 * 16).reshape(16, 32).astype(np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(v).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")             # the case under test really is a wide mode
    pixels, size = preprocess_image(str(path), (16, 32), crop="none")  # same size: no resampling
    expected = np.round(v / 257).astype(np.uint8)
    assert size == (32, 16)
    for c in range(3):
        np.testing.assert_array_equal(pixels[c], expected)
    assert pixels.min() == 0 and pixels.max() == 255 and 100 < np.median(pixels) < 155


def test_8_bit_grayscale_png_is_unchanged():
    """The ordinary 8-bit gray (mode L) path still copies the values into all three channels."""
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    buf = io.BytesIO()
    Image.fromarray(g).save(buf, format="PNG")
    pixels, _ = preprocess_image(buf.getvalue(), 16, crop="none")
    assert all((pixels[c] == g).all() for c in range(3))


@pytest.mark.parametrize("make, phrase", [
    (lambda p: None, "no such image file"),
    (lambda p: p.mkdir(), "is a folder; expected an image file"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30), "cannot decode .*expected a JPEG or PNG"),
])
def test_preprocess_image_of_a_bad_path_names_it(tmp_path, make, phrase):
    """A photo path that is missing, a folder or not an image: an ImageFileError (a DataError) naming it."""
    p = tmp_path / "photo.png"
    make(p)
    with pytest.raises(ImageFileError, match=phrase) as info:
        preprocess_image(p, 16)
    assert "photo.png" in str(info.value) and isinstance(info.value, DataError)


def test_images_smaller_than_the_crop_are_counted_as_upscaled(tmp_path):
    """An 8x8 image among 100x100 ones, loaded at 32x32: one upscaled image, named, in the summary."""
    _write_images(tmp_path / "faces", ["big1.png", "big2.png"], size=(100, 100))
    _write_images(tmp_path / "faces", ["tiny.png"], size=(8, 8), seed=1)
    ds = _load(tmp_path / "faces", tmp_path, size=32)
    r = ds.report
    assert (r["upscaled"], r["smallest_crop"]) == (1, "8x8")
    assert r["upscaled_examples"] == ["tiny.png (crop 8x8)"]
    assert "upscaled 1 of 3 images" in ds.summary()
    assert _load(tmp_path / "faces", tmp_path, size=8).report["upscaled"] == 0


# --- links ---------------------------------------------------------------------------------------
needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt",
                                    reason="needs POSIX symbolic links")


@needs_symlinks
def test_symlink_to_itself_lists_each_image_once(tmp_path):
    """A folder holding a link to itself: 5 images stay 5 (not 205), and a held-out split is
    disjoint from training in content, not just in names."""
    pixels = _write_images(tmp_path / "faces", [f"{k}.png" for k in range(5)], size=(8, 8))
    os.symlink(".", tmp_path / "faces/loop")
    ds = _load(tmp_path / "faces", tmp_path, size=8, crop="none")
    assert ds.filenames == [f"{k}.png" for k in range(5)]
    train, held = ds.split(2, seed=0)
    train_px = {train.pixels[i].tobytes() for i in range(len(train))}
    assert not any(held.pixels[i].tobytes() in train_px for i in range(len(held)))
    np.testing.assert_array_equal(ds.pixels[0], pixels["0.png"].transpose(2, 0, 1))


@needs_symlinks
def test_folder_and_file_links_are_followed_but_loaded_once(tmp_path):
    """A link to a sibling folder and a link to a file: the files are loaded once (the first path in
    sorted order), the duplicates counted; a link to an outside folder is followed."""
    root = tmp_path / "faces"
    _write_images(root, ["a/1.png", "a/2.png"])
    _write_images(tmp_path / "outside", ["3.png"])
    os.symlink("a", root / "b")
    os.symlink("a/1.png", root / "c.png")
    os.symlink(tmp_path / "outside", root / "d")
    ds = _load(root, tmp_path)
    assert ds.filenames == ["a/1.png", "a/2.png", "d/3.png"]
    assert ds.report["duplicate_paths"] == 1   # c.png; b/ is pruned as a folder already walked
    assert "loaded once" in ds.summary()


@needs_symlinks
def test_broken_link_is_counted_as_skipped(tmp_path):
    """A dangling link named like an image: skipped and named, the rest loads."""
    _write_images(tmp_path / "faces", ["a.png"])
    os.symlink("gone.png", tmp_path / "faces/b.png")
    ds = _load(tmp_path / "faces", tmp_path)
    assert ds.filenames == ["a.png"] and ds.report["skipped"] == 1
    assert ds.report["skipped_examples"] == ["b.png (broken link)"]


# --- attribute files -------------------------------------------------------------------------------
HEADER = "3\nSmiling Young Male\n"


@pytest.mark.parametrize("text, phrase", [
    ("", r"is empty; expected a line of attribute names"),
    ("3\n", r"holds only a count line \(3\); expected a line of attribute names"),
    (HEADER, r"has a header but no rows; expected rows like '000001.jpg -1 1"),
    ("3\n000001.jpg -1 1 1\n000002.jpg 1 1 1\n",
     r"line 2: expected the attribute names .*found '000001.jpg -1 1 1'"),
    (HEADER + "a.png 1 -1\nb.png -1 -1\n",
     r"no usable row: line 3 'a.png 1 -1' has 2 values for the 3 attribute names; expected 3 values "
     r"of -1 or 1 after the image name \(2 such lines\)"),
    (HEADER + "a.png 1 0 1\nb.png 0 0 1\n", r"line 3 'a.png 1 0 1' has 0/1 values, but CelebA codes"),
    ("lorem ipsum\ndolor sit amet\n", r"line 2 'dolor sit amet' has a value 'sit' that is not -1 or 1"),
])
def test_unusable_attribute_file_names_file_line_and_expectation(tmp_path, text, phrase):
    """Each kind of unusable attribute file: a DataError with the file, the first bad line, what was
    expected (instead of 'IndexError: index 0 is out of bounds' later)."""
    f = tmp_path / "list_attr_celeba.txt"
    f.write_text(text)
    with pytest.raises(DataError, match=phrase) as info:
        parse_attributes(f)
    assert str(f) in str(info.value)


def test_binary_attribute_file_is_refused(tmp_path):
    """Random bytes (here with NULs, as in any binary file): 'binary, not text'."""
    f = tmp_path / "list_attr_celeba.txt"
    f.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes() + b"\0")
    with pytest.raises(DataError, match=r"list_attr_celeba\.txt is binary, not text"):
        parse_attributes(f)


def test_bad_attribute_file_without_filter_warns_and_loads_without_attributes(tmp_path):
    """No filter asked for: a DataWarning naming the problem, the images load, attributes None, the
    summary says the file was ignored -- and a cache hit warns again."""
    _write_images(tmp_path / "faces", ["a.png", "b.png"])
    (tmp_path / "faces/list_attr_celeba.txt").write_text(HEADER + "a.png 1 -1\nb.png 1 1\n")
    for hit in (False, True):
        with pytest.warns(DataWarning, match=r"line 3 'a.png 1 -1' has 2 values.*without attributes"):
            ds = _load(tmp_path / "faces", tmp_path)
        assert ds.report["cache_hit"] is hit
        assert len(ds) == 2 and ds.attributes is None
        assert "the attribute file was ignored" in ds.summary()


def test_bad_attribute_file_with_filter_is_an_error(tmp_path):
    """A filter needs the file: the same problem is an error, saying the filter needed it."""
    _write_images(tmp_path / "faces", ["a.png"])
    (tmp_path / "faces/list_attr_celeba.txt").write_text(HEADER)
    with pytest.raises(DataError, match=r"header but no rows.*needed for the attribute filter "
                                        r"\{'Young': False\}"):
        _load(tmp_path / "faces", tmp_path, require={"Young": False})


def test_attribute_file_matching_no_image_is_dropped_with_a_warning(tmp_path):
    """Rows for other file names only: attributes would all read 'absent'; warn and load without them."""
    _write_images(tmp_path / "faces", ["a.png", "b.png"])
    (tmp_path / "faces/list_attr_celeba.txt").write_text(HEADER + "x.png 1 -1 1\ny.png 1 1 1\n")
    with pytest.warns(DataWarning, match=r"no row for any of the 2 images.*e\.g\. 'a'"):
        ds = _load(tmp_path / "faces", tmp_path)
    assert ds.attributes is None


def test_some_malformed_attribute_lines_are_skipped_with_a_warning(tmp_path):
    """One bad line among good ones: the good rows are used, the bad line is counted and warned about."""
    _write_images(tmp_path / "faces", ["a.png", "b.png"])
    (tmp_path / "faces/list_attr_celeba.txt").write_text(HEADER + "a.png 1 -1 1\nb.png 1 1\n")
    with pytest.warns(DataWarning, match=r"skipped 1 malformed lines, e\.g\. line 4"):
        ds = _load(tmp_path / "faces", tmp_path)
    assert ds.attr_mask.tolist() == [True, False] and ds.report["attr_rows_malformed"] == 1


def test_filter_without_attribute_file_is_a_data_error(tmp_path):
    """require= on a folder with no attribute file: names the filter and where the file was looked for."""
    _write_images(tmp_path / "faces", ["a.png"])
    with pytest.raises(DataError, match=r"filter \{'Young': True\} needs an attribute file"
                                        r".*list_attr_celeba"):
        _load(tmp_path / "faces", tmp_path, require={"Young": True})


def test_filter_matching_nothing_is_a_data_error(tmp_path):
    """A filter no image satisfies: counts of images with rows and with other values."""
    _write_images(tmp_path / "faces", ["a.png", "b.png"])
    (tmp_path / "faces/list_attr_celeba.txt").write_text(HEADER + "a.png 1 1 1\nb.png -1 1 1\n")
    with pytest.raises(DataError, match=r"no images .*match the attribute filter \{'Young': False\}: 2 of 2 "
                                        r"images have a row"):
        _load(tmp_path / "faces", tmp_path, require={"Young": False})


def test_warnings_are_not_raised_for_a_good_folder(tmp_path):
    """Control: a clean folder loads without any DataWarning."""
    _write_images(tmp_path / "faces", ["a.png"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        assert len(_load(tmp_path / "faces", tmp_path)) == 1
