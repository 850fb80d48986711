"""Helpers shared by the tests: where the chapters are, and a Jupyter kernel driven cell by cell."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
SITE = REPO / "_build" / "html"


def toc_pages() -> list[str]:
    """Every page in _toc.yml, as a path relative to the repo without suffix, in book order."""
    from interpbook_build.toc import toc_entries

    return toc_entries(REPO / "_toc.yml")


def chapter_pages() -> list[Path]:
    """Chapter pages that have exercises (``book/chapters/**.md`` listed in the toc)."""
    from interpbook_build.exercises import page_exercises

    out = []
    for page in toc_pages():
        if page.startswith("book/chapters/"):
            path = REPO / f"{page}.md"
            if page_exercises(path)[1]:
                out.append(path)
    return out


def section_pages() -> list[Path]:
    """Section pages of the chapters (``book/chapters/<chapter>/<NN>-<section>.md`` in the toc)."""
    from interpbook_build.sections import is_section_page

    return [REPO / f"{p}.md" for p in toc_pages() if p.startswith("book/chapters/") and is_section_page(f"{p}.md")]


def notebook_pages() -> list[Path]:
    """Every page in the toc that is executed (a notebook: jupytext front matter)."""
    from interpbook_build.toc import is_notebook_text

    pages = [REPO / f"{p}.md" for p in toc_pages()]
    return [p for p in pages if is_notebook_text(p.read_text(encoding="utf-8"))]


@dataclass
class CellResult:
    ok: bool
    ename: str = ""
    evalue: str = ""
    text: str = ""


class Kernel:
    """A real IPython kernel: run source strings one at a time, see errors by name."""

    def __init__(self, cwd: Path, timeout: int = 600):
        from nbclient import NotebookClient

        self.nb = nbformat.v4.new_notebook()
        self.client = NotebookClient(self.nb, timeout=timeout, kernel_name="python3",
                                     allow_errors=True, resources={"metadata": {"path": str(cwd)}})
        self._ctx = None
        self._n = 0

    def __enter__(self):
        self._ctx = self.client.setup_kernel()
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)

    def run(self, source: str) -> CellResult:
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.execute_cell(cell, self._n)
        self._n += 1
        text = "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
        for o in cell.outputs:
            if o.get("output_type") == "error":
                return CellResult(False, o["ename"], o["evalue"], text)
        return CellResult(True, text=text)
