"""CelebA / image-folder loading: attribute parsing, matching, filtering, skipping, zip, cache.

Tests that need real images use the shared 10k CelebA sample (``../shared/data/celeba-10k`` from
the repo root, or $TINYGAN_CELEBA) and skip cleanly when it is absent; they load small subsets
(``limit=`` or a few copied files) into a tmp_path cache so the file runs in seconds.
"""
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinygan.data import CELEBA_CROP, find_source, load_celeba, load_faces, parse_attributes
from tinygan.data.celeba import crop_box
from tinygan.errors import DataError


def _celeba_root():
    candidates = [os.environ.get("TINYGAN_CELEBA"),
                  Path(__file__).resolve().parents[1].parent / "shared/data/celeba-10k"]
    for c in candidates:
        if not c:
            continue
        c = Path(c)
        if c.name == "img_align_celeba":
            c = c.parent
        if (c / "img_align_celeba").is_dir():
            return c
    return None


CELEBA = _celeba_root()
needs_celeba = pytest.mark.skipif(CELEBA is None, reason="shared CelebA sample not found "
                                  "(../shared/data/celeba-10k or $TINYGAN_CELEBA)")
ATTR = CELEBA / "list_attr_celeba.txt" if CELEBA else None


def _copy_celeba_subset(dst: Path, names, attr=True) -> Path:
    """dst/img_align_celeba/<names> copied from the shared sample (+ the attribute file)."""
    img_dir = dst / "img_align_celeba"
    img_dir.mkdir(parents=True)
    for n in names:
        shutil.copy(CELEBA / "img_align_celeba" / n, img_dir / n)
    if attr:
        shutil.copy(ATTR, dst / "list_attr_celeba.txt")
    return dst


def _names(k, start=1):
    return [f"{i:06d}.jpg" for i in range(start, start + k)]


# --- attribute file -------------------------------------------------------------------------
@needs_celeba
def test_attr_parser_reports_truncated_official_file():
    """The shared file announces 202,599 rows but holds 20,000 well-formed ones, 40 attributes."""
    t = parse_attributes(ATTR)
    assert (t.announced, t.present, t.malformed, len(t.names)) == (202599, 20000, 0, 40)
    assert t.names[:2] == ["5_o_Clock_Shadow", "Arched_Eyebrows"] and "Young" in t.names
    assert set(np.unique(t.values)) == {-1, 1}


@needs_celeba
def test_attr_parser_rows_equal_file_text():
    """Row for 000001.jpg equals the numbers on its line in the file."""
    t = parse_attributes(ATTR)
    line = ATTR.read_text().splitlines()[2].split()
    assert line[0] == "000001.jpg"
    np.testing.assert_array_equal(t.values[t.row_of["000001"]], np.array(line[1:], dtype=np.int8))


def test_attr_parser_skips_and_counts_malformed_lines(tmp_path):
    """Tabs and runs of spaces are fine; short rows, bad values and duplicates are skipped and counted."""
    f = tmp_path / "list_attr_celeba.txt"
    f.write_text("10\nA B  C\n"
                 "000001.jpg  -1  1 1\n"
                 "000002.jpg\t1\t-1\t-1\n"
                 "\n"
                 "000003.jpg 1 1\n"            # too short
                 "000004.jpg 1 2 -1\n"         # value not in {-1, 1}
                 "000001.jpg 1 1 1\n"          # duplicate: first kept
                 "000005.jpg 1 1 1")           # no trailing newline
    t = parse_attributes(f)
    assert (t.announced, t.present, t.malformed, t.duplicates) == (10, 3, 2, 1)
    np.testing.assert_array_equal(t.values[t.row_of["000001"]], [-1, 1, 1])
    assert "line 6" in t.malformed_examples[0]


def test_attr_parser_accepts_crlf_and_a_byte_order_mark(tmp_path):
    """A file saved by a Windows editor (BOM, CRLF line ends) parses like the original."""
    f = tmp_path / "list_attr_celeba.txt"
    f.write_bytes(b"\xef\xbb\xbf2\r\nSmiling Young\r\n000001.jpg 1 -1\r\n000002.jpg -1 1\r\n")
    t = parse_attributes(f)
    assert (t.announced, t.names, t.present) == (2, ["Smiling", "Young"], 2)


def test_attr_parser_reads_csv_variant(tmp_path):
    """The Kaggle CSV layout (no count line, an image_id column) parses the same way."""
    f = tmp_path / "list_attr_celeba.csv"
    f.write_text("image_id,Smiling,Young\n000001.jpg,1,-1\n000002.jpg,-1,1\n")
    t = parse_attributes(f)
    assert t.names == ["Smiling", "Young"] and t.announced is None and t.present == 2


# --- loading the shared sample ----------------------------------------------------------------
@needs_celeba
def test_loader_reports_attribute_matching(tmp_path):
    """All 10,000 sample images match a row; the report carries 20,000 present of 202,599 announced."""
    ds = load_celeba(CELEBA, 64, limit=100, cache_dir=tmp_path, progress=False)
    r = ds.report
    assert len(ds) == 100 and r["files_found"] == 10000
    assert (r["images_with_attrs"], r["images_without_attrs"]) == (10000, 0)
    assert (r["attr_rows_present"], r["attr_rows_announced"]) == (20000, 202599)
    assert "20000 rows present of 202599 announced" in ds.summary()


@needs_celeba
def test_loaded_images_are_nchw_float_in_unit_range(tmp_path):
    """images: (N, 3, 64, 64) float32 within [-1, 1], using most of the range (real photos)."""
    ds = load_celeba(CELEBA, 64, limit=50, cache_dir=tmp_path, progress=False)
    x = np.asarray(ds.images)
    assert x.shape == (50, 3, 64, 64) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0
    assert x.min() < -0.9 and x.max() > 0.9  # 50 photos always contain near-black and near-white pixels


@needs_celeba
def test_loaded_attributes_are_the_file_rows(tmp_path):
    """Each image's attribute row is the file's row for its file name."""
    t = parse_attributes(ATTR)
    ds = load_celeba(CELEBA, 32, limit=20, cache_dir=tmp_path, progress=False)
    expected = np.stack([t.values[t.row_of[n[:-4]]] for n in ds.filenames])
    np.testing.assert_array_equal(ds.attributes, expected)
    assert ds.attr_names == t.names and ds.attr_mask.all()


@needs_celeba
def test_corrupt_and_truncated_images_are_skipped_and_counted(tmp_path):
    """Garbage bytes and a half-written JPEG are skipped, counted and named; the rest load."""
    root = _copy_celeba_subset(tmp_path / "src", _names(6))
    (root / "img_align_celeba/000002.jpg").write_bytes(b"this is not a jpeg" * 10)
    data = (root / "img_align_celeba/000005.jpg").read_bytes()
    (root / "img_align_celeba/000005.jpg").write_bytes(data[:len(data) // 2])
    ds = load_celeba(root, 32, cache_dir=tmp_path / "cache", progress=False)
    assert len(ds) == 4 and ds.report["skipped"] == 2
    assert ds.filenames == ["000001.jpg", "000003.jpg", "000004.jpg", "000006.jpg"]
    examples = " ".join(ds.report["skipped_examples"])
    assert "000002.jpg" in examples and "000005.jpg" in examples
    assert ds.attributes.shape == (4, 40)  # attribute rows follow the kept images


@needs_celeba
def test_zip_loading_equals_folder_loading(tmp_path):
    """img_align_celeba.zip (read in place) gives the same names, pixels and attributes as the folder."""
    names = _names(12)
    root = _copy_celeba_subset(tmp_path / "folder", names)
    zroot = tmp_path / "zipped"
    zroot.mkdir()
    with zipfile.ZipFile(zroot / "img_align_celeba.zip", "w") as zf:
        for n in names:
            zf.write(root / "img_align_celeba" / n, f"img_align_celeba/{n}")
    shutil.copy(ATTR, zroot / "list_attr_celeba.txt")
    a = load_celeba(root, 32, cache_dir=tmp_path / "c", progress=False)
    b = load_celeba(zroot, 32, cache_dir=tmp_path / "c", progress=False)
    assert b.report["source_kind"] == "zip" and a.report["source_kind"] == "folder"
    assert a.filenames == b.filenames == names
    np.testing.assert_array_equal(a.pixels, b.pixels)  # same bytes, same decoder: exactly equal
    np.testing.assert_array_equal(a.attributes, b.attributes)


@needs_celeba
def test_cache_hit_returns_identical_pixels_without_decoding(tmp_path):
    """A second load opens the cached memmap: nothing decoded, same pixels, names and attributes."""
    first = load_celeba(CELEBA, 32, limit=40, cache_dir=tmp_path, progress=False)
    second = load_celeba(CELEBA, 32, limit=40, cache_dir=tmp_path, progress=False)
    assert (first.report["cache_hit"], first.report["decoded_this_call"]) == (False, 40)
    assert (second.report["cache_hit"], second.report["decoded_this_call"]) == (True, 0)
    assert isinstance(second.pixels, np.memmap)
    np.testing.assert_array_equal(first.pixels, second.pixels)
    assert first.filenames == second.filenames
    np.testing.assert_array_equal(first.attributes, second.attributes)


@needs_celeba
def test_cache_key_depends_on_image_size_and_limit(tmp_path):
    """Different size or limit -> a different cache entry, never a stale one."""
    a = load_celeba(CELEBA, 32, limit=10, cache_dir=tmp_path, progress=False)
    b = load_celeba(CELEBA, 16, limit=10, cache_dir=tmp_path, progress=False)
    c = load_celeba(CELEBA, 32, limit=12, cache_dir=tmp_path, progress=False)
    assert len({a.report["cache_path"], b.report["cache_path"], c.report["cache_path"]}) == 3
    assert b.image_shape == (3, 16, 16) and len(c) == 12 and not c.report["cache_hit"]


@needs_celeba
def test_cache_dir_follows_env_var(tmp_path, monkeypatch):
    """$TINYGAN_CACHE is used when no cache_dir is given."""
    monkeypatch.setenv("TINYGAN_CACHE", str(tmp_path / "envcache"))
    ds = load_celeba(CELEBA, 16, limit=5, progress=False)
    assert Path(ds.report["cache_path"]).parent == tmp_path / "envcache"


@needs_celeba
def test_attribute_filter_count_matches_direct_count_from_file(tmp_path):
    """require={"Young": False}: the matched count equals counting -1s in the file for the 10k images."""
    lines = ATTR.read_text().splitlines()
    col = 1 + lines[1].split().index("Young")
    on_disk = {p.name for p in (CELEBA / "img_align_celeba").iterdir()}
    direct = sum(1 for ln in lines[2:] if ln.split()[0] in on_disk and ln.split()[col] == "-1")
    ds = load_celeba(CELEBA, 16, require={"Young": False}, limit=25, cache_dir=tmp_path, progress=False)
    assert ds.report["matched_filter"] == direct
    assert ds.report["dropped_by_filter"] == len(on_disk) - direct
    assert len(ds) == 25 and not ds.labels("Young").any()


@needs_celeba
def test_images_without_attribute_rows_are_counted_and_dropped_when_filtering(tmp_path):
    """Images the truncated file has no row for: kept (row 0, mask False) unless a filter is set."""
    root = _copy_celeba_subset(tmp_path / "src", _names(3))
    for k, n in enumerate(["150001.jpg", "150002.jpg"]):  # beyond the 20,000 rows present
        shutil.copy(CELEBA / "img_align_celeba" / _names(1, 10 + k)[0], root / "img_align_celeba" / n)
    ds = load_celeba(root, 16, cache_dir=tmp_path / "c", progress=False)
    assert (ds.report["images_with_attrs"], ds.report["images_without_attrs"]) == (3, 2)
    assert ds.attr_mask.tolist() == [True, True, True, False, False]
    assert not ds.attributes[3:].any()
    male = load_celeba(root, 16, require={"Male": True}, cache_dir=tmp_path / "c", progress=False)
    assert male.report["dropped_no_attrs"] == 2 and "150001.jpg" not in male.filenames


@needs_celeba
def test_unknown_attribute_name_lists_valid_names(tmp_path):
    """A misspelt attribute fails before decoding, naming the valid attributes."""
    with pytest.raises(DataError, match="Yuong.*valid names: 5_o_Clock_Shadow.*Young"):
        load_celeba(CELEBA, 16, require={"Yuong": True}, cache_dir=tmp_path, progress=False)


# --- any folder, errors, crop ------------------------------------------------------------------
def _write_images(folder: Path, names, size=(40, 30)):
    rng = np.random.default_rng(0)
    for n in names:
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(p)


def test_any_folder_is_searched_recursively_in_sorted_order(tmp_path):
    """jpg/jpeg/png at any depth are found in sorted order; other files are ignored; square crop."""
    _write_images(tmp_path / "faces", ["b.png", "a.jpg", "sub/c.jpeg", "sub/deeper/d.PNG"])
    (tmp_path / "faces/notes.txt").write_text("not an image")
    ds = load_faces(tmp_path / "faces", 8, cache_dir=tmp_path / "c", progress=False)
    assert ds.filenames == ["a.jpg", "b.png", "sub/c.jpeg", "sub/deeper/d.PNG"]
    assert ds.attributes is None and ds.report["crop"] == "square"
    assert ds.report["original_sizes"] == {"40x30": 4}


def test_missing_path_error_names_path_and_what_was_expected(tmp_path):
    """A path that does not exist: DataError naming it and the accepted sources."""
    with pytest.raises(DataError, match=r"nowhere.*does not exist.*img_align_celeba"):
        load_faces(tmp_path / "nowhere")


def test_folder_without_images_error_names_path(tmp_path):
    """An existing folder with no images: DataError saying which images it looked for, and where."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/readme.txt").write_text("x")
    with pytest.raises(DataError, match=r"no \.jpg/\.jpeg/\.png images in .*empty.*"
                                        r"expected a folder of face images"):
        find_source(tmp_path / "empty")


def test_celeba_crop_is_classic_108_box_at_full_and_half_size():
    """The fractional box is DCGAN's 108x108 centre crop at 178x218 and the same region at 89x109."""
    assert crop_box("celeba", 178, 218) == pytest.approx((35, 55, 143, 163))
    assert crop_box("celeba", 89, 109) == pytest.approx((17.5, 27.5, 71.5, 81.5))
    assert CELEBA_CROP == pytest.approx((35 / 178, 55 / 218, 143 / 178, 163 / 218))


def test_uncached_load_writes_nothing(tmp_path):
    """use_cache=False decodes into RAM and leaves the cache folder empty."""
    _write_images(tmp_path / "faces", ["a.png", "b.png"])
    ds = load_faces(tmp_path / "faces", 8, cache_dir=tmp_path / "c", use_cache=False, progress=False)
    assert len(ds) == 2 and not (tmp_path / "c").exists()
