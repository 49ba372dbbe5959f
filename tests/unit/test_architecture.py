"""Layering rules from ARCHITECTURE.md, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _py(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in sorted((ROOT / d).rglob("*.py"))]


def test_services_never_import_streamlit() -> None:
    offenders = [p.name for p in _py("services") if "streamlit" in _imports(p)]
    assert offenders == []


@pytest.mark.parametrize("banned", ["boto3", "botocore", "sagemaker", "fasttext"])
def test_ui_layer_never_imports_backends(banned: str) -> None:
    files = [*_py("pages", "dashboard"), ROOT / "app.py"]
    assert [p.name for p in files if banned in _imports(p)] == []


def test_every_page_guards_its_role_before_anything_else() -> None:
    """The first statement after the imports of each page is `... = require_role(...)`."""
    for page in _py("pages"):
        body = [n for n in ast.parse(page.read_text(encoding="utf-8")).body if not isinstance(n, ast.Expr)]
        first = next(n for n in body if not isinstance(n, ast.Import | ast.ImportFrom))
        call = first.value if isinstance(first, ast.Assign | ast.Expr) else None
        assert isinstance(call, ast.Call) and getattr(call.func, "id", "") == "require_role", page.name


def test_nothing_downloads_nltk_data() -> None:
    sources = [*_py("services", "pages", "dashboard"), ROOT / "app.py"]
    assert [p.name for p in sources if "nltk.download" in p.read_text(encoding="utf-8")] == []


def test_no_unsafe_html_in_the_ui() -> None:
    sources = [*_py("pages", "dashboard"), ROOT / "app.py"]
    assert [p.name for p in sources if "unsafe_allow_html=True" in p.read_text(encoding="utf-8")] == []


# The credentials scan lives in tests/unit/test_iam_and_secrets.py.
