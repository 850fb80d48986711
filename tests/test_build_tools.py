"""The build tooling (``interpbook_build``, in tools/) and its seam with the learner's package.

* The learner's package imports none of the build tooling, and the execution-cache
  fingerprint hashes the learner's package only (editing a stylesheet re-executes no page).
* One exercise schema: unknown, missing and malformed options are the same error, naming the
  page and line, in the page reader and in the notebook generator.
* The solution exporter keeps only the imports a solution uses and refuses page variables.
* The repository URL comes from _config.yml; the setup cell pins the built commit.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from _book import REPO, SITE, chapter_pages, notebook_pages

from interpbook_build.config import repo_url
from interpbook_build.exercises import ExerciseFormatError, page_exercises
from interpbook_build.export import ExportError, render
from interpbook_build.notebooks import convert_markdown, notebook_names

FRONT = "---\njupytext:\n  text_representation: {extension: .md, format_name: myst}\nkernelspec: {display_name: Python 3, language: python, name: python3}\n---\n\n"


def _page(tmp_path: Path, body: str, name: str = "book/chapters/demo/01-first-steps.md") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FRONT + textwrap.dedent(body), encoding="utf-8")
    return path


EXERCISE = """\
# 1. First steps

:::{{exercise}} Add one
{options}
Write `add_one(x)`.
:::

:::{{dropdown}} Hint 1
Use `+`.
:::

```{{code-cell}} ipython3
:tags: [solution]
def add_one(x):
    # BEGIN SOLUTION
    return x + 1
    # END SOLUTION
```

```{{code-cell}} ipython3
:tags: [check]
check_add_one(add_one)
```
"""
GOOD = ":label: ex-add-one\n:difficulty: 1\n:importance: 2\n:minutes: 5\n"


# --- the seam between the two packages --------------------------------------------------------


def test_learner_package_contains_no_build_tooling():
    pkg = REPO / "code" / "interpbook"
    for gone in ("sphinx", "static", "notebooks.py", "export.py", "exercises.py", "open_problems.py"):
        assert not (pkg / gone).exists(), f"code/interpbook/{gone} is build tooling: it belongs in tools/"
    code = ("import sys, interpbook, interpbook.zoo, interpbook.book, interpbook.plotting, interpbook.checks;"
            "import interpbook.checks.induction.hooks, interpbook.solutions.induction.reverse_engineering;"
            "bad = [m for m in ('sphinx', 'jupytext', 'interpbook_build', 'myst_nb', 'nbformat') if m in sys.modules];"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"the learner's package imported build tooling: {out.stdout}"


def test_fingerprint_hashes_the_learner_package_only():
    from interpbook_build.sphinx import fingerprint_files

    files = fingerprint_files()
    pkg = (REPO / "code" / "interpbook").resolve()
    assert files and all(pkg in f.parents for f in files)
    rel = {f.relative_to(pkg).as_posix() for f in files}
    assert "checks/induction/hooks.py" in rel and "checkpoints/attn-only-2l/model.safetensors" in rel
    assert not any(r.endswith((".css", ".js")) for r in rel)


# --- one exercise schema ----------------------------------------------------------------------


@pytest.mark.parametrize("options, message", [
    (GOOD.replace(":difficulty:", ":dificulty:"), r"01-first-steps\.md:9: exercise 'Add one' has unknown option\(s\) :dificulty:"),
    (GOOD.replace(":minutes: 5\n", ""), r"01-first-steps\.md:9: exercise 'Add one' is missing option\(s\) :minutes:"),
    (GOOD.replace(":difficulty: 1", ":difficulty: hard"), r"01-first-steps\.md:9: .*:difficulty: must be a whole number from 1 to 5.*'hard'"),
    (GOOD.replace(":importance: 2", ":importance: 6"), r":importance: must be a whole number from 1 to 5"),
    (GOOD.replace(":label: ex-add-one", ":label: Add One"), r":label: must look like `ex-some-name`"),
])
def test_bad_exercise_options_name_page_and_line(tmp_path, options, message):
    page = _page(tmp_path, EXERCISE.format(options=options))
    with pytest.raises(ExerciseFormatError, match=message):
        page_exercises(page)
    # The notebook generator parses the same schema: no silent default.
    directive = ":::{exercise} Add one\n" + options + "Write it.\n:::"
    with pytest.raises(ExerciseFormatError):
        convert_markdown(directive, {}, "page.md")


def test_raw_html_passes_into_notebook_markdown():
    # A diagram in a {raw} html block is kept verbatim: notebook markdown renders inline SVG.
    md = "Before.\n\n```{raw} html\n<svg><text>diagram</text></svg>\n```\n\nAfter."
    out = convert_markdown(md, {}, "page.md")
    assert "<svg><text>diagram</text></svg>" in out and "{raw}" not in out and "After." in out


def test_good_exercise_parses(tmp_path):
    _, exercises = page_exercises(_page(tmp_path, EXERCISE.format(options=GOOD)))
    (ex,) = exercises
    assert (ex.label, ex.difficulty, ex.importance, ex.minutes, ex.line, ex.hints) == ("ex-add-one", 1, 2, 5, 9, 1)


# --- the solution exporter --------------------------------------------------------------------


def test_export_keeps_only_used_imports_and_marks_each_definition(tmp_path):
    body = EXERCISE.format(options=GOOD).replace(
        "# 1. First steps\n", "# 1. First steps\n\n```{code-cell} ipython3\nimport math\nimport os\n"
        "from collections import Counter, OrderedDict\n```\n").replace("return x + 1", "return math.floor(x) + 1")
    section, text = render(_page(tmp_path, body), tmp_path)
    assert section.solutions_module == "interpbook.solutions.demo.first_steps"
    assert "import math\n" in text and "import os" not in text and "Counter" not in text
    assert '__all__ = ["add_one"]' in text
    assert "# Exercise ex-add-one, book/chapters/demo/01-first-steps.md\ndef add_one(x):" in text
    assert "BEGIN SOLUTION" not in text


def test_export_refuses_a_page_variable(tmp_path):
    body = EXERCISE.format(options=GOOD).replace("return x + 1", "return x + offset")
    with pytest.raises(ExportError, match=r"`offset` \(used by add_one\).*cannot see the page's variables"):
        render(_page(tmp_path, body), tmp_path)


def test_export_refuses_statements_in_a_solution_cell(tmp_path):
    body = EXERCISE.format(options=GOOD).replace("    # END SOLUTION\n```", "    # END SOLUTION\nprint(add_one(1))\n```", 1)
    with pytest.raises(ExportError, match=r"exercise ex-add-one.*definitions .* only"):
        render(_page(tmp_path, body), tmp_path)


# --- URL and commit ---------------------------------------------------------------------------


def test_repository_url_comes_from_config(tmp_path):
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert repo_url(REPO) == config["repository"]["url"].rstrip("/")
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://example.invalid/x/y/\n")
    assert repo_url(tmp_path) == "https://example.invalid/x/y"
    page = REPO / "book/chapters/induction/01-transformerlens-basics.md"
    out = subprocess.run([sys.executable, "-m", "interpbook_build.cli", "notebooks", str(page), "--out",
                          str(tmp_path / "nb"), "--repo", str(REPO), "--cache", str(tmp_path / "nocache")],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    nb = json.loads((tmp_path / "nb" / notebook_names("book/chapters/induction/01-transformerlens-basics")[0]).read_text())
    assert f"git+{repo_url(REPO)}.git@" in "".join(nb["cells"][0]["source"])


@pytest.mark.parametrize("page", chapter_pages(), ids=[p.stem for p in chapter_pages()])
def test_built_setup_cell_pins_a_commit(page):
    rel = notebook_names(page.relative_to(REPO).with_suffix("").as_posix())[0]
    path = SITE / rel
    if not path.exists():
        pytest.fail(f"the build did not produce {path}")
    setup = "".join(json.loads(path.read_text())["cells"][0]["source"])
    assert re.search(rf"git\+{re.escape(repo_url(REPO))}\.git@[0-9a-f]{{40}}#subdirectory=code", setup), setup


# --- the measured compute badge ---------------------------------------------------------------


@pytest.mark.parametrize("page", notebook_pages(), ids=[p.stem for p in notebook_pages()])
def test_every_executed_page_shows_its_measured_compute(page):
    from jupyter_cache import get_cache

    html = (SITE / page.relative_to(REPO).with_suffix(".html")).read_text(encoding="utf-8")
    m = re.search(r'class="compute-badge"[^>]*>.*?Runs in (\d+) s on (a \d+-core CPU|an .+? GPU)</span>', html)
    assert m, f"{page.name}: no compute badge under the title"
    # The number is the build's own timing: the execution cache's record for this page.
    records = [r for r in get_cache(str(REPO / "_build" / ".jupyter_cache")).list_cache_records()
               if r.uri == str(page.resolve())]
    assert records, f"{page.name}: no execution record in the cache"
    seconds = max(records, key=lambda r: r.created).data["execution_seconds"]
    assert int(m.group(1)) == max(1, round(seconds)), (m.group(1), seconds)
