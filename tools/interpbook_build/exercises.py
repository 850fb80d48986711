"""Exercises as they are written in a chapter's MyST markdown, and the stubs derived from them.

Authoring convention (see book/contributing.md):

* ``:::{exercise} Title`` with the options of :data:`EXERCISE_OPTIONS` (``:label:``,
  ``:difficulty:`` 1-5, ``:importance:`` 1-5, ``:minutes:``) holds the task;
* one or more ``:::{dropdown} Hint ...`` blocks follow;
* a code cell tagged ``solution`` holds the solution; the lines between ``# BEGIN SOLUTION`` and
  ``# END SOLUTION`` are what the learner writes. The stub is derived from that cell, so stub
  and solution cannot drift apart;
* a code cell tagged ``check`` runs the exercise's check.

The options are parsed in one place, :func:`parse_exercise`, which the Sphinx directive, the
notebook generator and the tests all call: an unknown, missing or malformed option is the same
error, naming the page and line, wherever it is found.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB_MESSAGE = "your code here"

_EXERCISE_RE = re.compile(r"^(?P<fence>:{3,})\{exercise\}\s*(?P<title>.*)$")
_HINT_RE = re.compile(r"^:{3,}\{dropdown\}\s*Hint", re.IGNORECASE)
_OPTION_RE = re.compile(r"^:(?P<name>\w[\w-]*):\s*(?P<value>.*)$")


class ExerciseFormatError(ValueError):
    pass


# --- the exercise schema ----------------------------------------------------------------------


def _label(value: str) -> str:
    if not re.fullmatch(r"ex-[a-z0-9]+(-[a-z0-9]+)*", value):
        raise ValueError("must look like `ex-some-name` (lower case, digits and hyphens)")
    return value


def _level(value: str) -> int:
    if not re.fullmatch(r"[1-5]", value):
        raise ValueError("must be a whole number from 1 to 5")
    return int(value)


def _minutes(value: str) -> int:
    if not re.fullmatch(r"[1-9][0-9]*", value):
        raise ValueError("must be a positive whole number of minutes")
    return int(value)


@dataclass(frozen=True)
class Option:
    parse: Callable[[str], object]
    about: str


# Every option is required; there are no defaults.
EXERCISE_OPTIONS: dict[str, Option] = {
    "label": Option(_label, "a unique id, `ex-...`, that {ref} links and the tests use"),
    "difficulty": Option(_level, "1 (routine) to 5 (hard)"),
    "importance": Option(_level, "1 (optional) to 5 (central to the chapter)"),
    "minutes": Option(_minutes, "a time estimate"),
}


@dataclass(frozen=True)
class ExerciseMeta:
    """An exercise's title and parsed options."""

    title: str
    label: str
    difficulty: int
    importance: int
    minutes: int


def parse_exercise(title: str, options: Mapping[str, str], where: str) -> ExerciseMeta:
    """Validate an exercise's title and raw ``:name: value`` options against
    :data:`EXERCISE_OPTIONS`. ``where`` ("page.md:LINE") starts every error message."""
    title = title.strip()
    if not title:
        raise ExerciseFormatError(f"{where}: an exercise needs a title: `:::{{exercise}} What to do`.")
    valid = ", ".join(f":{k}:" for k in EXERCISE_OPTIONS)
    unknown = [k for k in options if k not in EXERCISE_OPTIONS]
    if unknown:
        raise ExerciseFormatError(
            f"{where}: exercise {title!r} has unknown option(s) "
            f"{', '.join(':' + k + ':' for k in unknown)}; the options are {valid}."
        )
    missing = [k for k in EXERCISE_OPTIONS if k not in options]
    if missing:
        raise ExerciseFormatError(
            f"{where}: exercise {title!r} is missing option(s) "
            f"{', '.join(':' + k + ':' for k in missing)} (every exercise sets {valid})."
        )
    parsed: dict[str, object] = {}
    for name, opt in EXERCISE_OPTIONS.items():
        raw = str(options[name]).strip()
        try:
            parsed[name] = opt.parse(raw)
        except ValueError as e:
            raise ExerciseFormatError(
                f"{where}: exercise {title!r}: :{name}: {e} ({opt.about}); got {raw!r}."
            ) from None
    return ExerciseMeta(title=title, **parsed)  # type: ignore[arg-type]


def split_options(lines: list[str], start: int) -> tuple[dict[str, str], int]:
    """The ``:name: value`` lines of a directive starting at ``lines[start]``; returns the
    options and the index of the first line after them."""
    opts: dict[str, str] = {}
    i = start
    while i < len(lines):
        m = _OPTION_RE.match(lines[i].strip())
        if not m:
            break
        opts[m.group("name")] = m.group("value").strip()
        i += 1
    return opts, i


# --- stubs ------------------------------------------------------------------------------------


def make_stub(source: str, where: str = "solution cell") -> str:
    """Replace each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` region by a
    ``raise NotImplementedError`` at the marker's indentation."""
    out: list[str] = []
    inside = False
    regions = 0
    for lineno, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ExerciseFormatError(f"{where}, line {lineno}: nested {BEGIN!r}.")
            inside = True
            regions += 1
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}# YOUR CODE HERE")
            out.append(f'{indent}raise NotImplementedError("{STUB_MESSAGE}")')
        elif stripped == END:
            if not inside:
                raise ExerciseFormatError(f"{where}, line {lineno}: {END!r} without {BEGIN!r}.")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ExerciseFormatError(f"{where}: {BEGIN!r} is never closed by {END!r}.")
    if regions == 0:
        raise ExerciseFormatError(
            f"{where}: a cell tagged `solution` needs at least one {BEGIN!r} ... {END!r} region "
            "marking what the learner writes."
        )
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


def strip_markers(source: str) -> str:
    """The solution as a learner reads it: the markers removed."""
    return "\n".join(l for l in source.splitlines() if l.strip() not in (BEGIN, END)) + (
        "\n" if source.endswith("\n") else ""
    )


# --- exercises of a page ----------------------------------------------------------------------


@dataclass
class Exercise:
    label: str
    title: str
    difficulty: int
    importance: int
    minutes: int
    line: int = 0  # line of the `:::{exercise}` directive in the page (1-based; 0 if unknown)
    hints: int = 0
    solution_cells: list[int] = field(default_factory=list)  # indices into the notebook's cells
    check_cells: list[int] = field(default_factory=list)


def read_notebook(path: str | Path):
    """A chapter's MyST markdown as an nbformat notebook (jupytext's MyST reader)."""
    import jupytext

    return jupytext.read(str(path), fmt="md:myst")


def cell_tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _directive_lines(page: Path) -> list[int]:
    """1-based line numbers of the ``{exercise}`` directives in the page's text, in order.
    Lines inside a backtick-fenced block (a code cell, or an example in a guide) are skipped."""
    out: list[int] = []
    fence = ""  # the opening backticks of the block we are in, "" outside
    for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        s = line.strip()
        ticks = re.match(r"^`{3,}", s)
        if fence:
            if ticks and s == ticks.group(0) and len(s) >= len(fence):
                fence = ""
        elif ticks:
            fence = ticks.group(0)
        elif _EXERCISE_RE.match(s):
            out.append(n)
    return out


def find_exercises(nb, where: str = "chapter", page: str | Path | None = None) -> list[Exercise]:
    """Exercises in notebook order, each with its hint count and solution/check cells.

    ``page``, the markdown file ``nb`` was read from, lets errors name the line. Raises
    ExerciseFormatError when an option is wrong or an exercise lacks a hint, a solution or a
    check."""
    lines_in_page = _directive_lines(Path(page)) if page is not None else []
    exercises: list[Exercise] = []
    current: Exercise | None = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            lines = cell.source.splitlines()
            for j, line in enumerate(lines):
                m = _EXERCISE_RE.match(line.strip())
                if m:
                    n = len(exercises)
                    lineno = lines_in_page[n] if n < len(lines_in_page) else 0
                    at = f"{where}:{lineno}" if lineno else where
                    opts, _ = split_options(lines, j + 1)
                    meta = parse_exercise(m.group("title"), opts, at)
                    current = Exercise(meta.label, meta.title, meta.difficulty, meta.importance,
                                       meta.minutes, line=lineno)
                    exercises.append(current)
                elif _HINT_RE.match(line.strip()) and current is not None:
                    current.hints += 1
        elif cell.cell_type == "code":
            tags = cell_tags(cell)
            if "solution" in tags:
                if current is None:
                    raise ExerciseFormatError(f"{where}: cell {i} is tagged `solution` outside an exercise.")
                make_stub(cell.source, where=f"{where}, solution cell of {current.label!r}")
                current.solution_cells.append(i)
            if "check" in tags:
                if current is None:
                    raise ExerciseFormatError(f"{where}: cell {i} is tagged `check` outside an exercise.")
                current.check_cells.append(i)
    for ex in exercises:
        problems = []
        if ex.hints == 0:
            problems.append("no `:::{dropdown} Hint` block")
        if not ex.solution_cells:
            problems.append("no code cell tagged `solution`")
        if not ex.check_cells:
            problems.append("no code cell tagged `check`")
        elif ex.solution_cells and ex.check_cells[0] < ex.solution_cells[0]:
            problems.append("its check cell comes before its solution cell")
        if problems:
            at = f"{where}:{ex.line}" if ex.line else where
            raise ExerciseFormatError(f"{at}: exercise {ex.label!r} has " + "; ".join(problems) + ".")
    labels = [e.label for e in exercises]
    dupes = sorted({l for l in labels if labels.count(l) > 1})
    if dupes:
        raise ExerciseFormatError(f"{where}: duplicate exercise labels {dupes}.")
    return exercises


def page_exercises(page: str | Path) -> tuple[object, list[Exercise]]:
    """(notebook, exercises) of one page, errors naming the page and line."""
    page = Path(page)
    nb = read_notebook(page)
    return nb, find_exercises(nb, where=str(page), page=page)
