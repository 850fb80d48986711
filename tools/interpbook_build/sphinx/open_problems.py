"""Sphinx extension: the open-problems catalog, per-chapter problem lists and capstones.

Add ``interpbook_build.sphinx.open_problems`` to the Sphinx extensions (Jupyter Book:
``sphinx: extra_extensions:`` in ``_config.yml``). It provides three directives, all generated
from the YAML files in ``book/data/`` so that no page can drift from the data:

``{open-problems-catalog}``
    The whole catalog as an accessible list, one ``<li id="problem-1-10">`` per problem, with
    category / difficulty / chapter filters, a search box and a live match count (vanilla JS
    and CSS from ``interpbook_build/static``; no network). Deep links such as
    ``open-problems.html#problem-1-10`` scroll to and highlight the problem even when the
    current filters would hide it.

``{open-problems-for-chapter} [page]``
    A list of the problems whose ``chapters`` include ``page`` (a path under ``book/`` such as
    ``chapters/induction/index``; an ``index`` page stands for its whole folder). Without an
    argument the current page is used. Each item links to its catalog deep link.

``{capstones}``
    The capstone project ideas from ``book/data/capstones.yaml``.

The data are validated when the builder starts (``interpbook_build.open_problems``); invalid data
stop the build with a message naming the entry and field. Each directive records the YAML as
a dependency of its page, so editing the data rebuilds those pages.

Optional config values: ``open_problems_data`` and ``capstones_data`` (paths, relative to the
Sphinx source folder or absolute; by default ``book/data/...`` or ``data/...`` is found
automatically).
"""

from __future__ import annotations

import html
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

from interpbook_build import open_problems as op

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_FILES = ("open-problems.css", "open-problems.js")


# --------------------------------------------------------------------------------------------
# Locating and loading the data


def _data_path(app: Sphinx, config_name: str, filename: str) -> Path:
    configured = getattr(app.config, config_name, "") or ""
    srcdir = Path(app.srcdir)
    if configured:
        path = Path(configured)
        return path if path.is_absolute() else srcdir / path
    for candidate in (srcdir / "book" / "data" / filename, srcdir / "data" / filename):
        if candidate.is_file():
            return candidate
    return srcdir / "book" / "data" / filename


def _book_dir(data_path: Path) -> Path:
    return data_path.resolve().parent.parent


def _page_to_docname(app: Sphinx, book_dir: Path, page: str) -> str:
    rel = os.path.relpath(book_dir / page, Path(app.srcdir).resolve())
    return Path(rel).as_posix()


def _docname_to_page(app: Sphinx, book_dir: Path, docname: str) -> str:
    rel = os.path.relpath(Path(app.srcdir).resolve() / docname, book_dir)
    return Path(rel).as_posix()


def _load(app: Sphinx) -> tuple[op.Catalog, list[op.Capstone]]:
    cached = getattr(app, "_interpbook_open_problems", None)
    if cached is not None:
        return cached
    catalog_path = _data_path(app, "open_problems_data", "open_problems.yaml")
    capstones_path = _data_path(app, "capstones_data", "capstones.yaml")
    try:
        catalog = op.load_catalog(catalog_path, book_dir=_book_dir(catalog_path))
        capstones = (
            op.load_capstones(capstones_path, book_dir=_book_dir(capstones_path), catalog=catalog)
            if capstones_path.is_file()
            else []
        )
    except (op.CatalogError, OSError) as exc:
        raise ExtensionError(f"interpbook_build.sphinx.open_problems: {exc}") from exc
    app._interpbook_open_problems = (catalog, capstones)  # type: ignore[attr-defined]
    return catalog, capstones


def _on_builder_inited(app: Sphinx) -> None:
    app._interpbook_open_problems = None  # type: ignore[attr-defined]
    catalog_path = _data_path(app, "open_problems_data", "open_problems.yaml")
    if catalog_path.is_file():
        _load(app)  # fail early, with the validator's message, if the data are broken


# --------------------------------------------------------------------------------------------
# Placeholder nodes, replaced once all documents are read (links need the final doc names)


class open_problems_catalog(nodes.General, nodes.Element):
    pass


class open_problems_for_chapter(nodes.General, nodes.Element):
    pass


class capstones_list(nodes.General, nodes.Element):
    pass


def _visit_skip(self, node):  # for builders that meet an unresolved placeholder
    raise nodes.SkipNode


class _DataDirective(SphinxDirective):
    def note_data(self, config_name: str, filename: str) -> Path:
        path = _data_path(self.env.app, config_name, filename)
        self.env.note_dependency(str(path))
        return path


class OpenProblemsCatalogDirective(_DataDirective):
    has_content = False
    required_arguments = 0
    optional_arguments = 0

    def run(self):
        self.note_data("open_problems_data", "open_problems.yaml")
        self.note_data("capstones_data", "capstones.yaml")
        catalogs = self.env.__dict__.setdefault("interpbook_catalog_docs", set())
        catalogs.add(self.env.docname)
        return [open_problems_catalog()]


class OpenProblemsForChapterDirective(_DataDirective):
    has_content = False
    required_arguments = 0
    optional_arguments = 1
    option_spec: ClassVar[dict] = {"empty-text": directives.unchanged}

    def run(self):
        path = self.note_data("open_problems_data", "open_problems.yaml")
        if self.arguments:
            page = self.arguments[0].strip().strip("/")
            for suffix in (".md", ".ipynb"):
                page = page.removesuffix(suffix)
        else:
            page = _docname_to_page(self.env.app, _book_dir(path), self.env.docname)
        node = open_problems_for_chapter()
        node["page"] = page
        node["empty_text"] = self.options.get(
            "empty-text", "No catalogued problem builds on this page yet."
        )
        return [node]


class CapstonesDirective(_DataDirective):
    has_content = False

    def run(self):
        self.note_data("capstones_data", "capstones.yaml")
        self.note_data("open_problems_data", "open_problems.yaml")
        return [capstones_list()]


def _purge(app, env, docname):
    docs = getattr(env, "interpbook_catalog_docs", None)
    if docs:
        docs.discard(docname)


def _merge(app, env, docnames, other):
    mine = env.__dict__.setdefault("interpbook_catalog_docs", set())
    mine.update(getattr(other, "interpbook_catalog_docs", set()) & set(docnames))


# --------------------------------------------------------------------------------------------
# Rendering


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


class _Links:
    """Relative links from the page being written to other documents, by book page path."""

    def __init__(self, app: Sphinx, fromdoc: str, book_dir: Path):
        self.app, self.fromdoc, self.book_dir = app, fromdoc, book_dir
        self.env = app.env

    def docname(self, page: str) -> str:
        return _page_to_docname(self.app, self.book_dir, page)

    def uri_for_doc(self, docname: str) -> str | None:
        if docname not in self.env.all_docs:
            return None
        try:
            return self.app.builder.get_relative_uri(self.fromdoc, docname)
        except Exception:  # noqa: BLE001 - builders without a notion of URIs
            return None

    def uri(self, page: str) -> str | None:
        return self.uri_for_doc(self.docname(page))

    def title(self, page: str) -> str:
        docname = self.docname(page)
        title = self.env.titles.get(docname)
        return title.astext() if title is not None else page

    def catalog_uri(self) -> str | None:
        docs = sorted(getattr(self.env, "interpbook_catalog_docs", set()))
        if not docs:
            return None
        if docs[0] == self.fromdoc:
            return ""
        return self.uri_for_doc(docs[0])


def _chapter_label(links: _Links, page: str) -> str:
    title = links.title(page)
    if page.endswith("/index"):
        return f"{title} (whole chapter)"
    return title


def _render_catalog(app: Sphinx, fromdoc: str, catalog: op.Catalog, book_dir: Path) -> str:
    links = _Links(app, fromdoc, book_dir)
    pages = catalog.chapter_pages()
    # Chapter filter: each chapter's index page (the whole chapter), then every referenced page.
    chapter_options: list[str] = []
    for page in pages:
        folder_index = page.rsplit("/", 1)[0] + "/index" if "/" in page else None
        if folder_index and op.page_exists(book_dir, folder_index) and folder_index not in chapter_options:
            chapter_options.append(folder_index)
        if page not in chapter_options:
            chapter_options.append(page)
    total = len(catalog)

    out: list[str] = [f'<div class="op-catalog" data-op-catalog="" data-total="{total}">']
    # Controls: hidden until the script runs, so that without JavaScript the full list shows.
    out.append('<form class="op-controls" role="search" aria-label="Filter open problems" hidden>')
    out.append('<fieldset class="op-fieldset"><legend>Filter the problems</legend>')
    out.append('<div class="op-control op-control-search"><label for="op-search">Search</label>')
    out.append(
        '<input type="search" id="op-search" name="q" autocomplete="off" '
        'aria-describedby="op-search-hint" data-op-filter="q">'
        '<span id="op-search-hint" class="op-hint">Matches number, summary, category and skills.'
        "</span></div>"
    )
    out.append('<div class="op-control"><label for="op-category">Category</label>')
    out.append('<select id="op-category" name="category" data-op-filter="category">')
    out.append('<option value="">All categories</option>')
    for name, slug in op.CATEGORIES.items():
        count = sum(1 for p in catalog if p.category == name)
        if count:
            out.append(f'<option value="{_esc(slug)}">{_esc(name)} ({count})</option>')
    out.append("</select></div>")
    out.append('<div class="op-control"><label for="op-difficulty">Difficulty</label>')
    out.append('<select id="op-difficulty" name="difficulty" data-op-filter="difficulty">')
    out.append('<option value="">Any difficulty</option>')
    for level, meaning in op.DIFFICULTY_LEVELS.items():
        count = sum(1 for p in catalog if level in p.levels)
        out.append(f'<option value="{level}">{level}: {_esc(meaning)} ({count})</option>')
    out.append("</select></div>")
    out.append('<div class="op-control"><label for="op-chapter">Builds on</label>')
    out.append('<select id="op-chapter" name="chapter" data-op-filter="chapter">')
    out.append('<option value="">Any page of the book</option>')
    for page in chapter_options:
        count = len(catalog.for_page(page))
        out.append(
            f'<option value="{_esc(page)}">{_esc(_chapter_label(links, page))} ({count})</option>'
        )
    out.append("</select></div>")
    out.append(
        '<div class="op-control op-control-reset">'
        '<button type="reset" class="op-reset">Clear filters</button></div>'
    )
    out.append("</fieldset>")
    out.append("</form>")
    out.append(
        f'<p class="op-count" id="op-count" role="status" aria-live="polite" aria-atomic="true">'
        f"{total} problems</p>"
    )
    out.append('<ol class="op-list" aria-label="Open problems">')
    for p in catalog:
        levels = " ".join(p.levels)
        search_text = " ".join(
            [p.number, p.category, p.subcategory or "", p.summary, p.difficulty]
            + [op.SKILLS[s] for s in p.skills]
            + list(p.skills)
        ).lower()
        out.append(
            f'<li class="op-item" id="{_esc(p.anchor)}" tabindex="-1" '
            f'data-number="{_esc(p.number)}" data-category="{_esc(p.category_slug)}" '
            f'data-levels="{_esc(levels)}" data-chapters="{_esc(" ".join(p.chapters))}" '
            f'data-search="{_esc(search_text)}">'
        )
        out.append('<div class="op-head">')
        out.append(
            f'<a class="op-number" href="#{_esc(p.anchor)}" '
            f'aria-label="Problem {_esc(p.number)}, link to this problem">{_esc(p.number)}</a>'
        )
        out.append(
            f'<span class="op-difficulty op-difficulty-{_esc(p.difficulty[0])}" '
            f'title="{_esc(", ".join(op.DIFFICULTY_LEVELS[x] for x in p.levels))}">'
            f"Difficulty {_esc(p.difficulty)}</span>"
        )
        crumbs = _esc(p.category) + (f" › {_esc(p.subcategory)}" if p.subcategory else "")
        out.append(f'<span class="op-category">{crumbs}</span>')
        out.append("</div>")
        out.append(f'<p class="op-summary">{_esc(p.summary)}</p>')
        details: list[str] = []
        details += _builds_on_and_skills(links, p.chapters, p.skills)
        if p.existing_work:
            items = [
                f'<a href="{_esc(url)}" rel="noopener">{_esc(_short_url(url))}</a>'
                for url in p.existing_work
            ]
            details.append(f"<dt>Existing work</dt><dd>{', '.join(items)}</dd>")
        if p.note:
            details.append(f"<dt>Note</dt><dd>{_esc(p.note)}</dd>")
        out.append(f'<dl class="op-details">{"".join(details)}</dl>')
        out.append("</li>")
    out.append("</ol>")
    out.append(
        '<p class="op-empty" hidden>No problem matches these filters. '
        "Try another difficulty or clear the filters.</p>"
    )
    out.append("</div>")
    return "\n".join(out)


def _builds_on_and_skills(links, chapters, skills) -> list[str]:
    """The "Builds on" (linked book pages) and "Skills" rows shared by problems and capstones."""
    rows: list[str] = []
    if chapters:
        items = []
        for page in chapters:
            uri = links.uri(page)
            label = _esc(links.title(page))
            items.append(f'<a href="{_esc(uri)}">{label}</a>' if uri is not None else label)
        rows.append(f"<dt>Builds on</dt><dd>{', '.join(items)}</dd>")
    skill_spans = " ".join(f'<span class="op-skill">{_esc(op.SKILLS[s])}</span>' for s in skills)
    rows.append(f"<dt>Skills</dt><dd>{skill_spans}</dd>")
    return rows


def _short_url(url: str) -> str:
    text = url.split("://", 1)[-1]
    text = text.removeprefix("www.")
    return text if len(text) <= 60 else text[:57] + "…"


def _render_for_chapter(
    app: Sphinx, fromdoc: str, catalog: op.Catalog, book_dir: Path, page: str, empty_text: str
) -> list[nodes.Node]:
    links = _Links(app, fromdoc, book_dir)
    problems = catalog.for_page(page)
    if not problems:
        return [nodes.paragraph(text=empty_text, classes=["op-chapter-empty"])]
    base = links.catalog_uri()
    bullet = nodes.bullet_list(classes=["op-chapter-list"])
    for p in problems:
        para = nodes.paragraph()
        label = f"Problem {p.number}"
        if base is not None:
            ref = nodes.reference("", "", internal=True, refuri=f"{base}#{p.anchor}")
            ref += nodes.strong(text=label)
            para += ref
        else:
            para += nodes.strong(text=label)
        para += nodes.Text(f" (difficulty {p.difficulty}): {p.summary}")
        bullet += nodes.list_item("", para)
    return [bullet]


def _render_capstones(
    app: Sphinx, fromdoc: str, capstones: list[op.Capstone], catalog: op.Catalog, book_dir: Path
) -> str:
    links = _Links(app, fromdoc, book_dir)
    base = links.catalog_uri()
    out = ['<div class="op-capstones">']
    for c in capstones:
        out.append(f'<section class="op-capstone" id="{_esc(c.anchor)}" aria-labelledby="{_esc(c.anchor)}-title">')
        out.append(
            f'<h3 class="op-capstone-title" id="{_esc(c.anchor)}-title">{_esc(c.title)}'
            f'<a class="headerlink" href="#{_esc(c.anchor)}" title="Link to this project" '
            f'aria-label="Link to this project">#</a></h3>'
        )
        out.append(f'<p class="op-summary">{_esc(c.summary)}</p>')
        rows = [
            (
                f'<dt>Difficulty</dt><dd><span class="op-difficulty op-difficulty-{_esc(c.difficulty[0])}">'
                f"{_esc(c.difficulty)}</span></dd>"
            ),
            (
                f"<dt>Compute</dt><dd>{_esc(c.compute)} "
                f'<span class="op-hint">({_esc(op.COMPUTE_LEVELS[c.compute])})</span></dd>'
            ),
        ]
        rows += _builds_on_and_skills(links, c.chapters, c.skills)
        if c.related_problems:
            items = []
            for number in c.related_problems:
                anchor = op.problem_anchor(number)
                items.append(
                    f'<a href="{_esc(base)}#{_esc(anchor)}">{_esc(number)}</a>'
                    if base is not None
                    else _esc(number)
                )
            rows.append(f"<dt>Related open problems</dt><dd>{', '.join(items)}</dd>")
        if c.links:
            items = [
                f'<a href="{_esc(u)}" rel="noopener">{_esc(_short_url(u))}</a>' for u in c.links
            ]
            rows.append(f"<dt>Background</dt><dd>{', '.join(items)}</dd>")
        out.append(f'<dl class="op-details">{"".join(rows)}</dl>')
        out.append("</section>")
    out.append("</div>")
    return "\n".join(out)


def _on_doctree_resolved(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    placeholders = list(
        doctree.findall(
            lambda n: isinstance(n, (open_problems_catalog, open_problems_for_chapter, capstones_list))
        )
    )
    if not placeholders:
        return
    catalog, capstones = _load(app)
    book_dir = _book_dir(_data_path(app, "open_problems_data", "open_problems.yaml"))
    is_html = app.builder.format == "html"
    for node in placeholders:
        if isinstance(node, open_problems_catalog):
            if is_html:
                markup = _render_catalog(app, docname, catalog, book_dir)
                node.replace_self(nodes.raw("", markup, format="html"))
            else:
                node.replace_self(
                    nodes.paragraph(text=f"The catalog lists {len(catalog)} problems; see the online book.")
                )
        elif isinstance(node, open_problems_for_chapter):
            node.replace_self(
                _render_for_chapter(app, docname, catalog, book_dir, node["page"], node["empty_text"])
            )
        else:
            if is_html:
                markup = _render_capstones(app, docname, capstones, catalog, book_dir)
                node.replace_self(nodes.raw("", markup, format="html"))
            else:
                items = nodes.bullet_list()
                for c in capstones:
                    items += nodes.list_item(
                        "", nodes.paragraph(text=f"{c.title} ({c.difficulty}; {c.compute}): {c.summary}")
                    )
                node.replace_self(items)


def _on_build_finished(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static"
    target.mkdir(parents=True, exist_ok=True)
    for name in STATIC_FILES:
        shutil.copyfile(STATIC_DIR / name, target / name)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("open_problems_data", "", "env", [str])
    app.add_config_value("capstones_data", "", "env", [str])
    for node_class in (open_problems_catalog, open_problems_for_chapter, capstones_list):
        app.add_node(
            node_class,
            html=(_visit_skip, None),
            latex=(_visit_skip, None),
            text=(_visit_skip, None),
            man=(_visit_skip, None),
            texinfo=(_visit_skip, None),
        )
    app.add_directive("open-problems-catalog", OpenProblemsCatalogDirective)
    app.add_directive("open-problems-for-chapter", OpenProblemsForChapterDirective)
    app.add_directive("capstones", CapstonesDirective)
    app.connect("builder-inited", _on_builder_inited)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    app.connect("doctree-resolved", _on_doctree_resolved)
    app.connect("build-finished", _on_build_finished)
    app.add_css_file("open-problems.css")
    app.add_js_file("open-problems.js", loading_method="defer")
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
