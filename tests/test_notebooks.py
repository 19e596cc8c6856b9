"""The lessons as notebooks: their `# %%` cells read as a notebook, and one runs in a Jupyter kernel.

Needs the notebooks extra (`pip install -e ".[notebooks]"`: jupytext, nbclient, ipykernel); without
it the file is skipped.  About 8 s on 2 CPU cores, most of it the kernel running lesson 3.
"""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

EXTRA = 'needs the notebooks extra: pip install -e ".[notebooks]"'
jupytext = pytest.importorskip("jupytext", reason=EXTRA)
pytest.importorskip("nbclient", reason=EXTRA)
pytest.importorskip("ipykernel", reason=EXTRA)

from ipykernel.kernelspec import write_kernel_spec  # noqa: E402
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "lessons"
LESSON_FILES = sorted(LESSONS.glob("[0-9][0-9]_*.py"))


def cells_of(path: Path) -> list:
    """The lesson read by jupytext, as a notebook's cells."""
    return jupytext.read(path).cells


@pytest.mark.parametrize("path", LESSON_FILES, ids=lambda p: p.stem[:2])
def test_lesson_reads_as_alternating_markdown_and_code_cells(path):
    cells = cells_of(path)
    kinds = [cell.cell_type for cell in cells]
    # every code cell comes right after the markdown cell that explains it
    assert kinds == ["markdown", "code"] * (len(cells) // 2), kinds
    assert len(cells) >= 8, f"{path.name}: {len(cells)} cells; expected an introduction and several parts"
    assert cells[0].source.startswith(f"# Lesson {int(path.name[:2])}:"), cells[0].source[:80]
    assert "def main(argv=None)" in cells[-1].source and 'if __name__ == "__main__":' in cells[-1].source


@pytest.mark.parametrize("path", LESSON_FILES, ids=lambda p: p.stem[:2])
def test_lesson_code_cells_compile_and_hold_one_section_each(path):
    for i, cell in enumerate(cells_of(path)):
        if cell.cell_type == "code":
            compile(cell.source, f"{path.name}, cell {i}", "exec")
            assert cell.source.count("C.section(") <= 1, f"{path.name}, cell {i}: one part per cell"


def test_lesson_passes_its_own_name_to_parse_args():
    """main() names its lesson itself (a notebook has no __file__): the name must be the file's."""
    for path in LESSON_FILES:
        names = re.findall(r'C\.parse_args\(argv, "(\w+)"', path.read_text())
        assert names == [path.stem], (path.name, names)


def test_setup_cell_imports_the_helpers_from_the_repository_root_too():
    """Jupyter starts a notebook in its own folder (lessons/); some setups start it in the root."""
    setup = next(c.source for c in cells_of(LESSONS / "03_activations_and_bce.py") if c.cell_type == "code")
    result = subprocess.run([sys.executable, "-c", setup + "\nprint(C.LESSONS.name)"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["lessons"]


@pytest.fixture
def kernel_manager(tmp_path):
    """A kernel of this very interpreter, from a kernel spec written for the test (nothing installed);
    shut down afterwards (nbclient leaves a kernel it was handed running)."""
    write_kernel_spec(tmp_path / "kernels" / "tinygan-test")
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    km = KernelManager(kernel_name="tinygan-test", kernel_spec_manager=specs)
    yield km
    if km.has_kernel:
        km.shutdown_kernel(now=True)


def test_lesson_03_converted_to_a_notebook_runs_in_a_kernel(tmp_path, kernel_manager, monkeypatch):
    out = tmp_path / "out"
    monkeypatch.setenv("TINYGAN_LESSON_ARGS", f"--quick --out {shlex.quote(str(out))}")
    notebook = jupytext.read(LESSONS / "03_activations_and_bce.py")
    # run where Jupyter runs a notebook: in its own folder, lessons/
    client = NotebookClient(notebook, km=kernel_manager, timeout=120,
                            resources={"metadata": {"path": str(LESSONS)}})
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    # |d(-log p)/dlogit| / |d log(1-p)/dlogit| = (1 - p) / p = 999 at p = 0.001
    assert re.search(r"\|grad\| ratio non-sat\. / sat\. at p = 0\.001 \.+ 999\n", text), text[-3000:]
    # log(1 + e^100) in float32 through the logit: 100, where the naive form overflows
    assert re.search(r"\n +100 +inf .* 100 +1\n", text), text
    # the two figures are shown inline and saved where TINYGAN_LESSON_ARGS said
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) == 2
    assert (out / "activations.png").is_file() and (out / "generator_losses.png").is_file()
