"""Audit log: who signed in, labelled, trained, promoted, rolled back, changed a setting or deleted
data — and when, from which role. Admins only."""

import streamlit as st

from dashboard.auth import require_role

user = require_role("admin")

st.title("Audit log")
st.info("The audit log view is being built.")
