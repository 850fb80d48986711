"""One identifier per section: a page, its solutions module and its checks module share it.

``book/chapters/<chapter>/<NN>-<section>.md`` is section ``<chapter>.<section>`` (hyphens in
the file name become underscores), so

* its solutions are exported to ``interpbook.solutions.<chapter>.<section>``;
* its checks live in ``interpbook.checks.<chapter>.<section>``.

The number ``NN`` orders the pages and titles them ("# NN. Title"); it is not part of the
identifier, so renumbering a page breaks no import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_PAGE_RE = re.compile(r"^(?P<number>\d{2})-(?P<name>[a-z][a-z0-9]*(?:-[a-z0-9]+)*)$")


class SectionNameError(ValueError):
    pass


@dataclass(frozen=True)
class Section:
    page: str  # repo-relative path, e.g. book/chapters/induction/03-hooks.md
    chapter: str  # induction
    name: str  # hooks
    number: int  # 3

    @property
    def identifier(self) -> str:
        return f"{self.chapter}.{self.name}"

    @property
    def solutions_module(self) -> str:
        return f"interpbook.solutions.{self.identifier}"

    @property
    def checks_module(self) -> str:
        return f"interpbook.checks.{self.identifier}"

    def module_path(self, package_root: Path, kind: str) -> Path:
        """``<package_root>/<kind>/<chapter>/<section>.py`` (kind: "solutions" or "checks")."""
        return package_root / kind / self.chapter / f"{self.name}.py"


def is_section_page(page: str | Path) -> bool:
    """Whether ``page`` is a section page (its name starts with a number, ``<NN>-``) rather than
    a chapter's index. Loose on purpose: :func:`section_of` then says what is wrong with a
    badly named one."""
    return Path(page).suffix == ".md" and bool(re.match(r"\d{2}-", Path(page).stem))


def section_of(page: str | Path, repo_root: str | Path | None = None) -> Section:
    """The section a chapter page belongs to; a page named otherwise is an error that says how
    to name it."""
    path = Path(page)
    if repo_root is not None and path.is_absolute():
        path = path.resolve().relative_to(Path(repo_root).resolve())
    chapter = path.parent.name
    m = _PAGE_RE.match(path.stem)
    if not m or not re.fullmatch(r"[a-z][a-z0-9_]*", chapter):
        raise SectionNameError(
            f"{path.as_posix()}: a section page is named book/chapters/<chapter>/<NN>-<section>.md, "
            "with a lower-case chapter folder (letters, digits, _) and a lower-case section name "
            "(letters, digits, -), e.g. book/chapters/induction/03-hooks.md."
        )
    return Section(path.as_posix(), chapter, m.group("name").replace("-", "_"), int(m.group("number")))
