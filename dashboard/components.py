"""Small rendering helpers. Text from people (messages, names, reasons) is shown as text, never markup."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# Everything Markdown (and Streamlit's :color[...] / :icon: directives) gives a meaning to.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&])")


def escape_markdown(text: str) -> str:
    """`text` made safe to embed in a Markdown string: every special character is backslash-escaped
    and newlines are flattened, so it shows literally."""
    return _MARKDOWN.sub(r"\\\1", str(text)).replace("\n", " ")


def age(stamp: str) -> str:
    """'3 min ago' for an ISO time stamp."""
    try:
        then = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
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
    return f"{age(stamp)} ({stamp[:19].replace('T', ' ')} UTC)"
