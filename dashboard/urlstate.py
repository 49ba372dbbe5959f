"""Filters kept in the page's address (`st.query_params`): a reload, a bookmark or a pasted link opens
the same view ("Night shift, last 30 days, weekly").

A page calls `seed` for each filter before drawing its widget (the widget then takes its value from
session state, never from a `default=`), and `publish` once its filters are read. Values from the
address are checked against what the user may pick now; anything else in the address is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from typing import Any

import streamlit as st


def seed(key: str, param: str, options: Sequence[Any], default: Any, *, many: bool = False) -> None:
    """Give widget `key` its value before it is drawn: what this session chose already (if still a
    valid option), else the address's `param`, else `default`."""
    allowed = list(options)
    if key in st.session_state:
        value = st.session_state[key]
        if many and isinstance(value, list):
            kept = [v for v in value if v in allowed]
            if len(kept) != len(value):
                st.session_state[key] = kept or list(default)
            return
        if not many and value in allowed:
            return
    by_text = {str(o): o for o in allowed}
    if many:
        picked = [by_text[v] for v in dict.fromkeys(st.query_params.get_all(param)) if v in by_text]
        st.session_state[key] = picked or list(default)
    else:
        wanted = st.query_params.get(param)
        st.session_state[key] = by_text.get(wanted, default) if wanted is not None else default


def seed_dates(key: str, first: date, last: date, default_days: int) -> tuple[date, date]:
    """A (start, end) date range: `days=N` in the address is the last N days of the data (it moves
    as new check-ins arrive), `from=`/`to=` a fixed range; both are kept inside [first, last].
    Returns the default range (the last `default_days` days)."""
    default = (max(first, last - timedelta(days=default_days - 1)), last)
    if key in st.session_state:
        value = st.session_state[key]
        if isinstance(value, tuple) and all(isinstance(d, date) and first <= d <= last for d in value):
            return default
    st.session_state[key] = _range_from_url(first, last) or default
    return default


def _range_from_url(first: date, last: date) -> tuple[date, date] | None:
    clamp: Callable[[date], date] = lambda d: min(max(d, first), last)  # noqa: E731
    days = st.query_params.get("days")
    if days is not None and days.isdigit() and 0 < int(days) < 100_000:
        return clamp(last - timedelta(days=int(days) - 1)), last
    try:
        start = date.fromisoformat(st.query_params.get("from", ""))
        end = date.fromisoformat(st.query_params.get("to", str(last)))
    except ValueError:
        return None
    start, end = clamp(start), clamp(end)
    return (start, end) if start <= end else None


def date_params(start: date, end: date, last: date, default: tuple[date, date]) -> dict[str, str | None]:
    """The address's form of a date range: none for `default`, a range ending on the data's last
    day as `days=N`, any other as `from=`/`to=`."""
    if (start, end) == default:
        return {"days": None, "from": None, "to": None}
    if end == last:
        return {"days": str((end - start).days + 1), "from": None, "to": None}
    return {"days": None, "from": start.isoformat(), "to": end.isoformat()}


def publish(values: dict[str, str | Iterable[str] | None]) -> None:
    """Write the page's filters to its address; None (a filter at its default) removes the parameter."""
    for param, value in values.items():
        if value is None:
            st.query_params.pop(param, None)
            continue
        wanted = [value] if isinstance(value, str) else [str(v) for v in value]
        if (st.query_params.get_all(param)) != wanted:
            st.query_params[param] = wanted if len(wanted) != 1 else wanted[0]


def carried() -> dict[str, list[str]]:
    """Every parameter of the current address, to carry through a page switch (sign-in, say)."""
    return {param: st.query_params.get_all(param) for param in st.query_params}


def unknown_address(known: Iterable[str]) -> str | None:
    """The address the browser asked for when no page of the app has it (a mistyped or outdated
    link), else None: the app draws a page there itself, instead of Streamlit's "Page not found"
    dialog over the home page. Reads Streamlit's page request (not a public API: if it moves, the
    answer is None and Streamlit's own dialog comes back)."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        pages = ctx.pages_manager if ctx is not None else None
        if pages is None or pages.intended_page_script_hash:
            return None
        name = pages.intended_page_name
    except AttributeError:
        return None
    if not isinstance(name, str):
        return None
    name = name.strip().strip("/")
    if not name or "/" in name or name in set(known) or len(name) > 200:
        return None
    return name
