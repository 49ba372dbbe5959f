"""No data reaches a Markdown-rendering Streamlit call unescaped (a source check of app.py, pages/
and dashboard/).

Streamlit renders Markdown in far more places than `st.markdown`: captions, alerts, toasts, titles,
metric labels *and values*, widget labels and help tooltips, the options of radio buttons, pills and
segmented controls, progress and spinner texts. A string from an upload, a label, a user or a model
that reaches one of them may become an image fetched from anywhere, a link, a heading or KaTeX. So
every argument that such a call renders must be *safe* by construction:

- a literal, or a module constant (a string, or a dict/tuple of literals, indexed);
- `escape_markdown(...)`, the one escaping helper (dashboard/components.py);
- `shipped_markdown("package", "file.md")` with literal arguments: a Markdown file of the code base;
- a number: `len(...)`, `int(...)`, `round(...)`, ..., or an f-string field with a numeric format
  (`{n:,}`, `{share:.0%}`, `{x:+.2f}`);
- an f-string, `+`, `if ... else`, `or` of safe parts; a name whose every assignment is safe.

Anything else (a variable from the store, `str(exc)`, `user.name`, a function parameter) fails the
test with its file and line. Selectboxes and multiselects show options as plain text, and
dataframes and `st.text` never render Markdown, so they are not checked here.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FILES = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "dashboard").glob("*.py"))]

# method -> (positional indexes rendered as Markdown, keywords rendered as Markdown)
_BODY = ((0,), ("body",))
_LABEL = ((0,), ("label",))
RENDERS_MARKDOWN: dict[str, tuple[tuple[int, ...], tuple[str, ...]]] = {
    **dict.fromkeys(("markdown", "caption", "info", "warning", "error", "success", "toast"), _BODY),
    **dict.fromkeys(("title", "header", "subheader"), _BODY),
    "write": ((0, 1, 2, 3, 4, 5), ()),
    "metric": ((0, 1), ("label", "value")),
    **dict.fromkeys(("expander", "popover", "status"), _LABEL),
    "tabs": ((0,), ("tabs",)),
    **dict.fromkeys(
        ("button", "download_button", "link_button", "form_submit_button", "checkbox", "toggle", "page_link"), _LABEL
    ),
    **dict.fromkeys(("radio", "pills", "segmented_control"), ((0, 1), ("label", "options"))),
    **dict.fromkeys(
        (
            "selectbox",
            "multiselect",
            "text_input",
            "text_area",
            "number_input",
            "date_input",
            "time_input",
            "file_uploader",
            "slider",
            "select_slider",
            "color_picker",
            "feedback",
        ),
        _LABEL,
    ),
    "progress": ((1,), ("text",)),
    "spinner": ((0,), ("text",)),
    "dialog": ((0,), ("title",)),
}
# Keywords that render Markdown on any Streamlit call (tooltips).
ALWAYS = ("help",)
# Options shown through `format_func` render Markdown in these widgets only.
FORMATTED_OPTIONS = ("radio", "pills", "segmented_control")
NOT_STREAMLIT = {"log", "logger", "logging", "warnings", "sys", "os", "json", "re", "fig", "parser", "str"}
NUMBER_FUNCTIONS = {"len", "int", "float", "round", "abs", "sum"}
HELPER = "escape_markdown"
SHIPPED = "shipped_markdown"  # reads a Markdown file of the code base, named by literals


@dataclass(frozen=True)
class Unsafe:
    file: str
    line: int
    call: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.call}() gets {self.what}"


def _numeric_spec(spec: ast.expr | None) -> bool:
    if not isinstance(spec, ast.JoinedStr) or not all(isinstance(v, ast.Constant) for v in spec.values):
        return False
    text = "".join(str(v.value) for v in spec.values if isinstance(v, ast.Constant))
    return bool(text) and (text[-1] in "dfeEgG%n" or "," in text)


def _literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return all(_literal(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return all(k is not None and _literal(k) for k in node.keys) and all(_literal(v) for v in node.values)
    return False


class Checker:
    """Knows a module's constants and which names only ever hold safe strings."""

    def __init__(self, tree: ast.Module, imported: frozenset[str] = frozenset()) -> None:
        self.safe_functions: set[str] = set(imported)
        self.constants = {
            t.id
            for stmt in tree.body
            if isinstance(stmt, ast.Assign) and _literal(stmt.value)
            for t in stmt.targets
            if isinstance(t, ast.Name)
        }
        self.safe_names: set[str] = set()
        assigned: dict[str, list[ast.expr | None]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        assigned.setdefault(t.id, []).append(node.value)
                    else:  # tuple unpacking and the like: not followed
                        for n in ast.walk(t):
                            if isinstance(n, ast.Name):
                                assigned.setdefault(n.id, []).append(None)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
                assigned.setdefault(node.target.id, []).append(None)
            elif isinstance(node, ast.For | ast.comprehension | ast.withitem | ast.NamedExpr):
                target = getattr(node, "target", None) or getattr(node, "optional_vars", None)
                for n in ast.walk(target) if target is not None else ():
                    if isinstance(n, ast.Name):
                        assigned.setdefault(n.id, []).append(None)
            elif isinstance(node, ast.FunctionDef | ast.Lambda):
                for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                    assigned.setdefault(a.arg, []).append(None)
        returns: dict[str, list[ast.expr]] = {}
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef):
                returns[stmt.name] = [
                    r.value or ast.Constant(None) for r in ast.walk(stmt) if isinstance(r, ast.Return)
                ]
        changed = True
        while changed:  # a name is safe when each of its assignments is (to a fixed point)
            changed = False
            for name, values in assigned.items():
                if name not in self.safe_names and all(v is not None and self.safe(v) for v in values):
                    self.safe_names.add(name)
                    changed = True
            for name, values in returns.items():  # a function is safe when all it returns is
                if name not in self.safe_functions and all(self.safe(v) for v in values):
                    self.safe_functions.add(name)
                    changed = True

    def safe(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, ast.Name):
            return node.id in self.constants or node.id in self.safe_names
        if isinstance(node, ast.JoinedStr):
            return all(self.safe(v) for v in node.values)
        if isinstance(node, ast.FormattedValue):
            return _numeric_spec(node.format_spec) or self.safe(node.value)
        if isinstance(node, ast.BinOp):  # "a" + "b", and arithmetic on numbers
            return self.safe(node.left) and self.safe(node.right)
        if isinstance(node, ast.UnaryOp):
            return self.safe(node.operand)
        if isinstance(node, ast.IfExp):
            return self.safe(node.body) and self.safe(node.orelse)
        if isinstance(node, ast.BoolOp):
            return all(self.safe(v) for v in node.values)
        if isinstance(node, ast.List | ast.Tuple):
            return all(self.safe(e) for e in node.elts)
        if isinstance(node, ast.Starred):
            return self.safe(node.value)
        if isinstance(node, ast.Lambda):
            return self.safe(node.body)
        if isinstance(node, ast.Subscript):  # CONSTANT[...], {"a": "A"}[...]
            return _literal(node.value) or (isinstance(node.value, ast.Name) and node.value.id in self.constants)
        if isinstance(node, ast.Attribute):  # CONSTANT.__getitem__, CONSTANT.get
            return (
                isinstance(node.value, ast.Name) and node.value.id in self.constants and node.attr in ("__getitem__",)
            )
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == HELPER:
                return True
            if isinstance(func, ast.Name) and func.id == SHIPPED:
                return all(isinstance(a, ast.Constant) for a in [*node.args, *(k.value for k in node.keywords)])
            if isinstance(func, ast.Name) and func.id in NUMBER_FUNCTIONS:
                return True
            if isinstance(func, ast.Name) and func.id in self.safe_functions:
                return True
            if isinstance(func, ast.Name) and func.id in ("list", "tuple", "sorted") and len(node.args) == 1:
                return self.safe(node.args[0])
            if isinstance(func, ast.Name) and func.id in ("min", "max"):
                return all(self.safe(a) for a in node.args)
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "get"
                and isinstance(func.value, ast.Name)
                and func.value.id in self.constants
            ):
                return all(self.safe(a) for a in node.args[1:])  # the default is shown too
        return False


def _receiver(func: ast.Attribute) -> str:
    node: ast.expr = func.value
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else ""


def _safe_helpers() -> dict[str, frozenset[str]]:
    """dashboard module -> its functions that return only safe text (their callers may use them)."""
    out = {}
    for path in sorted((ROOT / "dashboard").glob("*.py")):
        checker = Checker(ast.parse(path.read_text()))
        out[f"dashboard.{path.stem}"] = frozenset(
            checker.safe_functions | {HELPER} if path.stem == "components" else checker.safe_functions
        )
    return out


def unsafe_calls(path: Path, helpers: dict[str, frozenset[str]] | None = None) -> list[Unsafe]:
    tree = ast.parse(path.read_text(), filename=str(path))
    helpers = _safe_helpers() if helpers is None else helpers
    imported = frozenset(
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module in helpers
        for alias in node.names
        if alias.name in helpers[node.module or ""]
    )
    checker = Checker(tree, imported)
    found: list[Unsafe] = []
    rel = str(path.relative_to(ROOT))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.IfExp) and isinstance(func.body, ast.Attribute):
            func = func.body  # (st.success if ok else st.error)(message): both render Markdown
        if not isinstance(func, ast.Attribute):
            continue
        method = func.attr
        if _receiver(func) in NOT_STREAMLIT:
            continue
        positions, keywords = RENDERS_MARKDOWN.get(method, ((), ()))
        if method not in RENDERS_MARKDOWN and not any(k.arg in ALWAYS for k in node.keywords):
            continue
        args: list[tuple[str, ast.expr]] = [(f"argument {i + 1}", a) for i, a in enumerate(node.args) if i in positions]
        args += [(f"{k.arg}=", k.value) for k in node.keywords if k.arg in (*keywords, *ALWAYS)]
        format_func = next((k.value for k in node.keywords if k.arg == "format_func"), None)
        for what, value in args:
            if what in ("argument 2", "options=") and method in FORMATTED_OPTIONS and format_func is not None:
                continue  # what is shown is format_func's result, checked below
            if method == "page_link" and what == "argument 1":
                continue  # a st.Page object: its title is checked where the page is declared
            if not checker.safe(value):
                found.append(Unsafe(rel, node.lineno, method, f"{what} {ast.unparse(value)[:80]}"))
        escapes = isinstance(format_func, ast.Name) and format_func.id == HELPER  # format_func=escape_markdown
        if method in FORMATTED_OPTIONS and format_func is not None and not escapes and not checker.safe(format_func):
            found.append(Unsafe(rel, node.lineno, method, f"format_func= {ast.unparse(format_func)[:80]}"))
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_calls_get_only_escaped_data(path: Path) -> None:
    found = unsafe_calls(path)
    assert not found, "data must go through escape_markdown():\n" + "\n".join(map(str, found))


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    """The check itself: each unsafe shape is found, each safe one passes."""
    source = """
import streamlit as st
from dashboard.components import escape_markdown
ORDERS = {"a": "A"}
name = load()
fixed = "x" if flag else "y"
st.caption(f"{name} wrote")                       # unsafe: a variable
st.error(str(exc))                                # unsafe: an error message
st.metric("Open", name)                           # unsafe: metric values are Markdown too
st.pills("P", names, format_func=lambda n: n)     # unsafe: options as typed
st.button("Go", help=name)                        # unsafe: tooltips are Markdown
st.caption(f"{escape_markdown(name)} · {len(rows):,} rows · {share:.0%} · {fixed}")
st.segmented_control("Order", list(ORDERS), format_func=ORDERS.__getitem__)
st.pills("Groups", names, format_func=escape_markdown)
st.selectbox("Who", names)                        # options of a selectbox are plain text
log.error("failed %s", name)                      # not Streamlit
st.markdown(shipped_markdown("services.review", "guidelines.md"))
st.markdown(shipped_markdown("services.review", name))  # unsafe: a file named by data
"""
    path = tmp_path / "page.py"
    path.write_text(source)
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        found = unsafe_calls(path, {"dashboard.components": frozenset({HELPER})})
    finally:
        ROOT = saved
    assert [(u.line, u.call) for u in found] == [
        (7, "caption"),
        (8, "error"),
        (9, "metric"),
        (10, "pills"),
        (11, "button"),
        (18, "markdown"),
    ]
