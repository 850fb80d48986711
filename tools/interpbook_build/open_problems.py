"""Load and validate the book's open-problems catalog and capstone list.

The data live in ``book/data/open_problems.yaml`` and ``book/data/capstones.yaml``. This module
checks them against a fixed schema (unique numbers, known categories, difficulties, skills and
compute levels, non-empty summaries, chapter references that resolve to real book pages) and
returns typed, read-only records. The Sphinx extension ``interpbook_build.sphinx.open_problems`` and
the tests both use it, so the catalog page, the per-chapter lists and CI agree on one schema.

Errors are collected, not raised one at a time: :class:`CatalogError` lists every problem found,
each naming the entry (problem number or capstone id, plus its position) and the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CATEGORIES",
    "COMPUTE_LEVELS",
    "DIFFICULTY_LEVELS",
    "SKILLS",
    "Capstone",
    "Catalog",
    "CatalogError",
    "Problem",
    "default_book_dir",
    "difficulty_levels",
    "is_valid_difficulty",
    "load_capstones",
    "load_catalog",
    "page_exists",
    "page_matches",
    "problem_anchor",
    "toc_pages",
    "validate_capstones",
    "validate_catalog",
]

# The nine categories of the source sheet, in its order. The slug is used in URLs and filters.
CATEGORIES: dict[str, str] = {
    "Toy Language Models": "toy-language-models",
    "Circuits In The Wild": "circuits-in-the-wild",
    "Interpreting Algorithmic Problems": "algorithmic-problems",
    "Exploring Polysemanticity and Superposition": "polysemanticity-superposition",
    "Analysing Training Dynamics": "training-dynamics",
    "Techniques, Tooling, and Automation": "techniques-tooling-automation",
    "Image Model Interpretability": "image-models",
    "Interpreting Reinforcement Learning": "reinforcement-learning",
    "Studying Learned Features in Language Models": "learned-features",
}

# Single levels, easiest first. A difficulty is one level ("B") or a range of two levels in
# increasing order joined by a hyphen ("B-C", "A-C"), exactly as the source sheet writes them.
DIFFICULTY_LEVELS: dict[str, str] = {
    "A": "a good first project once you know the basics",
    "B": "approachable with this book's core chapters behind you",
    "C": "a substantial project that needs experience or a lot of persistence",
    "D": "an open research question",
}

# Fixed skill vocabulary: tag -> human label. Add a tag here (with a label) before using it.
SKILLS: dict[str, str] = {
    "induction-heads": "Induction heads",
    "attention-patterns": "Attention patterns",
    "hooks": "Hooks",
    "ablation": "Ablation",
    "activation-patching": "Activation patching",
    "attribution-patching": "Attribution patching",
    "direct-logit-attribution": "Direct logit attribution",
    "composition": "Head composition",
    "weight-analysis": "Reading weights (QK/OV circuits)",
    "probing": "Linear probes",
    "steering": "Steering vectors",
    "superposition": "Superposition",
    "sparse-autoencoders": "Sparse autoencoders and transcoders",
    "neurons": "Neuron analysis",
    "max-activating-examples": "Max-activating dataset examples",
    "training-dynamics": "Training dynamics",
    "algorithmic-tasks": "Algorithmic tasks",
    "model-training": "Training small models",
    "fine-tuning": "Fine-tuning",
    "dimensionality-reduction": "Dimensionality reduction",
    "model-diffing": "Comparing models",
    "ioi-circuit": "Indirect object identification",
    "natural-language-circuits": "Circuits in natural language",
    "code-models": "Code models",
    "in-context-learning": "In-context learning",
    "memorisation": "Memorisation",
    "layernorm": "LayerNorm",
    "logit-lens": "Logit lens",
    "reasoning-models": "Reasoning models",
    "tooling": "Tooling",
    "automation": "Automated circuit finding",
    "llm-assisted": "Language models as research assistants",
    "vision-models": "Vision models",
    "feature-visualisation": "Feature visualisation",
    "reinforcement-learning": "Reinforcement learning",
    "architecture": "Transformer architecture",
}

# Compute a capstone needs, cheapest first.
COMPUTE_LEVELS: dict[str, str] = {
    "CPU, minutes": "runs on a laptop CPU in minutes",
    "CPU, hours": "runs on a CPU, but expect hours",
    "Colab GPU": "a free or low-tier notebook GPU (about 16 GB) is enough",
    "GPU with >= 24 GB": "a single GPU with at least 24 GB of memory",
    "GPU with >= 80 GB": "a single large GPU (80 GB class) or careful offloading",
    "Multi-GPU or hosted API": "several large GPUs, or a hosted inference service for very large models",
}

_NUMBER_RE = re.compile(r"^[1-9][0-9]*\.[1-9][0-9]*$")
_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_PAGE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.\-]*)*$")
_PAGE_SUFFIXES = (".md", ".ipynb")


class CatalogError(ValueError):
    """Raised when a data file does not match the schema. ``errors`` lists every problem."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = list(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"{source}: {len(self.errors)} problem(s) found:\n{lines}")


def default_book_dir() -> Path:
    """The repository's book/ folder (code/interpbook/open_problems.py -> repo/book)."""
    return Path(__file__).resolve().parents[2] / "book"


def is_valid_difficulty(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = value.split("-")
    if len(parts) == 1:
        return parts[0] in DIFFICULTY_LEVELS
    if len(parts) == 2 and all(p in DIFFICULTY_LEVELS for p in parts):
        order = list(DIFFICULTY_LEVELS)
        return order.index(parts[0]) < order.index(parts[1])
    return False


def difficulty_levels(value: str) -> list[str]:
    """All single levels a difficulty covers: "B-D" -> ["B", "C", "D"]."""
    order = list(DIFFICULTY_LEVELS)
    parts = value.split("-")
    lo, hi = order.index(parts[0]), order.index(parts[-1])
    return order[lo : hi + 1]


def problem_anchor(number: str) -> str:
    """HTML id of a problem on the catalog page: "1.10" -> "problem-1-10"."""
    return "problem-" + number.replace(".", "-")


def page_exists(book_dir: Path, page: str) -> bool:
    return any((Path(book_dir) / f"{page}{suffix}").is_file() for suffix in _PAGE_SUFFIXES)


def page_matches(page: str, target: str) -> bool:
    """Does a problem's chapter reference ``page`` count for ``target``?

    A target that is a chapter's ``index`` page stands for the whole chapter folder, so
    "chapters/induction/index" matches "chapters/induction/03-hooks" too.
    """
    if page == target:
        return True
    if target.endswith("/index"):
        return page.startswith(target[: -len("index")])
    return False


def toc_pages(toc_path: Path, book_dir: Path | None = None) -> set[str]:
    """Pages listed in a Jupyter Book ``_toc.yml``, as paths relative to ``book_dir``, no suffix.

    Entries are relative to the folder holding ``_toc.yml``; entries outside ``book_dir`` are
    returned relative to the toc folder instead.
    """
    from interpbook_build.toc import toc_entries

    toc_path = Path(toc_path)
    book_dir = Path(book_dir) if book_dir is not None else toc_path.parent / "book"
    found: set[str] = set()
    for entry in toc_entries(toc_path):
        absolute = (toc_path.parent / entry).resolve()
        try:
            found.add(absolute.relative_to(book_dir.resolve()).as_posix())
        except ValueError:
            found.add(Path(entry).as_posix())
    return found


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Problem:
    number: str
    category: str
    subcategory: str | None
    difficulty: str
    summary: str
    existing_work: tuple[str, ...]
    chapters: tuple[str, ...]
    skills: tuple[str, ...]
    source: tuple[str, ...] = ()
    note: str | None = None

    @property
    def anchor(self) -> str:
        return problem_anchor(self.number)

    @property
    def category_slug(self) -> str:
        return CATEGORIES[self.category]

    @property
    def levels(self) -> list[str]:
        return difficulty_levels(self.difficulty)

    @property
    def sort_key(self) -> tuple[int, int]:
        major, minor = self.number.split(".")
        return int(major), int(minor)


@dataclass(frozen=True)
class Catalog:
    source_note: str
    problems: tuple[Problem, ...]
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self):
        return iter(self.problems)

    def by_number(self, number: str) -> Problem:
        for problem in self.problems:
            if problem.number == number:
                return problem
        raise KeyError(number)

    def for_page(self, target: str) -> list[Problem]:
        """Problems that list ``target`` (or, for an index page, any page of that chapter)."""
        return [p for p in self.problems if any(page_matches(c, target) for c in p.chapters)]

    def chapter_pages(self) -> list[str]:
        """Every page referenced by some problem, sorted."""
        return sorted({c for p in self.problems for c in p.chapters})


@dataclass(frozen=True)
class Capstone:
    id: str
    title: str
    summary: str
    difficulty: str
    compute: str
    chapters: tuple[str, ...]
    skills: tuple[str, ...]
    related_problems: tuple[str, ...] = ()
    links: tuple[str, ...] = ()

    @property
    def anchor(self) -> str:
        return f"capstone-{self.id}"


# --------------------------------------------------------------------------------------------
# Validation helpers


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogError(str(path), [f"not valid YAML: {exc}"]) from exc


def _check_str_list(value: Any, where: str, field: str, errors: list[str]) -> list[str]:
    if value is None:
        errors.append(f"{where}: field '{field}' is missing (use [] for none)")
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(f"{where}: field '{field}' must be a list of strings, got {value!r}")
        return []
    return value


def _check_pages(
    pages: Iterable[str],
    where: str,
    errors: list[str],
    book_dir: Path | None,
    toc: set[str] | None,
) -> None:
    seen: set[str] = set()
    for page in pages:
        if page in seen:
            errors.append(f"{where}: field 'chapters' lists {page!r} twice")
        seen.add(page)
        if not _PAGE_RE.match(page) or ".." in page.split("/") or page.endswith(_PAGE_SUFFIXES):
            errors.append(
                f"{where}: field 'chapters': {page!r} is not a page path; write it relative to "
                "book/ without a suffix, e.g. 'chapters/induction/index'"
            )
            continue
        if book_dir is not None and not page_exists(book_dir, page):
            errors.append(
                f"{where}: field 'chapters': unknown chapter page {page!r} "
                f"(no book/{page}.md or .ipynb under {book_dir})"
            )
        elif toc is not None and page not in toc:
            errors.append(
                f"{where}: field 'chapters': page {page!r} exists but is not listed in _toc.yml"
            )


def _check_skills(skills: list[str], where: str, errors: list[str]) -> None:
    if not skills:
        errors.append(f"{where}: field 'skills' is empty; give at least one tag")
    for skill in skills:
        if skill not in SKILLS:
            errors.append(
                f"{where}: field 'skills': unknown skill {skill!r}; known skills are "
                + ", ".join(SKILLS)
            )
    if len(set(skills)) != len(skills):
        errors.append(f"{where}: field 'skills' has duplicates: {skills!r}")


def _check_difficulty(value: Any, where: str, errors: list[str]) -> None:
    if not is_valid_difficulty(value):
        errors.append(
            f"{where}: field 'difficulty': unknown difficulty {value!r}; allowed are "
            + ", ".join(DIFFICULTY_LEVELS)
            + " or a range of two of them in increasing order such as 'B-C'"
        )


def _check_links(links: list[str], where: str, field: str, errors: list[str]) -> None:
    for link in links:
        if not re.match(r"^https?://\S+$", link):
            errors.append(f"{where}: field '{field}': {link!r} is not an http(s) link")


# --------------------------------------------------------------------------------------------
# Problems

_PROBLEM_FIELDS = {
    "number", "category", "subcategory", "difficulty", "summary", "existing_work",
    "chapters", "skills", "source", "note",
}
_REQUIRED_PROBLEM_FIELDS = ("number", "category", "difficulty", "summary", "chapters", "skills")


def validate_catalog(
    data: Any,
    *,
    book_dir: Path | None = None,
    toc: set[str] | None = None,
    source: str = "open_problems.yaml",
) -> Catalog:
    """Validate already-parsed catalog data and return a :class:`Catalog`.

    ``book_dir``: check that every chapter reference has a page file there (skip if None).
    ``toc``: also require every chapter reference to be listed in the table of contents.
    """
    errors: list[str] = []
    if not isinstance(data, Mapping):
        raise CatalogError(source, ["the top level must be a mapping with 'problems'"])
    note = data.get("source_note")
    if not isinstance(note, str) or not note.strip():
        errors.append("top level: field 'source_note' must be a non-empty string")
    raw = data.get("problems")
    if not isinstance(raw, list) or not raw:
        raise CatalogError(source, errors + ["top level: field 'problems' must be a non-empty list"])

    problems: list[Problem] = []
    first_seen: dict[str, int] = {}
    for index, entry in enumerate(raw, start=1):
        number = entry.get("number") if isinstance(entry, Mapping) else None
        where = f"problem {number} (entry #{index})" if number is not None else f"entry #{index}"
        if not isinstance(entry, Mapping):
            errors.append(f"{where}: must be a mapping, got {type(entry).__name__}")
            continue
        _check_fields(entry, _REQUIRED_PROBLEM_FIELDS, _PROBLEM_FIELDS, where, errors)
        if not isinstance(number, str) or not _NUMBER_RE.match(number):
            errors.append(
                f"{where}: field 'number' must be a quoted string like \"1.10\", got {number!r}"
                " (unquoted YAML numbers turn 1.10 into 1.1)"
            )
        elif number in first_seen:
            errors.append(
                f"{where}: duplicate problem number {number!r} (first used by entry "
                f"#{first_seen[number]})"
            )
        else:
            first_seen[number] = index
        category = entry.get("category")
        if category not in CATEGORIES:
            errors.append(
                f"{where}: field 'category': unknown category {category!r}; known categories are "
                + "; ".join(CATEGORIES)
            )
        elif isinstance(number, str) and _NUMBER_RE.match(number):
            expected = list(CATEGORIES).index(category) + 1
            if int(number.split(".")[0]) != expected:
                errors.append(
                    f"{where}: field 'number': problems in {category!r} are numbered "
                    f"{expected}.x, got {number!r}"
                )
        sub = entry.get("subcategory")
        if sub is not None and not isinstance(sub, str):
            errors.append(f"{where}: field 'subcategory' must be text or null, got {sub!r}")
        _check_difficulty(entry.get("difficulty"), where, errors)
        summary = entry.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors.append(f"{where}: field 'summary' must be a non-empty string")
        links = _check_str_list(entry.get("existing_work", []), where, "existing_work", errors)
        _check_links(links, where, "existing_work", errors)
        chapters = _check_str_list(entry.get("chapters"), where, "chapters", errors)
        _check_pages(chapters, where, errors, book_dir, toc)
        skills = _check_str_list(entry.get("skills"), where, "skills", errors)
        _check_skills(skills, where, errors)
        src = _check_str_list(entry.get("source", []), where, "source", errors)
        note_text = entry.get("note")
        if note_text is not None and not isinstance(note_text, str):
            errors.append(f"{where}: field 'note' must be text")
        if not errors or all(not e.startswith(where + ":") for e in errors):
            problems.append(
                Problem(
                    number=number,
                    category=category,
                    subcategory=sub or None,
                    difficulty=entry["difficulty"],
                    summary=" ".join(summary.split()),
                    existing_work=tuple(links),
                    chapters=tuple(chapters),
                    skills=tuple(skills),
                    source=tuple(src),
                    note=note_text,
                )
            )
    if errors:
        raise CatalogError(source, errors)
    problems.sort(key=lambda p: p.sort_key)
    return Catalog(source_note=" ".join(note.split()), problems=tuple(problems))


def load_catalog(
    path: Path | str | None = None,
    *,
    book_dir: Path | str | None = None,
    check_pages: bool = True,
    toc_path: Path | str | None = None,
) -> Catalog:
    """Load ``book/data/open_problems.yaml`` (or ``path``) and validate it.

    Chapter references are checked against page files in ``book_dir`` (default: the folder two
    levels above the data file, i.e. book/) unless ``check_pages`` is false; if ``toc_path`` is
    given they must also appear in that ``_toc.yml``.
    """
    path = Path(path) if path is not None else default_book_dir() / "data" / "open_problems.yaml"
    book = Path(book_dir) if book_dir is not None else path.resolve().parent.parent
    toc = toc_pages(Path(toc_path), book) if toc_path is not None else None
    catalog = validate_catalog(
        _load_yaml(path), book_dir=book if check_pages else None, toc=toc, source=str(path)
    )
    return Catalog(source_note=catalog.source_note, problems=catalog.problems, path=path)


# --------------------------------------------------------------------------------------------
# Capstones

_CAPSTONE_FIELDS = {
    "id", "title", "summary", "difficulty", "compute", "chapters", "skills",
    "related_problems", "links",
}
_REQUIRED_CAPSTONE_FIELDS = ("id", "title", "summary", "difficulty", "compute", "chapters", "skills")


def _check_fields(entry: Mapping, required, allowed, where: str, errors: list[str]) -> None:
    """Report missing required fields and unknown fields of one catalog entry."""
    for field in required:
        if field not in entry:
            errors.append(f"{where}: field '{field}' is missing")
    for field in sorted(set(entry) - set(allowed)):
        errors.append(f"{where}: unknown field {field!r}; allowed fields are " + ", ".join(sorted(allowed)))


def validate_capstones(
    data: Any,
    *,
    book_dir: Path | None = None,
    toc: set[str] | None = None,
    problem_numbers: set[str] | None = None,
    source: str = "capstones.yaml",
) -> list[Capstone]:
    errors: list[str] = []
    if not isinstance(data, Mapping) or not isinstance(data.get("capstones"), list):
        raise CatalogError(source, ["the top level must be a mapping with a 'capstones' list"])
    out: list[Capstone] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(data["capstones"], start=1):
        cid = entry.get("id") if isinstance(entry, Mapping) else None
        where = f"capstone {cid} (entry #{index})" if cid else f"capstone entry #{index}"
        if not isinstance(entry, Mapping):
            errors.append(f"{where}: must be a mapping")
            continue
        _check_fields(entry, _REQUIRED_CAPSTONE_FIELDS, _CAPSTONE_FIELDS, where, errors)
        if not isinstance(cid, str) or not _SLUG_RE.match(cid):
            errors.append(f"{where}: field 'id' must be a lower-case slug like 'sae-from-scratch'")
        elif cid in seen:
            errors.append(f"{where}: duplicate id {cid!r} (first used by entry #{seen[cid]})")
        else:
            seen[cid] = index
        for field in ("title", "summary"):
            if not isinstance(entry.get(field), str) or not entry.get(field, "").strip():
                errors.append(f"{where}: field '{field}' must be a non-empty string")
        _check_difficulty(entry.get("difficulty"), where, errors)
        if entry.get("compute") not in COMPUTE_LEVELS:
            errors.append(
                f"{where}: field 'compute': unknown compute level {entry.get('compute')!r}; "
                "allowed are " + "; ".join(COMPUTE_LEVELS)
            )
        chapters = _check_str_list(entry.get("chapters"), where, "chapters", errors)
        _check_pages(chapters, where, errors, book_dir, toc)
        skills = _check_str_list(entry.get("skills"), where, "skills", errors)
        _check_skills(skills, where, errors)
        related = _check_str_list(entry.get("related_problems", []), where, "related_problems", errors)
        if problem_numbers is not None:
            for number in related:
                if number not in problem_numbers:
                    errors.append(
                        f"{where}: field 'related_problems': {number!r} is not in the catalog"
                    )
        links = _check_str_list(entry.get("links", []), where, "links", errors)
        _check_links(links, where, "links", errors)
        if all(not e.startswith(where + ":") for e in errors):
            out.append(
                Capstone(
                    id=cid,
                    title=entry["title"].strip(),
                    summary=" ".join(entry["summary"].split()),
                    difficulty=entry["difficulty"],
                    compute=entry["compute"],
                    chapters=tuple(chapters),
                    skills=tuple(skills),
                    related_problems=tuple(related),
                    links=tuple(links),
                )
            )
    if errors:
        raise CatalogError(source, errors)
    return out


def load_capstones(
    path: Path | str | None = None,
    *,
    book_dir: Path | str | None = None,
    check_pages: bool = True,
    toc_path: Path | str | None = None,
    catalog: Catalog | None = None,
) -> list[Capstone]:
    path = Path(path) if path is not None else default_book_dir() / "data" / "capstones.yaml"
    book = Path(book_dir) if book_dir is not None else path.resolve().parent.parent
    toc = toc_pages(Path(toc_path), book) if toc_path is not None else None
    numbers = {p.number for p in catalog} if catalog is not None else None
    return validate_capstones(
        _load_yaml(path),
        book_dir=book if check_pages else None,
        toc=toc,
        problem_numbers=numbers,
        source=str(path),
    )
