"""Small rendering helpers. Text from people (messages, names, reasons) is shown as text, never markup."""

from __future__ import annotations

import re

# Everything Markdown (and Streamlit's :color[...] / :icon: directives) gives a meaning to.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&])")


def escape_markdown(text: str) -> str:
    """`text` made safe to embed in a Markdown string: every special character is backslash-escaped
    and newlines are flattened, so it shows literally."""
    return _MARKDOWN.sub(r"\\\1", str(text)).replace("\n", " ")
