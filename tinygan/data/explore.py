"""Look at a face dataset before training on it: counts, sizes, attributes, a sample grid.

    python -m tinygan.data.explore ../shared/data/celeba-10k --out explore_out
    python -m tinygan.data.explore              # the embedded procedural faces

Prints image counts, the distribution of original image sizes, attribute frequencies (with the
attribute file's announced/present row counts, which exposes a truncated file), and saves
``samples.png`` (a grid of preprocessed faces) and ``attributes.png`` (bar chart) in ``--out``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tinygan.errors import DataError
from tinygan.images import save_image_grid


def attribute_frequencies(attributes: np.ndarray, names) -> dict[str, float]:
    """Fraction of rows (with an attribute row) where each attribute is +1, most frequent first."""
    have = (attributes != 0).all(axis=1)
    if not have.any():
        return {}
    freq = (attributes[have] > 0).mean(axis=0)
    order = np.argsort(-freq, kind="stable")
    return {names[i]: float(freq[i]) for i in order}


def plot_attribute_frequencies(freqs: dict[str, float], path, title: str = "attribute frequency") -> Path:
    """Horizontal bar chart of ``freqs`` saved to ``path`` (matplotlib, Agg: no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names, values = list(freqs)[::-1], list(freqs.values())[::-1]  # most frequent at the top
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(names) + 1.2))
    ax.barh(names, values, color="#4C72B0")
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of images with the attribute")
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def explore(source=None, out_dir="explore_out", image_size: int = 64, limit: int | None = None,
            n_grid: int = 100, top: int = 10, cache_dir=None, progress: bool = True,
            print_fn=print) -> dict:
    """Load ``source`` (as :func:`tinygan.data.load_faces` does), print what it holds, save plots.

    Returns {"dataset", "sizes", "frequencies", "file_frequencies", "grid", "chart"}; the
    frequencies are over the loaded images and over every row of the attribute file.
    """
    from tinygan.data import load_faces, parse_attributes

    ds = load_faces(source, image_size, limit=limit, cache_dir=cache_dir, progress=progress)
    r = ds.report
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    print_fn(ds.summary())
    sizes = r.get("original_sizes") or {}
    if sizes:
        print_fn(f"\noriginal image sizes (WxH) of the {r.get('images')} loaded images:")
        for size, count in sizes.items():
            print_fn(f"  {size:>11}: {count}")

    result = {"dataset": ds, "sizes": sizes, "frequencies": {}, "file_frequencies": {}}
    if ds.attributes is not None:
        freqs = attribute_frequencies(ds.attributes, ds.attr_names)
        result["frequencies"] = freqs
        print_fn(f"\ntop {top} attributes among the {int(ds.attr_mask.sum())} loaded images with a row:")
        for name in list(freqs)[:top]:
            print_fn(f"  {name:<22} {freqs[name]:6.1%}")
        file_freqs = {}
        vs_file = ", loaded images vs the whole attribute file:" if r.get("attr_file") else ":"
        print_fn("\nall attributes" + vs_file)
        if r.get("attr_file"):
            table = parse_attributes(r["attr_file"])
            file_freqs = attribute_frequencies(table.values, table.names)
            announced = table.announced
            print_fn(f"  (the file has {table.present} rows of {announced if announced else '?'} announced"
                     + (f": TRUNCATED, {announced - table.present} rows missing" if announced
                        and announced > table.present else "") + f"; {table.malformed} malformed lines)")
        result["file_frequencies"] = file_freqs
        for name, f in freqs.items():
            extra = f"   file {file_freqs[name]:6.1%}" if name in file_freqs else ""
            print_fn(f"  {name:<22} {f:6.1%}{extra}")
        result["chart"] = plot_attribute_frequencies(freqs, out / "attributes.png",
                                                     f"attributes of {len(ds)} {ds.name} images")
    n = min(n_grid, len(ds))
    pick = np.linspace(0, len(ds) - 1, n).astype(int)  # spread over the dataset, not just its start
    result["grid"] = save_image_grid(ds.batch(pick), out / "samples.png", nrow=int(np.ceil(np.sqrt(n))))
    print_fn(f"\nsaved {result['grid']}" + (f" and {result['chart']}" if "chart" in result else ""))
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m tinygan.data.explore", description=__doc__.split("\n")[0])
    p.add_argument("path", nargs="?", default=None,
                   help="CelebA folder/zip or image folder (default: embedded procedural faces)")
    p.add_argument("--out", default="explore_out", help="folder for samples.png and attributes.png")
    p.add_argument("--size", type=int, default=64, help="preprocessed image size (default 64)")
    p.add_argument("--limit", type=int, default=None, help="load only the first N images")
    p.add_argument("--cache-dir", default=None,
                   help="cache folder (default $TINYGAN_CACHE or ~/.cache/tinygan)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    a = p.parse_args(argv)
    if a.size < 1:
        p.error(f"--size must be a positive number of pixels, got {a.size}")
    if a.limit is not None and a.limit < 1:
        p.error(f"--limit must be a positive number of images, got {a.limit}")
    try:
        explore(a.path, a.out, a.size, a.limit, cache_dir=a.cache_dir, progress=not a.no_progress)
    except DataError as e:  # a problem with the user's data: one line, no traceback
        sys.exit(f"error: {e}")
    except OSError as e:    # --out not writable, a file where the folder should be, ...
        sys.exit(f"error: {e.filename or a.out}: {e.strerror or e} (--out must be a writable folder)")
    except KeyboardInterrupt:
        sys.exit("interrupted")


if __name__ == "__main__":
    main()
