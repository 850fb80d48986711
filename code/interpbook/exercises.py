"""Exercises as they are written in a chapter's MyST markdown, and the stubs derived from them.

Authoring convention (see CONTRIBUTING.md):

* ``:::{exercise} Title`` with ``:label:``, ``:difficulty:`` (1-5), ``:importance:`` (1-5) and
  ``:minutes:`` options holds the task;
* one or more ``:::{dropdown} Hint ...`` blocks follow;
* a code cell tagged ``solution`` holds the solution; the lines between ``# BEGIN SOLUTION`` and
  ``# END SOLUTION`` are what the learner writes. The stub is derived from that cell, so stub
  and solution cannot drift apart;
* a code cell tagged ``check`` runs the exercise's check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
STUB_MESSAGE = "your code here"

_EXERCISE_RE = re.compile(r"^(?P<fence>:{3,})\{exercise\}\s*(?P<title>.*)$")
_HINT_RE = re.compile(r"^:{3,}\{dropdown\}\s*Hint", re.IGNORECASE)


class ExerciseFormatError(ValueError):
    pass


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


@dataclass
class Exercise:
    label: str
    title: str
    difficulty: int
    importance: int
    minutes: int
    hints: int = 0
    solution_cells: list[int] = field(default_factory=list)  # indices into the notebook's cells
    check_cells: list[int] = field(default_factory=list)


def read_notebook(path: str | Path):
    """A chapter's MyST markdown as an nbformat notebook (jupytext's MyST reader)."""
    import jupytext

    return jupytext.read(str(path), fmt="md:myst")


def _directive_options(lines: list[str], start: int) -> dict[str, str]:
    opts: dict[str, str] = {}
    for line in lines[start:]:
        m = re.match(r"^:(\w+):\s*(.*)$", line.strip())
        if not m:
            break
        opts[m.group(1)] = m.group(2).strip()
    return opts


def cell_tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def find_exercises(nb, where: str = "chapter") -> list[Exercise]:
    """Exercises in notebook order, each with its hint count and solution/check cells.

    Raises ExerciseFormatError when an exercise lacks a hint, a solution or a check."""
    exercises: list[Exercise] = []
    current: Exercise | None = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            lines = cell.source.splitlines()
            for j, line in enumerate(lines):
                m = _EXERCISE_RE.match(line.strip())
                if m:
                    opts = _directive_options(lines, j + 1)
                    missing = [k for k in ("label", "difficulty", "importance", "minutes") if k not in opts]
                    if missing:
                        raise ExerciseFormatError(
                            f"{where}: exercise {m.group('title')!r} is missing option(s) "
                            f"{', '.join(':' + k + ':' for k in missing)}."
                        )
                    try:
                        diff, imp, mins = (int(opts[k]) for k in ("difficulty", "importance", "minutes"))
                    except ValueError as e:
                        raise ExerciseFormatError(
                            f"{where}: exercise {opts['label']!r}: difficulty, importance and "
                            f"minutes must be whole numbers ({e})."
                        ) from None
                    for k, v in (("difficulty", diff), ("importance", imp)):
                        if not 1 <= v <= 5:
                            raise ExerciseFormatError(
                                f"{where}: exercise {opts['label']!r}: :{k}: must be 1-5, got {v}."
                            )
                    current = Exercise(opts["label"], m.group("title").strip(), diff, imp, mins)
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
            raise ExerciseFormatError(f"{where}: exercise {ex.label!r} has " + "; ".join(problems) + ".")
    labels = [e.label for e in exercises]
    dupes = sorted({l for l in labels if labels.count(l) > 1})
    if dupes:
        raise ExerciseFormatError(f"{where}: duplicate exercise labels {dupes}.")
    return exercises
