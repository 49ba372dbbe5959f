"""Cached reads for pages, keyed on what changes them (the ingested batches and the live model)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.deps import workspace
from services.access.users import User
from services.checkins.overview import Overview, workspace_overview
from services.lifecycle.deployment import current
from services.monitoring.alerts import Alert
from services.monitoring.inbox import alert_checkins, list_alerts
from services.store import keys


def _fingerprint() -> tuple[str, ...]:
    """Changes whenever a batch is ingested or a model deployed: the cache key of every read."""
    store = workspace().store
    dep = current(store)
    return (*store.list(keys.INGEST_BATCHES), dep.version if dep else "")


@st.cache_data(ttl=60, show_spinner=False)
def _overview(name: str, role: str, groups: tuple[str, ...], fingerprint: tuple[str, ...]) -> Overview:
    return workspace_overview(workspace().store, User(name, role, groups))


def overview(user: User) -> Overview:
    return _overview(user.name, user.role, user.groups, _fingerprint())


# --- alerts: keyed on the alert files (events, status changes, rules), so a click shows at once.


def _alerts_fingerprint() -> tuple[str, ...]:
    return tuple(workspace().store.list(keys.ALERTS))


@st.cache_data(ttl=60, show_spinner=False)
def _alerts(name: str, role: str, groups: tuple[str, ...], fingerprint: tuple[str, ...]) -> list[Alert]:
    return list_alerts(workspace().store, User(name, role, groups))


def alerts(user: User) -> list[Alert]:
    """Every alert the user may see, in inbox order (open first, most severe first, newest first)."""
    return _alerts(user.name, user.role, user.groups, _alerts_fingerprint())


@st.cache_data(ttl=60, show_spinner=False)
def _alert_checkins(
    name: str, role: str, groups: tuple[str, ...], alert_id: str, fingerprint: tuple[str, ...]
) -> pd.DataFrame:
    return alert_checkins(workspace().store, alert_id, User(name, role, groups))


def triggering_checkins(user: User, alert_id: str) -> pd.DataFrame:
    """The check-ins behind one alert (time, label, confidence, text), if the user may see its group."""
    return _alert_checkins(user.name, user.role, user.groups, alert_id, _fingerprint())
