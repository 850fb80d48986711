"""Every exercise is honest: it has a hint, a solution and a check, and the check fails on the
stub (with CheckFailed, whose message helps) and passes on the solution. Runs each chapter page
in a real kernel."""

from __future__ import annotations

import pytest
from _book import Kernel, chapter_pages

from interpbook_build.exercises import cell_tags, make_stub, page_exercises

PAGES = chapter_pages()


def test_chapters_have_exercises():
    assert PAGES, "no chapter page with exercises found in _toc.yml"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_structure(page):
    nb, exercises = page_exercises(page)  # raises on a missing hint/solution/check
    for ex in exercises:
        assert ex.hints >= 1
        for i in ex.solution_cells:
            stub = make_stub(nb.cells[i].source)
            assert "raise NotImplementedError" in stub
            assert "# BEGIN SOLUTION" not in stub


@pytest.mark.xdist_group("kernels")
@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_checks_fail_on_stub_and_pass_on_solution(page):
    nb, exercises = page_exercises(page)
    first_check = {ex.check_cells[0]: ex for ex in exercises}
    problems: list[str] = []
    with Kernel(cwd=page.parent) as k:
        assert k.run("import os; os.environ['INTERP_BOOK_PROFILE'] = 'default'").ok
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            if i in first_check:
                ex = first_check[i]
                for s in ex.solution_cells:  # swap in the stubs
                    r = k.run(make_stub(nb.cells[s].source))
                    if not r.ok and r.ename != "NotImplementedError":
                        problems.append(f"{ex.label}: stub cell raised {r.ename}: {r.evalue}")
                r = k.run(cell.source)
                if r.ok:
                    problems.append(f"{ex.label}: the check PASSED on the stub")
                elif r.ename != "CheckFailed":
                    problems.append(f"{ex.label}: on the stub the check raised {r.ename}: {r.evalue} "
                                    "(expected CheckFailed with a helpful message)")
                elif "NotImplementedError" not in r.evalue and "YOUR CODE HERE" not in r.evalue:
                    problems.append(f"{ex.label}: the failure message does not tell the learner "
                                    f"to fill in the stub: {r.evalue}")
                for s in ex.solution_cells:  # restore the solutions
                    r = k.run(nb.cells[s].source)
                    assert r.ok, f"{ex.label}: solution cell failed: {r.ename}: {r.evalue}"
            r = k.run(cell.source)
            where = f"{page.name} cell {i}"
            if i in first_check or "check" in cell_tags(cell):
                if not r.ok:
                    problems.append(f"{where}: check failed on the solution: {r.ename}: {r.evalue}")
            else:
                assert r.ok, f"{where} failed: {r.ename}: {r.evalue}"
    assert not problems, "\n".join(problems)
