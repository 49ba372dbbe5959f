"""The house rules of docs/architecture.md, checked on the source: which room may import what, every
page guards itself through the one policy, and no module or class grows past what a newcomer reads."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
PACKAGES = sorted(p.name for p in SERVICES.iterdir() if (p / "__init__.py").is_file())
BACKEND_LIBRARIES = ("boto3", "botocore", "sagemaker")
# What a page may not build for itself: it asks dashboard.deps for the workspace's services.
ADAPTERS = {"LocalStore", "S3Store", "LocalEndpoint", "LocalDeployer", "LocalTrainer", "SnsNotifier"}
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function (dotted names, resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}


def _py(*dirs: str) -> list[Path]:
    return [p for d in dirs for p in sorted((ROOT / d).rglob("*.py"))]


def _top(name: str) -> str:
    return name.split(".")[0]


def test_services_never_import_streamlit() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in _py("services") if "streamlit" in map(_top, _imports(p))]
    assert offenders == []


def test_only_the_aws_room_imports_boto3_botocore_or_sagemaker() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in [*_py("services", "pages", "dashboard"), ROOT / "app.py"]
        if set(map(_top, _imports(p))) & set(BACKEND_LIBRARIES) and "services/aws/" not in p.as_posix()
    ]
    assert offenders == []


@pytest.mark.parametrize("banned", [*BACKEND_LIBRARIES, "fasttext", "services.aws", "services.store.local"])
def test_the_ui_layer_never_imports_backends_or_adapters(banned: str) -> None:
    files = [*_py("pages", "dashboard"), ROOT / "app.py"]
    hits = [
        str(p.relative_to(ROOT)) for p in files if any(i == banned or i.startswith(banned + ".") for i in _imports(p))
    ]
    assert hits == []


def test_pages_never_build_an_adapter() -> None:
    files = [*_py("pages", "dashboard"), ROOT / "app.py"]
    assert [(p.name, sorted(_imported_names(p) & ADAPTERS)) for p in files if _imported_names(p) & ADAPTERS] == []


def _app_pages() -> dict[str, str]:
    """page file -> its name in app.py's navigation (the name the policy knows it by)."""
    source = (ROOT / "app.py").read_text(encoding="utf-8")
    return {file: name for name, file in re.findall(r'"(\w+)": st\.Page\("pages/(\w+\.py)"', source)}


def test_every_page_guards_itself_through_the_policy_first() -> None:
    """The first statement after the imports of each page is `user = require_page("<its name>")`, the
    name app.py's navigation gives it, which `services.access.policy.PAGES` knows."""
    from services.access.policy import PAGES

    names = _app_pages()
    assert sorted(names) == sorted(p.name for p in _py("pages"))
    for page in _py("pages"):
        body = [n for n in ast.parse(page.read_text(encoding="utf-8")).body if not isinstance(n, ast.Expr)]
        first = next(n for n in body if not isinstance(n, ast.Import | ast.ImportFrom))
        call = first.value if isinstance(first, ast.Assign | ast.Expr) else None
        assert isinstance(call, ast.Call) and getattr(call.func, "id", "") == "require_page", page.name
        assert [ast.literal_eval(a) for a in call.args] == [names[page.name]], page.name
        assert names[page.name] in PAGES


def test_every_package_says_what_it_holds() -> None:
    for package in PACKAGES:
        doc = ast.get_docstring(ast.parse((SERVICES / package / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc) > 80 and "TODO" not in doc, package


def test_services_is_a_few_packages_and_the_shared_modules() -> None:
    loose = sorted(p.name for p in SERVICES.glob("*.py") if p.name != "__init__.py")
    assert loose == ["config.py", "demo.py", "errors.py", "workspace.py"]


def test_no_module_or_class_is_too_long_to_read() -> None:
    long_modules, long_classes = [], []
    for path in [*_py("services", "pages", "dashboard"), ROOT / "app.py"]:
        source = path.read_text(encoding="utf-8")
        rel = str(path.relative_to(ROOT))
        if source.count("\n") > MAX_MODULE_LINES:
            long_modules.append(f"{rel}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno and node.end_lineno - node.lineno > MAX_CLASS_LINES:
                long_classes.append(f"{rel}:{node.name}: {node.end_lineno - node.lineno} lines")
    assert long_modules == [] and long_classes == []


# Not errors Pulse reports: the HTTP answer of `serve` (a tornado HTTPError carrying its status) and
# the development stand-in's own failure.
NOT_DOMAIN_ERRORS = {"services/lifecycle/invocations.py:ApiError", "services/aws/standin_images.py:StandInError"}


def test_errors_live_in_one_hierarchy() -> None:
    """Every exception class of services/ is defined in services/errors.py, under PulseError."""
    errors = SERVICES / "errors.py"
    known = {n.name for n in ast.walk(ast.parse(errors.read_text(encoding="utf-8"))) if isinstance(n, ast.ClassDef)}
    outside = [
        f"{p.relative_to(ROOT)}:{n.name}"
        for p in _py("services")
        if p != errors
        for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(n, ast.ClassDef)
        and any(ast.unparse(b).split(".")[-1] in known | {"Exception", "ValueError", "HTTPError"} for b in n.bases)
    ]
    assert sorted(set(outside) - NOT_DOMAIN_ERRORS) == []


def _runtime_imports(path: Path) -> set[str]:
    """The `services.*` modules a file imports when it runs (not those under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(m)
        for n in ast.walk(tree)
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
        for m in ast.walk(n)
    }
    found = set()
    for n in ast.walk(tree):
        if id(n) in typing_only:
            continue
        if isinstance(n, ast.ImportFrom) and n.module:
            found.add(n.module)
        elif isinstance(n, ast.Import):
            found.update(a.name for a in n.names)
    return {m for m in found if m.startswith("services.")}


@pytest.mark.parametrize(
    "room", sorted(p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists() and p.name != "cli")
)
def test_each_room_imports_only_what_its_docstring_says(room: str) -> None:
    """A package's docstring ends with "May import: ..."; the rooms its modules import are those."""
    package = SERVICES / room
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text(encoding="utf-8"))) or ""
    said = re.search(r"May import: ([^;]*?)(?:;|\.\s|\.$)", re.sub(r"\([^)]*\)", "", doc), re.S)
    assert said, f"services/{room}/__init__.py should say what the room may import ('May import: ...')"
    rooms = {p.name for p in SERVICES.iterdir() if (p / "__init__.py").exists()} | {"workspace", "demo"}
    allowed = {w for w in re.findall(r"[a-z]+", said.group(1)) if w in rooms}
    imported = {m.split(".")[1] for p in package.rglob("*.py") for m in _runtime_imports(p)} - {
        room,
        "errors",
        "config",
    }
    assert imported == allowed


WORKSPACE_FOLDERS = re.compile(
    r"^(checkins|ingest|review|datasets|models|gold|deployments|training|alerts|audit|auth|settings|privacy)/"
)


def test_store_keys_are_written_only_in_store_keys() -> None:
    """A key or prefix of the workspace is spelled out once, in services/store/keys.py; everything else
    names it from there (docstrings may mention the layout)."""
    spelled = []
    for p in [*_py("services", "dashboard", "pages"), ROOT / "app.py"]:
        if p == SERVICES / "store" / "keys.py":
            continue
        tree = ast.parse(p.read_text(encoding="utf-8"))
        docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        spelled += [
            f"{p.relative_to(ROOT)}:{n.lineno} {n.value!r}"
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant)
            and isinstance(n.value, str)
            and id(n) not in docs
            and WORKSPACE_FOLDERS.match(n.value)
        ]
    assert spelled == []


def test_nothing_downloads_nltk_data() -> None:
    sources = [*_py("services", "pages", "dashboard"), ROOT / "app.py"]
    assert [p.name for p in sources if "nltk.download" in p.read_text(encoding="utf-8")] == []


def test_no_unsafe_html_in_the_ui() -> None:
    sources = [*_py("pages", "dashboard"), ROOT / "app.py"]
    assert [p.name for p in sources if "unsafe_allow_html=True" in p.read_text(encoding="utf-8")] == []


# The credentials scan lives in tests/unit/test_iam_and_secrets.py.
