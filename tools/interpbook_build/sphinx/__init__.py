"""Sphinx extension for the book: exercises, solution toggles with derived stubs, Colab badges
and notebook downloads, offline plotly.

Enable with ``extensions: [interpbook_build.sphinx]`` in ``_config.yml``.
"""

from __future__ import annotations

import html
import os
import shutil
from pathlib import Path
from urllib.parse import quote

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from interpbook_build.config import build_commit
from interpbook_build.exercises import EXERCISE_OPTIONS, ExerciseFormatError, make_stub, parse_exercise, strip_markers
from interpbook_build.notebooks import notebook_names, rating, write_notebooks
from interpbook_build.toc import is_notebook_text

logger = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent.parent / "static"


class _AnyOption(dict):
    """An option spec that lets every option through unconverted, so that the one exercise
    schema (``parse_exercise``) reports unknown and malformed options, the same way the
    notebook generator and the tests do."""

    def __missing__(self, key):
        return directives.unchanged


class ExerciseDirective(SphinxDirective):
    """``:::{exercise} Title`` with the options of ``EXERCISE_OPTIONS``."""

    has_content = True
    required_arguments = 1
    final_argument_whitespace = True
    option_spec = _AnyOption({k: directives.unchanged for k in EXERCISE_OPTIONS})

    def run(self):
        _, line = self.get_source_info()
        where = f"{self.env.doc2path(self.env.docname, False)}:{line}"
        raw = {k: "" if v is None else str(v) for k, v in self.options.items()}
        try:
            ex = parse_exercise(self.arguments[0], raw, where)
        except ExerciseFormatError as e:
            raise self.error(str(e)) from None
        label = ex.label
        node = nodes.admonition(classes=["exercise"], ids=[nodes.make_id(label)])
        title_text = f"Exercise: {self.arguments[0]}"
        textnodes, _ = self.state.inline_text(title_text, self.lineno)
        node += nodes.title(title_text, "", *textnodes)
        diff, imp, mins = ex.difficulty, ex.importance, ex.minutes
        meta = nodes.paragraph(classes=["exercise-meta"])
        for name, n in (("Difficulty", diff), ("Importance", imp)):
            item = nodes.inline(classes=["exercise-rating", name.lower()])
            item += nodes.strong(text=f"{name} ")
            item += nodes.inline(text=rating(n), classes=["dots"])
            item += nodes.inline(text=f" ({n} of 5)", classes=["visually-hidden"])
            meta += item
            meta += nodes.Text(" · ")
        meta += nodes.inline(text=f"about {mins} minutes", classes=["exercise-time"])
        node += meta
        self.state.nested_parse(self.content, self.content_offset, node)
        # Register the label so {ref}`label` works.
        std = self.env.get_domain("std")
        std.note_hyperlink_target(label, self.env.docname, nodes.make_id(label), title_text)
        return [node]


class SolutionCells(SphinxPostTransform):
    """Show the derived stub above each solution cell and collapse the solution source (its
    outputs stay visible). Runs before myst-nb's HideInputCells (priority 199)."""

    default_priority = 150
    formats = ("html",)

    def run(self, **kwargs):
        for cell in list(self.document.findall(nodes.container)):
            if cell.get("nb_element") != "cell_code" or "tag_solution" not in cell["classes"]:
                continue
            source_node = next(
                (c for c in cell.children if c.get("nb_element") == "cell_code_source"), None
            )
            if source_node is None:
                continue
            block = next(source_node.findall(nodes.literal_block))
            where = f"{self.env.docname}: solution cell"
            try:
                stub = make_stub(block.astext(), where=where)
            except ValueError as e:
                logger.error(str(e), location=cell)
                continue
            # The reader sees the solution without the markers.
            clean = strip_markers(block.astext())
            block.children = [nodes.Text(clean)]
            block.rawsource = clean
            stub_box = nodes.container(classes=["exercise-stub"])
            stub_box += nodes.paragraph(text="Your starting point (the exercise notebook has this stub):",
                                        classes=["exercise-stub-caption"])
            stub_box += nodes.literal_block(stub, stub, language="ipython3", classes=["highlight-ipython3"])
            cell.parent.insert(cell.parent.index(cell), stub_box)
            cell["hide_mode"] = "input"
            cell["prompt_show"] = "Show solution"
            cell["prompt_hide"] = "Hide solution"
            cell["classes"].append("solution-cell")


def _is_chapter_page(app: Sphinx, docname: str) -> bool:
    """A page under the chapters folder that is a notebook (has code): it gets a Colab badge
    and exercise/solution notebooks."""
    if not docname.startswith(app.config.interpbook_chapter_prefix) or docname not in app.env.found_docs:
        return False
    return _is_notebook_page(app, docname)


def _repo_url(app: Sphinx) -> str:
    url = (app.config.html_theme_options or {}).get("repository_url") or ""
    if not url:
        raise RuntimeError("Set repository.url in _config.yml: Colab badges and setup cells need it.")
    return url.rstrip("/")


def _colab_url(app: Sphinx, rel_notebook: str) -> str:
    repo = _repo_url(app).removeprefix("https://github.com/")
    branch = app.config.interpbook_notebooks_branch
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/{quote(rel_notebook)}"


# Drawn, not a font glyph: the stopwatch character is missing from many fonts.
_STOPWATCH = ('<svg class="compute-icon" width="14" height="14" viewBox="0 0 16 16" aria-hidden="true">'
              '<circle cx="8" cy="9.5" r="5.5" fill="none" stroke="currentColor" stroke-width="1.5"/>'
              '<path d="M8 9.5V6.5M6 2.5h4M8 2.5v1.5" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>')


def build_hardware() -> str:
    """The machine this build executes pages on, in words: a GPU's name, or "a 2-core CPU"."""
    try:
        import torch

        if torch.cuda.is_available():
            return f"an {torch.cuda.get_device_name(0)} GPU"
    except ImportError:  # pragma: no cover - torch is a dependency of the book
        pass
    return f"a {os.cpu_count()}-core CPU"


def compute_text(runtime: float, hardware: str) -> str:
    """The compute badge's words, e.g. "Runs in 11 s on a 2-core CPU"."""
    return f"Runs in {max(1, round(runtime))} s on {hardware}"


class ChapterHeader(SphinxPostTransform):
    """Under the title of every executed page: the measured compute badge (this build's
    execution time of the page, from the execution cache's record, and the hardware); on
    chapter pages also the Colab badge and the notebook downloads."""

    default_priority = 160
    formats = ("html",)

    def run(self, **kwargs):
        app, docname = self.app, self.env.docname
        if not _is_notebook_page(app, docname):
            return
        parts = []
        if _is_chapter_page(app, docname):
            ex_rel, sol_rel = notebook_names(docname)
            up = "../" * docname.count("/")
            badge = f"{up}_static/open-in-colab.svg"
            parts += [
                f'<a class="colab-badge" href="{_colab_url(app, ex_rel)}" target="_blank" rel="noopener">'
                f'<img src="{badge}" alt="Open the exercise notebook in Colab" width="117" height="20"></a>',
                f'<a class="notebook-download" href="{up}{ex_rel}" download>Download exercises (.ipynb)</a>'
                f' · <a class="notebook-download" href="{up}{sol_rel}" download>Download solutions (.ipynb)</a>',
            ]
        from myst_nb.sphinx_ import NbMetadataCollector

        data = NbMetadataCollector.get_exec_data(self.env, docname) or {}
        runtime = data.get("runtime")
        if runtime is not None:
            if not hasattr(app, "_interpbook_hardware"):
                app._interpbook_hardware = build_hardware()
            text = compute_text(float(runtime), app._interpbook_hardware)
            parts.append(f'<span class="compute-badge" title="Execution time of this page\'s code when '
                         f'the site was built">{_STOPWATCH} {html.escape(text)}</span>')
        if not parts:
            return
        raw = nodes.raw("", '<div class="chapter-notebooks">' + " ".join(parts) + "</div>", format="html")
        section = next(self.document.findall(nodes.section), None)
        if section is None:
            return
        title = next(iter(section.findall(nodes.title)), None)
        section.insert(section.index(title) + 1 if title is not None else 0, raw)


def _builder_inited(app: Sphinx) -> None:
    # Chapter kernels inherit this: interpbook.plotting then renders figures as HTML that uses the
    # site's single copy of plotly.js instead of inlining 4.8 MB per page.
    os.environ["INTERP_BOOK_PLOTLY"] = "book"
    if app.builder.format != "html":
        return
    import plotly

    static = Path(app.outdir).parent / ".interpbook_static"
    static.mkdir(parents=True, exist_ok=True)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not plotly_js.exists():
        raise RuntimeError(f"plotly.min.js not found at {plotly_js}: is plotly installed?")
    shutil.copyfile(plotly_js, static / "plotly.min.js")
    for f in STATIC.glob("*"):
        if f.is_file():
            shutil.copyfile(f, static / f.name)
    # MathJax from the site itself (django-static-mathjax ships MathJax 3 as package data), not
    # from a CDN: the site must work offline.
    import mathjax as _mathjax_pkg  # the django-static-mathjax wheel's package

    es5 = Path(_mathjax_pkg.__file__).parent / "static" / "mathjax" / "es5"
    target = static / "mathjax"
    if not (target / "tex-mml-chtml.js").exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(es5 / "tex-mml-chtml.js", target / "tex-mml-chtml.js")
        shutil.copytree(es5 / "output" / "chtml" / "fonts" / "woff-v2", target / "output" / "chtml" / "fonts" / "woff-v2",
                        dirs_exist_ok=True)
    app.config.mathjax_path = "mathjax/tex-mml-chtml.js"
    app.config.html_static_path.append(str(static))
    app.add_css_file("interpbook.css")


def _page_context(app: Sphinx, pagename, templatename, context, doctree) -> None:
    if "Plotly.newPlot" in context.get("body", ""):
        # Deferred: it no longer blocks the first paint; figures draw on DOMContentLoaded
        # (see interpbook.plotting). Lands in context["script_files"].
        app.add_js_file("plotly.min.js", priority=100, loading_method="defer")
    # Jupyter Book 1.0 registers sphinx-thebe twice; a repeated `const THEBE_JS_URL` script is a
    # console error on every page. Keep the first copy of each script, in place.
    seen, unique = set(), []
    scripts = context.get("script_files", [])
    for script in scripts:
        # The same inline script arrives once with filename '' and once with None.
        key = (getattr(script, "filename", str(script)) or "", str(getattr(script, "attributes", "")))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def _runtime_package_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("interpbook")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The `interpbook` package is not importable: run scripts/ensure_env.sh.")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def fingerprint_files() -> list[Path]:
    """The files the execution-cache key hashes: the learner's package ``interpbook`` (code,
    checks, solutions, checkpoints), nothing of the build tooling."""
    root = _runtime_package_dir()
    return sorted(f for f in root.rglob("*")
                  if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc")


def _hash_files(root: Path, files: list[Path]) -> str:
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _package_fingerprint() -> str:
    """Hash of the ``interpbook`` package. Part of every executed page's cache key, so a new
    checkpoint or a changed check re-executes the pages, and a changed stylesheet, catalog or
    build tool does not."""
    return _hash_files(_runtime_package_dir(), fingerprint_files())


def _is_notebook_page(app: Sphinx, docname: str) -> bool:
    path = Path(app.srcdir) / f"{docname}.md"
    return path.exists() and is_notebook_text(path.read_text(encoding="utf-8"))


def _tools_fingerprint() -> str:
    """Hash of this build package's Python files: when the extension changes, every page is
    re-read (re-rendered) — from the execution cache, so nothing re-executes."""
    root = Path(__file__).resolve().parent.parent
    return _hash_files(root, sorted(root.rglob("*.py")))


def _env_get_outdated(app: Sphinx, env, added, changed, removed) -> list[str]:
    """Sphinx re-reads only pages whose source changed. When the learner's package (a
    checkpoint, a check, a plot helper) changed, every executed page is out of date (and, its
    cache key having changed, re-executes); when the build tooling changed, every page is
    re-read and re-rendered from the execution cache."""
    app._interpbook_fingerprint = _package_fingerprint()
    old = getattr(env, "interpbook_fingerprint", None)
    env.interpbook_fingerprint = app._interpbook_fingerprint
    tools, old_tools = _tools_fingerprint(), getattr(env, "interpbook_tools_fingerprint", None)
    env.interpbook_tools_fingerprint = tools
    if old_tools != tools:
        return sorted(env.found_docs)
    if old is None or old == app._interpbook_fingerprint:
        return []
    return [d for d in env.found_docs if _is_notebook_page(app, d)]


def _source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    text = source[0]
    if not is_notebook_text(text):  # only notebook pages are executed
        return
    if not hasattr(app, "_interpbook_fingerprint"):
        app._interpbook_fingerprint = _package_fingerprint()
    # An invisible cell: jupyter-cache keys a page on its code cells, so this line makes the
    # key change when the package does.
    source[0] = text.rstrip("\n") + (
        "\n\n```{code-cell} ipython3\n:tags: [remove-cell]\n"
        f"# interpbook package fingerprint {app._interpbook_fingerprint}\n```\n"
    )


def _build_finished(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    srcdir = Path(app.srcdir)
    cache_dir = app.config.nb_execution_cache_path or None
    base = (app.config.html_baseurl or "").rstrip("/")
    ref = build_commit(srcdir)
    if ref is None:
        logger.warning("interpbook: not a git checkout and $INTERP_BOOK_COMMIT is unset; the notebooks' "
                       "setup cells install the package from `main`")
    count = 0
    for docname in sorted(app.env.found_docs):
        if not _is_chapter_page(app, docname):
            continue
        md = srcdir / f"{docname}.md"
        if not md.exists():
            continue
        page_url = f"{base}/{docname}.html" if base else None
        write_notebooks(md, app.outdir, docname, _repo_url(app), cache_dir, page_url, ref=ref)
        count += 1
    logger.info(f"interpbook: wrote exercise and solution notebooks for {count} chapter page(s)")


def setup(app: Sphinx):
    app.setup_extension("interpbook_build.sphinx.open_problems")
    app.add_config_value("interpbook_chapter_prefix", "book/chapters/", "env")
    app.add_config_value("interpbook_notebooks_branch", "notebooks", "env")
    app.add_directive("exercise", ExerciseDirective)
    app.add_post_transform(SolutionCells)
    app.add_post_transform(ChapterHeader)
    app.connect("builder-inited", _builder_inited)
    # After other extensions' handlers (sphinx-thebe adds its scripts in this event too).
    app.connect("html-page-context", _page_context, priority=900)
    app.connect("source-read", _source_read)
    app.connect("env-get-outdated", _env_get_outdated)
    app.connect("build-finished", _build_finished)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}


