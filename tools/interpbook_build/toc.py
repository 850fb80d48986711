"""The book's pages: those listed in ``_toc.yml`` and which of them are notebooks. One reader
for the catalog, the build and the tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

PAGE_SUFFIXES = (".md", ".ipynb", ".rst")


def toc_entries(toc_path: str | Path) -> list[str]:
    """Every ``root`` and ``file`` entry of a Jupyter Book ``_toc.yml``, in the order the book
    shows them, as written (relative to the toc's folder) and without a suffix."""
    import yaml

    data = yaml.safe_load(Path(toc_path).read_text(encoding="utf-8")) or {}
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    entry = str(node[key])
                    for suffix in PAGE_SUFFIXES:
                        entry = entry.removesuffix(suffix)
                    if entry not in found:
                        found.append(entry)
            for value in node.values():
                if isinstance(value, (list, Mapping)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return found


def is_notebook_text(text: str) -> bool:
    """Whether a page's MyST text is a notebook (jupytext front matter with a kernelspec): only
    those pages are executed."""
    front = text.split("\n---", 1)[0] if text.startswith("---") else ""
    return "kernelspec:" in front
