"""Turn a chapter page (MyST markdown) into a learner's exercise notebook and a solution notebook.

* MyST directives become plain notebook markdown (exercise headers, ``<details>`` hints,
  block-quoted admonitions); glue roles become the values the executed page computed.
* Cells tagged ``solution`` become stubs in the exercise notebook (see ``exercises.make_stub``).
* The first cell installs the learner's package, ``interpbook``, at the commit the notebook was
  built from, in Colab, and does nothing elsewhere; running it twice is harmless.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import nbformat

from interpbook_build.exercises import (
    cell_tags,
    find_exercises,
    make_stub,
    parse_exercise,
    read_notebook,
    split_options,
    strip_markers,
)

DOTS = ("●", "○")
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


class NotebookConversionError(ValueError):
    pass


def rating(n: int) -> str:
    return DOTS[0] * n + DOTS[1] * (5 - n)


def setup_cell_source(package_spec: str) -> str:
    return (
        "# Setup: in Colab, install the book's package (models, checks, plots); elsewhere this\n"
        "# does nothing. Running it again is harmless.\n"
        "import importlib.util, subprocess, sys\n"
        "\n"
        'if "google.colab" in sys.modules and importlib.util.find_spec("interpbook") is None:\n'
        "    subprocess.run(\n"
        f'        [sys.executable, "-m", "pip", "install", "-q", "{package_spec}"], check=True\n'
        "    )\n"
    )


def package_spec(repo_url: str, ref: str | None) -> str:
    """pip's spec for the learner's package at ``ref`` (the commit the notebook is built from, so
    the notebook and the package it installs cannot drift apart; ``main`` outside a checkout)."""
    return f"interpbook @ git+{repo_url.rstrip('/')}.git@{ref or 'main'}#subdirectory=code"


# --- MyST markdown -> notebook markdown -------------------------------------------------------

_ADMONITIONS = {"note", "tip", "important", "warning", "caution", "attention", "hint", "seealso", "admonition"}
_OPEN = re.compile(r"^(?P<fence>:{3,}|`{3,})\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*)$")


def _glue_text(name: str, glue: dict[str, str], where: str) -> str:
    key = name.split(":")[0]
    if key not in glue:
        if glue:
            raise NotebookConversionError(f"{where}: glue variable {key!r} was not computed by the page.")
        return "(value computed when the page is built)"
    value = glue[key]
    fmt = name.split(":", 1)[1] if ":" in name else ""
    if fmt:
        try:
            value = format(float(value), fmt)
        except ValueError:
            pass
    return value


def convert_roles(text: str, glue: dict[str, str], where: str) -> str:
    text = re.sub(r"\{glue:text\}`([^`]+)`", lambda m: _glue_text(m.group(1), glue, where), text)
    text = re.sub(r"\{glue\}`([^`]+)`", lambda m: _glue_text(m.group(1), glue, where), text)
    text = re.sub(r"\{math\}`([^`]+)`", r"$\1$", text)
    # {ref}`text <label>` / {doc}`text <path>` -> text; {ref}`label` -> label
    text = re.sub(r"\{(?:ref|doc|numref|term)\}`([^`<]+?)\s*<[^`>]+>`", r"\1", text)
    text = re.sub(r"\{(?:ref|doc|numref|term)\}`([^`]+)`", r"\1", text)
    return text


def convert_markdown(source: str, glue: dict[str, str], where: str) -> str:
    """Rewrite one markdown cell's MyST constructs as plain notebook markdown."""
    lines = source.splitlines()
    out: list[str] = []
    stack: list[tuple[str, str]] = []  # (closing fence, kind)
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stack and stripped == stack[-1][0]:
            _, kind = stack.pop()
            if kind == "details":
                out += ["", "</details>"]
            elif kind == "quote":
                pass
            i += 1
            continue
        m = _OPEN.match(stripped)
        if m:
            name, arg, fence = m.group("name"), m.group("arg").strip(), m.group("fence")
            opts, i = split_options(lines, i + 1)
            if name == "exercise":
                ex = parse_exercise(arg, opts, where)  # the one schema; no defaults
                out += [
                    f"### Exercise: {ex.title}",
                    "",
                    f"> **Difficulty** {rating(ex.difficulty)} · "
                    f"**Importance** {rating(ex.importance)} · "
                    f"about {ex.minutes} minutes",
                    "",
                ]
                stack.append((fence, "plain"))
            elif name == "dropdown":
                out += ["<details>", f"<summary>{arg or 'Details'}</summary>", ""]
                stack.append((fence, "details"))
            elif name in _ADMONITIONS:
                title = arg if name == "admonition" else name.capitalize() + (f": {arg}" if arg else "")
                out += [f"**{title}**", ""]
                stack.append((fence, "plain"))
            elif name == "open-problems-for-chapter":
                out.append("See the book's open-problems catalog for problems this chapter prepares you for.")
                while i < len(lines) and lines[i].strip() != fence:
                    i += 1
                i += 1
            elif name in ("code-block", "code"):
                out.append("```" + (arg or "python"))
                stack.append((fence, "code"))
                while i < len(lines) and lines[i].strip() != fence:
                    out.append(lines[i])
                    i += 1
                stack.pop()
                out.append("```")
                i += 1
            elif name == "raw" and arg == "html":
                # Notebook markdown renders inline HTML (an SVG diagram) as it is.
                while i < len(lines) and lines[i].strip() != fence:
                    out.append(lines[i])
                    i += 1
                i += 1
            elif name == "math":
                out.append("$$")
                while i < len(lines) and lines[i].strip() != fence:
                    out.append(lines[i])
                    i += 1
                out.append("$$")
                i += 1
            else:
                raise NotebookConversionError(
                    f"{where}: the MyST directive {{{name}}} has no notebook form yet. Use one of "
                    "exercise, dropdown, note/tip/important/warning/admonition, code-block, math, "
                    "or teach interpbook.notebooks.convert_markdown about it."
                )
            continue
        if re.match(r"^\(.+\)=\s*$", stripped):  # MyST target labels
            i += 1
            continue
        out.append(convert_roles(line, glue, where))
        i += 1
    if stack:
        raise NotebookConversionError(f"{where}: directive fence {stack[-1][0]!r} is never closed.")
    return "\n".join(out).strip("\n")


# --- glue values from the executed page -------------------------------------------------------


def glue_values(md_path: str | Path, cache_dir: str | Path | None) -> dict[str, str]:
    """Values the page glued, read from the execution cache (myst-nb strips glue outputs from
    the notebooks it writes, the cache keeps them). Empty when the page was not executed."""
    if cache_dir is None or not Path(cache_dir).exists():
        return {}
    from jupyter_cache import get_cache

    uri = str(Path(md_path).resolve())
    records = [r for r in get_cache(str(cache_dir)).list_cache_records() if r.uri == uri]
    if not records:
        return {}
    latest = max(records, key=lambda r: r.created)
    nb = json.loads(nbformat.writes(get_cache(str(cache_dir)).get_cache_bundle(latest.pk).nb))
    values: dict[str, str] = {}
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {}).get("scrapbook")
            if meta:
                prefix = meta.get("mime_prefix", "")
                text = output.get("data", {}).get(prefix + "text/plain", "")
                text = "".join(text) if isinstance(text, list) else text
                values[meta["name"]] = text.strip("'\"")
    return values


# --- assembly ---------------------------------------------------------------------------------


def build_notebooks(md_path: str | Path, repo_url: str, cache_dir: str | Path | None = None,
                    page_url: str | None = None, ref: str | None = None
                    ) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """(exercise notebook, solution notebook) for one chapter page; the setup cell installs the
    package at ``ref`` (a commit)."""
    where = str(md_path)
    src = read_notebook(md_path)
    find_exercises(src, where=where, page=md_path)  # validates the exercise structure
    glue = glue_values(md_path, cache_dir)
    setup = nbformat.v4.new_code_cell(setup_cell_source(package_spec(repo_url, ref)), id="setup")
    setup.metadata["tags"] = ["setup"]
    notebooks = []
    for kind in ("exercises", "solutions"):
        cells = [setup]
        if page_url:
            note = (f"*This is the {kind} notebook for [this page of the book]({page_url}). "
                    + ("Fill in the cells that raise `NotImplementedError`, then run the check "
                       "below each one.*" if kind == "exercises" else "Every exercise is filled in.*"))
            cells.insert(0, nbformat.v4.new_markdown_cell(note))
        for cell in src.cells:
            tags = cell_tags(cell)
            if "notebook-skip" in tags:  # remove-cell only hides a cell on the page
                continue
            if cell.cell_type == "markdown":
                text = convert_markdown(cell.source, glue, where)
                if text.strip():
                    cells.append(nbformat.v4.new_markdown_cell(text))
            elif cell.cell_type == "code":
                source = cell.source
                if "solution" in tags:
                    source = make_stub(source, where) if kind == "exercises" else strip_markers(source)
                new = nbformat.v4.new_code_cell(source)
                keep = [t for t in tags if t in ("solution", "check", "raises-exception")]
                if keep:
                    new.metadata["tags"] = keep
                cells.append(new)
        nb = nbformat.v4.new_notebook(cells=copy.deepcopy(cells))
        nb.metadata["kernelspec"] = KERNELSPEC
        nb.metadata["language_info"] = {"name": "python"}
        notebooks.append(nb)
    return notebooks[0], notebooks[1]


def notebook_names(docname: str) -> tuple[str, str]:
    """Paths (relative to the site root) of a page's exercise and solution notebooks."""
    name = docname.removeprefix("book/")
    return f"notebooks/{name}.exercises.ipynb", f"notebooks/{name}.solutions.ipynb"


def write_notebooks(md_path: str | Path, out_dir: str | Path, docname: str, repo_url: str,
                    cache_dir: str | Path | None = None, page_url: str | None = None,
                    ref: str | None = None) -> list[Path]:
    ex, sol = build_notebooks(md_path, repo_url, cache_dir, page_url, ref)
    written = []
    for nb, rel in zip((ex, sol), notebook_names(docname)):
        path = Path(out_dir) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        written.append(path)
    return written
