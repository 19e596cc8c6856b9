"""Image grids (tinygan.images) and the data-exploration report (tinygan.data.explore)."""
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinygan.data.explore import explore
from tinygan.images import make_grid, save_image_grid, to_uint8


def test_to_uint8_maps_unit_range_ends_exactly_and_clips():
    """-1 -> 0, 0 -> 128 (round half up of 127.5), +1 -> 255; values beyond are clipped."""
    x = np.array([-2.0, -1.0, 0.0, 1.0, 3.0], np.float32).reshape(1, 1, 1, 5)
    assert to_uint8(x).ravel().tolist() == [0, 0, 128, 255, 255]


def test_save_image_grid_writes_png_of_expected_size(tmp_path):
    """100 images 8x8, 10 per row, padding 2 -> a 102x102 RGB PNG; no temp file left behind."""
    x = np.random.default_rng(0).uniform(-1, 1, (100, 3, 8, 8)).astype(np.float32)
    path = save_image_grid(x, tmp_path / "grid.png", nrow=10)
    with Image.open(path) as im:
        assert im.size == (102, 102) and im.mode == "RGB"
    assert os.listdir(tmp_path) == ["grid.png"]


def test_grid_places_image_i_at_row_i_div_nrow():
    """Tile order is row-major: image 4 of nrow=3 sits in row 1, column 1."""
    x = -np.ones((5, 3, 2, 2), np.float32)
    x[4] = 1.0
    g = make_grid(x, nrow=3, padding=1, pad_value=7)
    assert g.shape == (1 + 2 * 3, 1 + 3 * 3, 3)
    assert (g[4:6, 4:6] == 255).all() and (g[1:3, 1:3] == 0).all()
    assert (g[4:6, 7:9] == 7).all()  # the empty sixth cell stays padding


def test_save_image_grid_replaces_existing_file(tmp_path):
    """Saving again overwrites the old grid in place (the trainer rewrites one file)."""
    p = tmp_path / "samples.png"
    save_image_grid(-np.ones((4, 3, 4, 4)), p, nrow=2)
    save_image_grid(np.ones((4, 3, 4, 4)), p, nrow=2, padding=0)
    with Image.open(p) as im:
        assert np.asarray(im).min() == 255


def test_explore_embedded_saves_grid_and_chart(tmp_path):
    """explore() on the embedded faces saves samples.png and attributes.png and returns frequencies."""
    lines = []
    res = explore(None, tmp_path / "out", image_size=16, limit=40, n_grid=16, cache_dir=tmp_path / "c",
                  progress=False, print_fn=lines.append)
    assert Path(res["grid"]).is_file() and Path(res["chart"]).is_file()
    assert all(0 <= f <= 1 for f in res["frequencies"].values())
    assert "40 images" in lines[0]


def _celeba_root():
    """$TINYGAN_CELEBA or ../shared/data/celeba-10k, whichever holds img_align_celeba/ first."""
    shared = Path(__file__).resolve().parents[1].parent / "shared/data/celeba-10k"
    for c in (os.environ.get("TINYGAN_CELEBA"), shared):
        if c and (Path(c) / "img_align_celeba").is_dir() and (Path(c) / "list_attr_celeba.txt").is_file():
            return Path(c)
    return None


CELEBA = _celeba_root()


@pytest.mark.skipif(CELEBA is None,
                    reason="shared CelebA sample not found (../shared/data/celeba-10k or $TINYGAN_CELEBA)")
def test_explore_celeba_reports_truncated_attribute_file(tmp_path):
    """On the shared sample explore prints the size distribution and flags the truncated attribute file."""
    lines = []
    res = explore(CELEBA, tmp_path / "out", image_size=16, limit=30, n_grid=9, cache_dir=tmp_path / "c",
                  progress=False, print_fn=lines.append)
    text = "\n".join(lines)
    assert "TRUNCATED, 182599 rows missing" in text and "89x109: 30" in text
    assert len(res["file_frequencies"]) == 40


@pytest.mark.parametrize("argv, phrase", [
    (["{tmp}/nowhere"], "does not exist"),
    (["{tmp}", "--limit", "0"], "--limit must be a positive number"),
])
def test_explore_command_reports_user_errors_in_one_line(tmp_path, capsys, argv, phrase):
    """python -m tinygan.data.explore with a bad path or flag: exits non-zero with one 'error:' line or
    argparse's usage error, no traceback."""
    from tinygan.data.explore import main
    with pytest.raises(SystemExit) as info:
        main([a.format(tmp=tmp_path) for a in argv] + ["--out", str(tmp_path / "out"), "--no-progress"])
    message = str(info.value.code) + capsys.readouterr().err
    assert info.value.code not in (0, None) and phrase in message and "Traceback" not in message
