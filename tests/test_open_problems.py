"""The open-problems catalog and the capstone list: the shipped data validate, and the
validator rejects broken entries with messages that name the entry and the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from interpbook_build import open_problems as op

REPO = Path(__file__).resolve().parent.parent
BOOK = REPO / "book"
DATA = BOOK / "data" / "open_problems.yaml"
CAPSTONES = BOOK / "data" / "capstones.yaml"
TOC = REPO / "_toc.yml"


def _toc_or_none():
    return TOC if TOC.is_file() else None


# --- the shipped data ------------------------------------------------------------------------


def test_catalog_validates_against_pages_and_toc():
    if not TOC.is_file():
        pytest.skip("_toc.yml not present yet")
    catalog = op.load_catalog(DATA, book_dir=BOOK, toc_path=TOC)
    assert len(catalog) >= 200
    numbers = [p.number for p in catalog]
    assert len(numbers) == len(set(numbers))


def test_capstones_validate_against_pages_toc_and_catalog():
    catalog = op.load_catalog(DATA, check_pages=False)
    capstones = op.load_capstones(CAPSTONES, book_dir=BOOK, toc_path=_toc_or_none(), catalog=catalog)
    assert len(capstones) >= 20
    assert all(c.compute in op.COMPUTE_LEVELS for c in capstones)


def test_float_artefact_numbers_were_restored():
    catalog = op.load_catalog(DATA, check_pages=False)
    # 1.1 and 1.10 are different problems; the B-list export had flattened 1.10 into "1.1".
    assert catalog.by_number("1.1").summary != catalog.by_number("1.10").summary
    for number in ("1.10", "1.20", "2.20", "2.30", "3.10", "4.40", "5.20", "6.10", "9.50"):
        assert catalog.by_number(number).note, number
    assert "composition" in catalog.by_number("1.10").skills


def test_source_note_says_the_catalog_is_partial():
    catalog = op.load_catalog(DATA, check_pages=False)
    assert "partial" in catalog.source_note


def test_chapter_lookup_covers_whole_chapter():
    catalog = op.load_catalog(DATA, check_pages=False)
    whole = {p.number for p in catalog.for_page("chapters/induction/index")}
    hooks = {p.number for p in catalog.for_page("chapters/induction/03-hooks")}
    assert hooks and hooks <= whole
    assert op.problem_anchor("1.10") == "problem-1-10"


def test_data_holds_no_email_addresses():
    for path in (DATA, CAPSTONES):
        text = path.read_text(encoding="utf-8")
        assert "@" not in text.replace("@ gmail", ""), f"{path} contains an e-mail-like string"


# --- the validator rejects bad entries ---------------------------------------------------------


def _good_data() -> dict:
    return {
        "source_note": "partial test data",
        "problems": [
            {
                "number": "1.9",
                "category": "Toy Language Models",
                "subcategory": "How do larger models differ?",
                "difficulty": "B-C",
                "summary": "A first problem.",
                "existing_work": [],
                "chapters": ["chapters/a/index"],
                "skills": ["induction-heads"],
            },
            {
                "number": "1.10",
                "category": "Toy Language Models",
                "subcategory": None,
                "difficulty": "B",
                "summary": "A second problem.",
                "existing_work": ["https://example.org/paper"],
                "chapters": ["chapters/a/01-section"],
                "skills": ["composition", "hooks"],
            },
        ],
    }


@pytest.fixture
def book(tmp_path: Path) -> Path:
    (tmp_path / "chapters" / "a").mkdir(parents=True)
    (tmp_path / "chapters" / "a" / "index.md").write_text("# A\n")
    (tmp_path / "chapters" / "a" / "01-section.md").write_text("# A1\n")
    return tmp_path


def _errors(data, **kwargs) -> list[str]:
    with pytest.raises(op.CatalogError) as info:
        op.validate_catalog(data, **kwargs)
    return info.value.errors


def test_good_data_passes(book):
    catalog = op.validate_catalog(_good_data(), book_dir=book)
    assert [p.number for p in catalog] == ["1.9", "1.10"]
    assert catalog.by_number("1.9").levels == ["B", "C"]


def test_rejects_duplicate_number(book):
    data = _good_data()
    data["problems"][1]["number"] = "1.9"
    errors = _errors(data, book_dir=book)
    assert any("duplicate problem number '1.9'" in e and "entry #2" in e for e in errors), errors


def test_rejects_unquoted_float_number(book):
    data = _good_data()
    data["problems"][1]["number"] = 1.1  # what `number: 1.10` becomes in YAML
    errors = _errors(data, book_dir=book)
    assert any("field 'number'" in e and "quoted string" in e for e in errors), errors


@pytest.mark.parametrize("bad", ["E", "b", "C-B", "A-B-C", "", None, 2])
def test_rejects_unknown_difficulty(book, bad):
    data = _good_data()
    data["problems"][0]["difficulty"] = bad
    errors = _errors(data, book_dir=book)
    assert any(
        e.startswith("problem 1.9 (entry #1): field 'difficulty': unknown difficulty") for e in errors
    ), errors


def test_rejects_unknown_chapter(book):
    data = _good_data()
    data["problems"][1]["chapters"] = ["chapters/a/99-missing"]
    errors = _errors(data, book_dir=book)
    assert any(
        "problem 1.10" in e and "field 'chapters'" in e and "unknown chapter page 'chapters/a/99-missing'" in e
        for e in errors
    ), errors


def test_rejects_chapter_missing_from_toc(book):
    errors = _errors(_good_data(), book_dir=book, toc={"chapters/a/index"})
    assert any("'chapters/a/01-section' exists but is not listed in _toc.yml" in e for e in errors), errors


def test_rejects_chapter_with_suffix(book):
    data = _good_data()
    data["problems"][0]["chapters"] = ["chapters/a/index.md"]
    errors = _errors(data, book_dir=book)
    assert any("without a suffix" in e for e in errors), errors


def test_rejects_unknown_category_skill_and_empty_summary(book):
    data = _good_data()
    data["problems"][0]["category"] = "Toy Models"
    data["problems"][0]["skills"] = ["telepathy"]
    data["problems"][1]["summary"] = "  "
    errors = _errors(data, book_dir=book)
    assert any("problem 1.9" in e and "unknown category 'Toy Models'" in e for e in errors)
    assert any("problem 1.9" in e and "unknown skill 'telepathy'" in e for e in errors)
    assert any("problem 1.10" in e and "field 'summary'" in e for e in errors)


def test_rejects_number_outside_its_category(book):
    data = _good_data()
    data["problems"][0]["number"] = "2.9"
    errors = _errors(data, book_dir=book)
    assert any("numbered 1.x" in e for e in errors), errors


def test_reports_every_error_at_once(book):
    data = _good_data()
    data["problems"][0]["difficulty"] = "Z"
    data["problems"][1]["chapters"] = ["nowhere"]
    data["problems"][1]["skills"] = []
    errors = _errors(data, book_dir=book)
    assert len(errors) >= 3


def test_load_catalog_reports_file_and_entries(tmp_path, book):
    data = _good_data()
    data["problems"].append(copy.deepcopy(data["problems"][0]))
    path = book / "data" / "open_problems.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(op.CatalogError) as info:
        op.load_catalog(path)
    message = str(info.value)
    assert str(path) in message and "duplicate problem number '1.9'" in message


def test_toc_pages_reads_jupyter_book_toc(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(
        "format: jb-book\nroot: book/intro\nparts:\n  - caption: X\n    chapters:\n"
        "      - file: book/chapters/a/index\n        sections:\n"
        "          - file: book/chapters/a/01-section.md\n"
    )
    assert op.toc_pages(toc, tmp_path / "book") == {
        "intro", "chapters/a/index", "chapters/a/01-section",
    }


def test_capstone_validator_rejects_bad_entries(book):
    data = {
        "capstones": [
            {
                "id": "x", "title": "T", "summary": "S", "difficulty": "B",
                "compute": "a toaster", "chapters": ["chapters/a/nope"], "skills": ["hooks"],
                "related_problems": ["99.1"],
            },
            {
                "id": "x", "title": "T2", "summary": "S2", "difficulty": "Q",
                "compute": "CPU, minutes", "chapters": [], "skills": ["hooks"],
            },
        ]
    }
    with pytest.raises(op.CatalogError) as info:
        op.validate_capstones(data, book_dir=book, problem_numbers={"1.9"})
    errors = info.value.errors
    assert any("capstone x (entry #1)" in e and "unknown compute level" in e for e in errors)
    assert any("unknown chapter page 'chapters/a/nope'" in e for e in errors)
    assert any("'99.1' is not in the catalog" in e for e in errors)
    assert any("duplicate id 'x'" in e for e in errors)
    assert any("capstone x (entry #2)" in e and "unknown difficulty 'Q'" in e for e in errors)
