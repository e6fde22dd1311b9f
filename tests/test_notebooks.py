"""Every notebook in notebooks/ runs top to bottom in a Jupyter kernel, headless (nbclient), with short parameters.

The short parameters go into a cell inserted after the notebook's "parameters" cell, as papermill would: the
notebook's own defaults (the chapter's run, or a stated shorter one) stay as a learner finds them. A cell that
raises fails its notebook's test with the cell's traceback. `./dev test -k notebook` runs exactly these.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (requirements/current.txt has it)")
nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (requirements/current.txt has it)")
pytest.importorskip("ipykernel", reason="ipykernel is not installed: no Jupyter kernel to run the notebooks in")

pytestmark = pytest.mark.realdata

SHORT = {  # what CI runs: a few hundred images, one epoch, small images where the network allows
    "5.5-lenet": "limit = 512\nnum_epochs = 1",
    "5.6-alexnet": "limit = 256\nnum_epochs = 1\nresize = 96",
    "5.7-vgg": "limit = 128\nnum_epochs = 1\nresize = 32\nratio = 4",
    "5.8-nin": "limit = 256\nnum_epochs = 1\nresize = 96",
    "5.9-googlenet": "limit = 256\nnum_epochs = 1\nresize = 32",
    "inside-conv2d": "",
    "inside-autograd": "",
}


def have_data() -> bool:
    from minicnn.data.fashion_mnist import FILES, search_dirs

    return any(all((d / spec.name).is_file() for spec in FILES.values()) for d in search_dirs())


def execute(name: str):
    """The notebook, executed with the short parameters; returns the executed notebook."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    if SHORT[name]:
        injected = nbformat.v4.new_code_cell(SHORT[name], metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(at + 1, injected)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "MINICNN_OFFLINE": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline"}  # fmt: skip
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}, allow_errors=False
    )
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        client.execute()
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    return nb


def outputs(nb) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", "") if out.get("output_type") == "stream" else str(out.get("data", "")))
    return "\n".join(text)


@pytest.fixture(scope="module", autouse=True)
def data_present():
    if not have_data():
        pytest.skip("the notebooks read the real Fashion-MNIST, which is not found here")


def test_the_notebooks_directory_holds_one_notebook_per_section_and_no_outputs():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(SHORT)
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} has outputs"
        assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1, path.name


@pytest.mark.parametrize("name", ["5.5-lenet", "5.6-alexnet", "5.7-vgg", "5.8-nin"])
def test_notebook_runs_top_to_bottom(name):
    text = outputs(execute(name))
    assert re.search(r"epoch 1, loss [\d.]+, train acc [\d.]+, test acc [\d.]+, time", text), text[-2000:]
    assert "algorithm" in text and "sgd update" in text  # the summary's column and the profile's table


def test_googlenet_notebook_runs_and_prints_the_chapters_shapes():
    text = outputs(execute("5.9-googlenet"))
    shapes = re.findall(r"(\w+) output shape:\s+(\(.*?\))", text)
    assert [s for _, s in shapes] == [
        "(1, 64, 24, 24)", "(1, 192, 12, 12)", "(1, 480, 6, 6)", "(1, 832, 3, 3)", "(1, 1024, 1, 1)", "(1, 10)",
    ]  # fmt: skip
    assert re.search(r"epoch 1, loss [\d.]+", text)


def test_inside_conv2d_notebook_checks_the_adjoint_and_the_gradients():
    text = outputs(execute("inside-conv2d"))
    assert "equal to rounding: True" in text and "ops.conv2d gives the same: True" in text
    differences = [float(v) for v in re.findall(r"central differences ([\d.e+-]+)", text)]
    assert len(differences) == 3 and max(differences) < 1e-6, text


def test_inside_autograd_notebook_sums_the_gradients_of_a_value_used_twice():
    text = outputs(execute("inside-autograd"))
    assert "Mul" in text and "Sum" in text and "RuntimeError: backward()" in text
    for line in re.findall(r"d loss / d [xw]: \[(.*?)\] expected \[(.*?)\]", text):
        assert [float(v) for v in line[0].split()] == [float(v) for v in line[1].split()], line
