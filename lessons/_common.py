"""Small helpers shared by the lessons: arguments, the output folder, printing and figures.

Every lesson is run as ``python lessons/NN_name.py [--quick] [--out DIR]`` and imported by the
tests as a module whose ``main(argv)`` returns a dict of the numbers it computed.  Importing this
module also makes ``import tinygan`` work from a plain checkout (no ``pip install`` needed).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import textwrap
import time
from pathlib import Path

# The lessons' matrices are small: a second BLAS thread costs more in hand-offs than it saves,
# and on a busy machine threads that wait for each other can make a step many times slower.
# It can only take effect before NumPy loads (the lessons import _common first; under pytest
# NumPy is already loaded and nothing is changed).  Set the variable yourself to override it.
if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("tinygan") is None:      # a checkout that was not pip-installed
    sys.path.insert(0, str(ROOT))

WIDTH = 92


def parse_args(argv, lesson_file: str, description: str, add_arguments=None) -> argparse.Namespace:
    """--quick (a few seconds, used by the tests) and --out (default lessons_out/<lesson name>/).

    ``add_arguments(parser)`` may add lesson-specific options.  ``args.out`` is a created Path.
    """
    name = Path(lesson_file).stem
    parser = argparse.ArgumentParser(prog=f"python lessons/{name}.py", description=description)
    parser.add_argument("--quick", action="store_true",
                        help="a smaller, faster run (a few seconds): what the tests use")
    parser.add_argument("--out", default=str(Path("lessons_out") / name),
                        help="folder for this lesson's figures (default: %(default)s)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    args.out = Path(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def title(text: str) -> None:
    """The lesson's banner."""
    print("=" * WIDTH)
    print(text)
    print("=" * WIDTH)


def section(text: str) -> None:
    print()
    print(f"-- {text} " + "-" * max(0, WIDTH - len(text) - 4))


def say(text: str) -> None:
    """An explanatory paragraph (dedented and re-wrapped; blank lines separate paragraphs)."""
    paragraphs = textwrap.dedent(text).strip().split("\n\n")
    for p in paragraphs:
        print(textwrap.fill(" ".join(p.split()), WIDTH))


def show(label: str, value, fmt: str | None = None) -> None:
    """One computed number, aligned: ``  label ............ value``."""
    if fmt is not None:
        value = format(value, fmt)
    elif isinstance(value, float):
        value = f"{value:.4g}"
    print(f"  {label} ".ljust(52, ".") + f" {value}")


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path) -> Path:
    """Save and close a matplotlib figure, and say where it went."""
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    print(f"  [figure] {path}")
    return path


class Stopwatch:
    """``with Stopwatch() as t: ...`` then ``t.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False
