"""Small rendering helpers. Text from people (messages, names, reasons) is shown as text, never markup."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# Everything Markdown (and Streamlit's :color[...] / :icon: directives, KaTeX's $) gives a meaning to.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&^\"'])")
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+")
# GFM turns "http://…", "www.…" and "user@host" into links after escapes are decoded, and
# shortcodes such as ":smile:" or ":material/x:" into emoji and icons: an invisible word joiner
# after ":" and "@", and inside "www.", keeps them from matching while the text reads the same.
_JOIN = "\u2060"
_LINKISH = re.compile(r"(?<=[:@])|(?i:(?<=ww)(?=w\.))")


def wrap_row(lines: int) -> int:
    """Row height (px) for a data frame whose text must be read whole, `lines` lines of it: Streamlit's
    grid wraps a cell's text only in rows taller than 4rem, so this is for three lines or more."""
    return 19 * max(lines, 3) + 9


WRAP_ROW = wrap_row(3)


def shipped_markdown(package: str, name: str) -> str:
    """A Markdown file shipped with Pulse's code (reviewed like code, never data), named by literals:
    the review guidelines (`services/review/guidelines.md`), say."""
    from importlib import resources

    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def escape_markdown(text: object) -> str:
    """`text` made safe to embed in a Markdown string (st.markdown, st.caption, st.error, labels,
    metric values, options of radio, pills and segmented controls): it shows literally, on one
    line, as typed. The one way data reaches a Markdown-rendering call (tests/unit/dashboard/test_safe_calls.py)."""
    flat = _LINE_BREAKS.sub(" ", str(text))
    return _MARKDOWN.sub(r"\\\1", _LINKISH.sub(_JOIN, flat))


def age(stamp: str) -> str:
    """'3 min ago' for an ISO time stamp."""
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return escape_markdown(stamp)
    seconds = (datetime.now(UTC) - (then if then.tzinfo else then.replace(tzinfo=UTC))).total_seconds()
    if seconds < 90:
        return f"{max(int(seconds), 0)}s ago"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min ago"
    if seconds < 36 * 3600:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def when(stamp: str) -> str:
    """'3 min ago (2026-12-02 16:30:52 UTC)' for an ISO time stamp in UTC."""
    return f"{age(stamp)} ({escape_markdown(stamp[:19].replace('T', ' '))} UTC)"
