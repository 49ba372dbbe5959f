"""The README results renderer: tables from result files, missing ones named, markers kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.results import END, START, rewrite, section, table

DOC = {
    "title": "Load",
    "columns": ["clients", "errors", "note"],
    "rows": [[1000, 0, "a|b"]],
    "notes": ["bounded"],
    "measured_at": "2026-11-24T00:00:00+00:00",
    "machine": "2 cores",
}


def test_a_table_escapes_pipes_and_formats_numbers() -> None:
    out = table(DOC)
    assert "| 1,000 | 0 | a\\|b |" in out and "- bounded" in out and "2 cores" in out


def test_a_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="1 cells for 3 columns"):
        table({**DOC, "rows": [[1]]})


def test_the_readme_section_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "serve_load.json").write_text(json.dumps(DOC))
    (results / "broken.json").write_text("{nope")
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{START}\nold stuff\n{END}\nafter\n")
    rewrite(readme, results)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    assert "old stuff" not in text and "### Load" in text
    assert "### broken" in text and "could not be read" in text
    assert "Not measured yet: learning_loop" in text
    rewrite(readme, results)  # idempotent
    assert readme.read_text() == text


def test_no_markers_is_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# nothing here\n")
    with pytest.raises(SystemExit, match="no <!-- results:start -->"):
        rewrite(readme, tmp_path)
    assert "Not measured yet" in section(tmp_path / "absent")
