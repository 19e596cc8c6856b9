"""Small helpers shared by the lessons: arguments, the output folder, printing and figures.

Every lesson is run as ``python lessons/NN_name.py [--quick] [--out DIR]``, imported by the tests
as a module whose ``main(argv)`` returns a dict of the numbers it computed, or opened as a notebook
(its ``# %%`` cells).  In a notebook there are no command-line arguments: ``main()`` reads them
from the environment variable TINYGAN_LESSON_ARGS (e.g. ``--quick``), and figures are shown
inline as well as saved.  Importing this module also makes ``import tinygan`` work from a plain
checkout (no ``pip install`` needed).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
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

LESSONS = Path(__file__).resolve().parent
ROOT = LESSONS.parent
if importlib.util.find_spec("tinygan") is None:      # a checkout that was not pip-installed
    sys.path.insert(0, str(ROOT))

WIDTH = 92
NOTEBOOK_ARGS = "TINYGAN_LESSON_ARGS"     # a notebook's command line, e.g. "--quick --out /tmp/x"


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Jupyter, VS Code, Colab), where sys.argv is the kernel's own."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def parse_args(argv, lesson: str, description: str, add_arguments=None) -> argparse.Namespace:
    """--quick (a few seconds, used by the tests) and --out (default lessons_out/<lesson name>/).

    ``lesson`` is the lesson's name ("03_activations_and_bce"; a path works too).  ``argv=None``
    means sys.argv in a script (and under IPython's ``%run``) and $TINYGAN_LESSON_ARGS in a
    notebook, whose sys.argv is the kernel's own.  ``add_arguments(parser)`` may add
    lesson-specific options.  ``args.out`` is a created Path.
    """
    name = Path(lesson).stem
    notebook = in_notebook()
    if argv is None and notebook and Path(sys.argv[0]).stem != name:   # not `%run lesson.py ARGS`
        argv = shlex.split(os.environ.get(NOTEBOOK_ARGS, ""))
    # a notebook runs in lessons/: its figures still go to the repository's lessons_out/
    out = (ROOT if notebook else Path()) / "lessons_out" / name
    parser = argparse.ArgumentParser(prog=f"python lessons/{name}.py", description=description)
    parser.add_argument("--quick", action="store_true",
                        help="a smaller, faster run (a few seconds): what the tests use")
    parser.add_argument("--out", default=str(out),
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
    """matplotlib.pyplot; in a script with the non-interactive Agg backend (no display needed),
    in a notebook with the notebook's own (inline) backend."""
    import matplotlib
    if not in_notebook():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path) -> Path:
    """Save and close a matplotlib figure, and say where it went; a notebook also shows it."""
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    if in_notebook():
        from IPython.display import display
        display(fig)
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
