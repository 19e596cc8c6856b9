"""The embedded procedural face dataset: deterministic, in range, varied, cached, any size."""
import numpy as np

from tinygan.data import embedded_faces, load_faces
from tinygan.data.procedural import ATTR_NAMES


def test_same_seed_draws_identical_faces():
    """Two uncached draws with one seed are bit-identical."""
    a = embedded_faces(24, 32, seed=5, use_cache=False, progress=False)
    b = embedded_faces(24, 32, seed=5, use_cache=False, progress=False)
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.attributes, b.attributes)


def test_different_seeds_draw_different_faces():
    """Another seed gives other faces."""
    a = embedded_faces(8, 32, seed=0, use_cache=False, progress=False)
    b = embedded_faces(8, 32, seed=1, use_cache=False, progress=False)
    assert not np.array_equal(a.pixels, b.pixels)


def test_face_i_does_not_depend_on_n():
    """The first 10 faces of n=30 are the faces of n=10 (each face is seeded by (seed, i))."""
    a = embedded_faces(10, 32, seed=2, use_cache=False, progress=False)
    b = embedded_faces(30, 32, seed=2, use_cache=False, progress=False)
    np.testing.assert_array_equal(a.pixels, b.pixels[:10])


def test_faces_are_nchw_float_in_unit_range():
    """images: (N, 3, 64, 64) float32 within [-1, 1]."""
    x = np.asarray(embedded_faces(16, 64, use_cache=False, progress=False).images)
    assert x.shape == (16, 3, 64, 64) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_faces_vary_across_images():
    """Per-pixel std across 64 faces averages well above 0.15 (in [-1, 1] units).

    Measured 0.42 (64 CelebA crops: 0.40), so 0.15 leaves a wide margin yet still fails a drawing
    that varied only, say, the background tint.
    """
    x = np.asarray(embedded_faces(64, 32, use_cache=False, progress=False).images)
    assert x.std(axis=0).mean() > 0.15
    # and no two faces are the same picture
    flat = x.reshape(len(x), -1)
    d = ((flat[:, None] - flat[None]) ** 2).mean(-1) + np.eye(len(x))
    assert d.min() > 1e-3


def test_faces_have_a_face_in_the_middle():
    """The centre is skin-ish (red > blue on average), not background: the layout is stable."""
    x = np.asarray(embedded_faces(64, 32, use_cache=False, progress=False).images)
    centre = x[:, :, 14:18, 14:18].mean(axis=(2, 3))
    assert (centre[:, 0] > centre[:, 2]).mean() > 0.9  # skin tones are red-dominant; glasses rarely cover it


def test_any_size_including_non_square():
    """Sizes other than 64 work, including (H, W) tuples."""
    assert embedded_faces(3, 128, use_cache=False, progress=False).image_shape == (3, 128, 128)
    assert embedded_faces(3, (24, 40), use_cache=False, progress=False).image_shape == (3, 24, 40)


def test_second_call_is_a_cache_hit_with_identical_faces(tmp_path):
    """Cached like real data: the second call draws nothing and returns the same pixels."""
    a = embedded_faces(20, 16, seed=0, cache_dir=tmp_path, progress=False)
    b = embedded_faces(20, 16, seed=0, cache_dir=tmp_path, progress=False)
    assert (a.report["drawn_this_call"], b.report["drawn_this_call"]) == (20, 0) and b.report["cache_hit"]
    np.testing.assert_array_equal(a.pixels, b.pixels)
    np.testing.assert_array_equal(a.attributes, b.attributes)


def test_synthetic_attributes_are_plus_minus_one_and_filterable(tmp_path):
    """Attributes use CelebA's {-1, +1} coding, and load_faces(require=...) filters on them."""
    ds = embedded_faces(200, 16, cache_dir=tmp_path, progress=False)
    assert ds.attr_names == ATTR_NAMES and set(np.unique(ds.attributes)) == {-1, 1}
    smiling = load_faces(None, 16, n=200, require={"Smiling": True}, cache_dir=tmp_path, progress=False)
    assert len(smiling) == ds.labels("Smiling").sum() and 0 < len(smiling) < 200


def test_load_faces_without_source_is_the_embedded_set(tmp_path):
    """load_faces() with no source returns procedural faces (limit counts as n)."""
    ds = load_faces(limit=12, image_size=16, cache_dir=tmp_path, progress=False)
    assert len(ds) == 12 and ds.report["source_kind"] == "procedural"
