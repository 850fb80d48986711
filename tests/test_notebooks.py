"""Generated notebooks: clean markdown, an idempotent setup cell, solution notebooks that run
top to bottom (nbval, lax), exercise notebooks that fail only because exercises are unfinished."""

from __future__ import annotations

import ast
import subprocess
import sys

import nbformat
import pytest
from _book import REPO, SITE, Kernel, chapter_pages

from interpbook_build.notebooks import build_notebooks, convert_markdown, notebook_names, setup_cell_source

PAGES = chapter_pages()
CACHE = REPO / "_build" / ".jupyter_cache"
URL = "https://github.com/example/book"


def _docname(page):
    return page.relative_to(REPO).with_suffix("").as_posix()


def test_directives_become_plain_markdown():
    src = (":::{exercise} Count heads\n:label: ex-x\n:difficulty: 2\n:importance: 4\n:minutes: 10\n\n"
           "Do it.\n:::\n\n:::{dropdown} Hint 1\nLook at `cache`.\n:::\n\n(some-label)=\n"
           "The score is {glue:text}`score:.2f`; see {ref}`the intro <intro>`.")
    out = convert_markdown(src, {"score": "0.87654"}, "test")
    assert "### Exercise: Count heads" in out and "●●○○○" in out and "about 10 minutes" in out
    assert "<details>" in out and "<summary>Hint 1</summary>" in out
    assert ":::" not in out and "{glue" not in out and "(some-label)=" not in out
    assert "0.88" in out and "the intro" in out


def test_unknown_directive_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\{figure\} has no notebook form"):
        convert_markdown(":::{figure} x.png\n:::", {}, "page.md")


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_generated_notebooks_are_clean(page):
    ex, sol = build_notebooks(page, URL, CACHE)
    for nb in (ex, sol):
        nbformat.validate(nb)
        assert nb.cells[0].metadata.get("tags") == ["setup"]
        for c in nb.cells:
            if c.cell_type == "markdown":
                assert ":::" not in c.source and "```{" not in c.source, c.source[:200]
                assert "{glue" not in c.source and "(value computed" not in c.source, c.source[:200]
    ex_code = "\n".join(c.source for c in ex.cells if c.cell_type == "code")
    assert "# BEGIN SOLUTION" not in ex_code and "raise NotImplementedError" in ex_code
    sol_code = "\n".join(c.source for c in sol.cells if c.cell_type == "code")
    assert "raise NotImplementedError" not in sol_code and "# BEGIN SOLUTION" not in sol_code


def test_setup_cell_is_idempotent_in_colab_and_elsewhere(tmp_path):
    src = setup_cell_source("interpbook @ git+https://example.invalid/x.git@main#subdirectory=code")
    with Kernel(cwd=tmp_path, timeout=120) as k:
        assert k.run(src).ok and k.run(src).ok  # not in Colab: does nothing, twice
        # In Colab with the package already installed: no install, still harmless twice.
        assert k.run("import sys, types; sys.modules['google.colab'] = types.ModuleType('google.colab')").ok
        r1, r2 = k.run(src), k.run(src)
        assert r1.ok and r2.ok, (r1, r2)


def _built(page, kind):
    ex_rel, sol_rel = notebook_names(_docname(page))
    path = SITE / (ex_rel if kind == "exercises" else sol_rel)
    assert path.exists(), f"the build did not produce {path}"
    return path


@pytest.mark.xdist_group("kernels")
@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_solution_notebook_runs_with_nbval(page):
    nb = _built(page, "solutions")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
                        "--nbval-lax", "--nbval-cell-timeout=600", str(nb)],
                       capture_output=True, text=True, cwd=nb.parent)
    assert r.returncode == 0, r.stdout[-4000:]


def _assigned_names(source: str) -> set[str]:
    names: set[str] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return names
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _loaded_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


@pytest.mark.xdist_group("kernels")
@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_exercise_notebook_fails_only_on_unfinished_exercises(page):
    nb = nbformat.read(str(_built(page, "exercises")), as_version=4)
    tainted: set[str] = set()  # names whose value depends on an unfinished exercise
    unexpected = []
    with Kernel(cwd=page.parent) as k:
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            r = k.run(cell.source)
            if r.ok:
                continue
            missing = r.evalue.split("'")[1] if r.ename == "NameError" and "'" in r.evalue else None
            reads_tainted = bool(_loaded_names(cell.source) & tainted)
            if r.ename in ("NotImplementedError", "CheckFailed") or missing in tainted or reads_tainted:
                tainted |= _assigned_names(cell.source)
            else:
                unexpected.append(f"cell {i}: {r.ename}: {r.evalue}")
    assert not unexpected, "exercise notebook failed for reasons other than unfinished exercises:\n" + "\n".join(unexpected)


def test_generated_solution_modules_are_up_to_date():
    from interpbook_build.export import export_all

    stale = export_all(REPO, check=True)
    assert not stale, f"run `interpbook-build export-solutions`: out of date: {stale}"
