"""Cached reads for pages, keyed on what changes them (the ingested batches and the live model)."""

from __future__ import annotations

import streamlit as st

from dashboard.deps import workspace
from services.auth import User
from services.deployment import current
from services.overview import Overview, workspace_overview


def _fingerprint() -> tuple[str, ...]:
    """Changes whenever a batch is ingested or a model deployed: the cache key of every read."""
    store = workspace().store
    dep = current(store)
    return (*store.list("ingest/batches/"), dep.version if dep else "")


@st.cache_data(ttl=60, show_spinner=False)
def _overview(name: str, role: str, groups: tuple[str, ...], fingerprint: tuple[str, ...]) -> Overview:
    return workspace_overview(workspace().store, User(name, role, groups))


def overview(user: User) -> Overview:
    return _overview(user.name, user.role, user.groups, _fingerprint())
