"""Rules every page follows, so a contributor learns them from a failing test, not a review:

* one identifier per section: page ``book/chapters/<chapter>/<NN>-<section>.md`` <->
  ``interpbook.solutions.<chapter>.<section>`` <-> ``interpbook.checks.<chapter>.<section>``,
  and every check cell calls ``check_<function>(<function>, ...)`` for its exercise's function;
* a section page's title is "# <N>. Title" and its learning objectives come first;
* no page branches on the profile (the package does that);
* a claim worded from a comparison is not glued: the prose states it and a hidden assert
  backs it, so the claim cannot flip silently.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from _book import REPO, chapter_pages, notebook_pages, section_pages

from interpbook_build.exercises import cell_tags, page_exercises, read_notebook, strip_markers
from interpbook_build.sections import SectionNameError, section_of

SECTIONS = section_pages()
EXERCISE_PAGES = chapter_pages()
NOTEBOOK_PAGES = notebook_pages()
PACKAGE = REPO / "code" / "interpbook"


def _ids(pages):
    return [p.relative_to(REPO).as_posix() for p in pages]


def _code_cells(page: Path):
    return [(i, c) for i, c in enumerate(read_notebook(page).cells) if c.cell_type == "code"]


def _parse(source: str) -> ast.Module:
    return ast.parse("\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))))


# --- one identifier per section ---------------------------------------------------------------


def test_there_are_section_pages():
    assert SECTIONS and EXERCISE_PAGES


@pytest.mark.parametrize("page", SECTIONS, ids=_ids(SECTIONS))
def test_section_page_is_named_by_its_identifier(page):
    section_of(page.relative_to(REPO))  # raises SectionNameError with the naming rule


def test_badly_named_page_is_a_clear_error():
    with pytest.raises(SectionNameError, match=r"<NN>-<section>\.md"):
        section_of("book/chapters/induction/Hooks.md")
    s = section_of("book/chapters/induction/03-finding-heads.md")
    assert (s.number, s.solutions_module, s.checks_module) == (
        3, "interpbook.solutions.induction.finding_heads", "interpbook.checks.induction.finding_heads")


def _learner_functions(nb, exercise) -> list[str]:
    names = []
    for i in exercise.solution_cells:
        names += [n.name for n in _parse(strip_markers(nb.cells[i].source)).body
                  if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return names


def _same_name(wanted: tuple[str, str], calls: list[tuple[str, str | None]]) -> bool:
    check, function = wanted
    return any(first == function and name.replace("_", "").lower() == f"check{function}".lower()
               for name, first in calls)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _check_calls(source: str) -> list[tuple[str, str | None]]:
    """(check name, name of its first argument) for each ``check_*(...)`` call in ``source``."""
    out = []
    for node in ast.walk(_parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name.startswith("check_"):
                first = node.args[0].id if node.args and isinstance(node.args[0], ast.Name) else None
                out.append((name, first))
    return out


def _imported_checks(nb) -> dict[str, str]:
    """check name -> module it is imported from, over the page's code cells."""
    out = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(_parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    if a.name.startswith("check_"):
                        out[a.asname or a.name] = node.module
    return out


@pytest.mark.parametrize("page", EXERCISE_PAGES, ids=_ids(EXERCISE_PAGES))
def test_each_check_cell_calls_the_check_of_its_exercise(page):
    section = section_of(page.relative_to(REPO))
    checks = importlib.import_module(section.checks_module)
    solutions = importlib.import_module(section.solutions_module)
    nb, exercises = page_exercises(page)
    imported = _imported_checks(nb)
    problems, used = [], set()
    for ex in exercises:
        functions = _learner_functions(nb, ex)
        calls = [c for i in ex.check_cells for c in _check_calls(nb.cells[i].source)]
        # A class's check is named in snake case: ModAddMLP -> check_mod_add_mlp,
        # ReLUToyModel -> check_relu_toy_model (any underscores, same letters).
        wanted = [(f"check_{name}", f) for f in functions for name in dict.fromkeys([f, _snake(f)])]
        if not any(c in calls or _same_name(c, calls) for c in wanted):
            problems.append(f"{ex.label}: its check cell should call one of "
                            f"{[f'{c}({f}, ...)' for c, f in wanted]}; it calls {calls or 'no check_*'}")
        for name, _ in calls:
            used.add(name)
            if not hasattr(checks, name):
                problems.append(f"{ex.label}: {name} is not in {section.checks_module}")
            if imported.get(name) != section.checks_module:
                problems.append(f"{ex.label}: import {name} from {section.checks_module} "
                                f"(the page imports it from {imported.get(name)})")
        for f in functions:
            if not hasattr(solutions, f):
                problems.append(f"{ex.label}: {f} is missing from {section.solutions_module}: "
                                "run `interpbook-build export-solutions`")
    unused = sorted(n for n in getattr(checks, "__all__", dir(checks)) if n.startswith("check_") and n not in used)
    if unused:
        problems.append(f"{section.checks_module} has checks no exercise on the page calls: {unused}")
    assert not problems, "\n".join(problems)


def test_no_module_without_a_page():
    sections = {section_of(p.relative_to(REPO)).identifier for p in SECTIONS}
    for kind in ("checks", "solutions"):
        for module in sorted((PACKAGE / kind).glob("*/*.py")):
            if module.name == "__init__.py":
                continue
            ident = f"{module.parent.name}.{module.stem}"
            assert ident in sections, (f"interpbook/{kind}/{module.parent.name}/{module.name} matches no "
                                       f"section page book/chapters/{module.parent.name}/NN-{module.stem.replace('_', '-')}.md")


# --- layout of a section page -----------------------------------------------------------------


@pytest.mark.parametrize("page", SECTIONS, ids=_ids(SECTIONS))
def test_title_is_numbered_and_objectives_come_first(page):
    section = section_of(page.relative_to(REPO))
    text = page.read_text(encoding="utf-8")
    body = text.split("\n---\n", 1)[1] if text.startswith("---") else text
    blocks = [b for b in re.split(r"\n\s*\n", body.strip()) if b.strip()]
    title = blocks[0].strip()
    assert re.fullmatch(rf"# {section.number}\. \S.*", title), (
        f"{page.name}: the title should read '# {section.number}. <Title>' (the page's number), "
        f"not {title!r}")
    first = blocks[1].strip().splitlines()[0]
    assert re.fullmatch(r"(`{3,}|:{3,})\{admonition\} Learning objectives", first), (
        f"{page.name}: the first block after the title should be the learning objectives "
        f"(```{{admonition}} Learning objectives), not {first!r}")


# --- no profile branching ---------------------------------------------------------------------

_PROFILE_NAMES = re.compile(r"\bcurrent_profile\b|INTERP_BOOK_PROFILE|interpbook\.profiles")


@pytest.mark.parametrize("page", NOTEBOOK_PAGES, ids=_ids(NOTEBOOK_PAGES))
def test_pages_do_not_branch_on_the_profile(page):
    hits = [f"cell {i}: {m.group(0)}" for i, c in _code_cells(page) for m in _PROFILE_NAMES.finditer(c.source)]
    assert not hits, (f"{page.name} reads the profile ({hits}). Pages never name a profile: load models with "
                      "load_model(name) and word prose with package helpers such as interpbook.book.model_origin.")


# --- figures ----------------------------------------------------------------------------------


def _imported_modules(source: str) -> set[str]:
    out = set()
    for node in ast.walk(_parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("page", NOTEBOOK_PAGES, ids=_ids(NOTEBOOK_PAGES))
def test_pages_that_plot_load_the_book_renderer(page):
    # Without interpbook.plotting, fig.show() emits plotly's JSON mime type, which the build
    # drops without a word (mystnb.unknown_mime_type is suppressed): the figure would vanish.
    modules = set().union(*(_imported_modules(c.source) for _, c in _code_cells(page)))
    if any(m == "plotly" or m.startswith("plotly.") for m in modules):
        assert "interpbook.plotting" in modules, (
            f"{page.name} imports plotly but not interpbook.plotting, so its figures would not be drawn on "
            "the site: add `import interpbook.plotting  # noqa: F401  (the book's plotly renderer)`.")


# --- glued claims -----------------------------------------------------------------------------


def conditional_glues(source: str) -> list[str]:
    """Names glued from a comparison: ``glue(name, a if cond else b)``, a glued value that
    compares, or a glued variable that is assigned under an ``if`` or from a conditional."""
    tree = _parse(source)
    conditional: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                    targets = inner.targets if isinstance(inner, ast.Assign) else [inner.target]
                    conditional |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.IfExp):
            conditional |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    out = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "glue"
                and len(node.args) >= 2):
            value = node.args[1]
            name = ast.literal_eval(node.args[0]) if isinstance(node.args[0], ast.Constant) else "?"
            parts = list(ast.walk(value))
            if any(isinstance(p, (ast.IfExp, ast.Compare)) for p in parts) or any(
                    isinstance(p, ast.Name) and p.id in conditional for p in parts):
                out.append(name)
    return out


def test_conditional_glue_detector():
    assert conditional_glues('glue("a", "the largest" if x == m else "not the largest")') == ["a"]
    assert conditional_glues('if n > 1:\n    note = "shared"\nelse:\n    note = "alone"\nglue("b", note)') == ["b"]
    assert conditional_glues('glue("c", f"{x:.2f}")\nglue("d", ", ".join(strong))') == []


@pytest.mark.parametrize("page", SECTIONS, ids=_ids(SECTIONS))
def test_claims_are_not_glued_from_comparisons(page):
    found = [f"cell {i}: {name}" for i, c in _code_cells(page) for name in conditional_glues(c.source)]
    assert not found, (
        f"{page.name} glues words chosen by a comparison ({found}): such a claim can flip without any "
        "failure. State the claim in the prose and back it with an `assert` in a cell tagged [remove-cell, notebook-skip].")


def test_pages_have_no_export_tags_left():
    # Exported imports are chosen from what the solutions use; the old `export` tag is gone.
    for page in SECTIONS:
        assert not [i for i, c in _code_cells(page) if "export" in cell_tags(c)], page.name


# --- every check is tested against a wrong answer ---------------------------------------------


@pytest.mark.parametrize("chapter", sorted({section_of(p.relative_to(REPO)).chapter for p in EXERCISE_PAGES}))
def test_every_check_rejects_a_tested_wrong_answer(chapter):
    # One file for the chapter (tests/test_checks_<chapter>.py), or one per section
    # (tests/test_checks_<chapter>_<section>.py), or both.
    paths = sorted((REPO / "tests").glob(f"test_checks_{chapter}.py")) + sorted(
        (REPO / "tests").glob(f"test_checks_{chapter}_*.py"))
    assert paths, (f"tests/test_checks_{chapter}.py (or tests/test_checks_{chapter}_<section>.py) should hold "
                   "a wrong answer for each of the chapter's checks")
    tests = []
    for path in paths:
        source = path.read_text(encoding="utf-8")
        tests += [ast.get_source_segment(source, n) or "" for n in ast.parse(source).body
                  if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    missing = []
    for page in EXERCISE_PAGES:
        section = section_of(page.relative_to(REPO))
        if section.chapter != chapter:
            continue
        checks = importlib.import_module(section.checks_module)
        for name in (n for n in checks.__all__ if n.startswith("check_")):
            if not any(f".{name}(" in t and "pytest.raises(CheckFailed" in t for t in tests):
                missing.append(f"{section.checks_module}.{name}")
    names = ", ".join(p.name for p in paths)
    assert not missing, f"no test in {names} shows these checks rejecting a plausible wrong answer: {missing}"


# --- exercise labels are unique across the book ------------------------------------------------


def test_exercise_labels_are_unique_across_the_book():
    # Sphinx labels share one namespace: a label reused on another page is a build warning
    # (and so a failed build) far from the edit that caused it. Say here which pages clash.
    where: dict[str, list[str]] = {}
    for page in EXERCISE_PAGES:
        for ex in page_exercises(page)[1]:
            where.setdefault(ex.label, []).append(page.relative_to(REPO).as_posix())
    clashes = {label: pages for label, pages in where.items() if len(pages) > 1}
    assert not clashes, (
        "exercise labels must be unique across the book (a later chapter that needs an earlier "
        f"chapter's function imports it from interpbook.solutions instead): {clashes}")
