"""Cached access to settings and services. Pages call these instead of building anything."""

from __future__ import annotations

import streamlit as st

from dashboard.components import escape_markdown
from services.access.pseudonyms import configured_key
from services.access.throttle import Limits, Throttle
from services.config import Settings, load_settings
from services.errors import PulseError, SettingsError
from services.review.labeling import LabelingService
from services.workspace import Workspace, open_workspace


@st.cache_resource
def _settings() -> Settings:
    return load_settings()


def settings() -> Settings:
    """The validated settings; a bad setting stops the page with a message naming it."""
    try:
        return _settings()
    except SettingsError as exc:
        st.error(f"Pulse cannot start: {escape_markdown(exc)}")
        st.stop()
        raise  # unreachable: st.stop() raises


@st.cache_resource
def _workspace(s: Settings) -> Workspace:
    return open_workspace(s)


def workspace() -> Workspace:
    return _workspace(settings())


def show_error(exc: PulseError, what_next: str = "") -> None:
    """A domain error as a message with what to do next (never a traceback, never message text)."""
    st.error(escape_markdown(f"{exc}{' — ' + what_next if what_next else ''}"))


@st.cache_resource
def _throttle(s: Settings) -> Throttle:
    return Throttle(_workspace(s).store, Limits.from_settings(s))


def throttle() -> Throttle:
    """The sign-in throttle of this workspace (its record is in the store, shared by replicas)."""
    return _throttle(settings())


@st.cache_resource
def _labeling(s: Settings) -> LabelingService:
    return LabelingService(_workspace(s).store, pseudonym_key=configured_key(s))


def labeling() -> LabelingService:
    """One labeling service per app process: it keeps the queue index in memory between clicks."""
    return _labeling(settings())
