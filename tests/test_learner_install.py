"""What a learner installs is enough: a fresh virtual environment with torch (Colab already has
it) and the package `./code` alone — not requirements.txt, not the build tooling — runs a
generated solution notebook top to bottom. This is what the Colab setup cell relies on.

The notebook runs in a Jupyter kernel (ipykernel and nbclient are installed as the runner, as
Colab has a kernel); everything else must come from `interpbook`'s declared dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from _book import REPO, SITE

TORCH = "torch==2.13.0"  # the pinned CPU wheel, as in requirements.txt
NOTEBOOK = "notebooks/chapters/induction/01-transformerlens-basics.solutions.ipynb"


def test_fresh_venv_with_only_the_package_runs_a_solution_notebook(tmp_path):
    notebook = SITE / NOTEBOOK
    assert notebook.exists(), f"the build did not produce {notebook}"
    venv = tmp_path / "venv"
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    def run(*cmd: str, timeout: int = 900) -> str:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout)
        assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r.stdout

    start = time.perf_counter()
    run(sys.executable, "-m", "venv", str(venv))
    run(str(py), "-m", "pip", "install", "-q", TORCH)
    # Install from a copy: pip builds in the source folder, and the checkout stays as it was.
    code = shutil.copytree(REPO / "code", tmp_path / "code", ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__"))
    run(str(py), "-m", "pip", "install", "-q", str(code), "ipykernel", "nbclient")
    installed = run(str(py), "-m", "pip", "list", "--format=freeze").lower()
    for absent in ("interpbook-build", "jupyter-book", "sphinx", "jupytext", "myst-nb"):
        assert f"{absent}==" not in installed, f"the learner's install pulled in {absent}"
    install_s = time.perf_counter() - start
    script = (
        "import nbformat, sys\n"
        "from nbclient import NotebookClient\n"
        f"nb = nbformat.read({str(notebook)!r}, as_version=4)\n"
        "nb.cells.insert(0, nbformat.v4.new_code_cell('import sys; print(sys.prefix)'))\n"
        "NotebookClient(nb, timeout=600, kernel_name='python3').execute()\n"
        "print(nb.cells[0].outputs[0]['text'].strip())\n"
    )
    out = run(str(py), "-c", script)
    assert out.strip().splitlines()[-1] == str(venv), f"the notebook ran in another Python: {out}"
    print(f"fresh venv: install {install_s:.0f} s, notebook {time.perf_counter() - start - install_s:.0f} s")
