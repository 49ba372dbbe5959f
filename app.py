"""Pulse entry point: sign-in, then the pages the signed-in user's role may open."""

import streamlit as st

from dashboard.auth import current_user, no_access_page, sign_in_page, sign_out, signed_in_without_role
from dashboard.components import escape_markdown
from dashboard.deps import settings
from services.access.policy import pages_for

st.set_page_config(page_title="Pulse", page_icon="💬", layout="wide")

PAGES = {
    "home": st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    "trends": st.Page("pages/trends.py", title="Trends", icon=":material/monitoring:"),
    "alerts": st.Page("pages/alerts.py", title="Alerts", icon=":material/notifications:"),
    "review": st.Page("pages/review.py", title="Review queue", icon=":material/rate_review:"),
    "upload": st.Page("pages/upload.py", title="Upload check-ins", icon=":material/upload_file:"),
    "data": st.Page("pages/admin_data.py", title="Labels & datasets", icon=":material/dataset:"),
    "training": st.Page("pages/admin_training.py", title="Training", icon=":material/model_training:"),
    "models": st.Page("pages/admin_models.py", title="Models & deploy", icon=":material/rocket_launch:"),
    "health": st.Page("pages/admin_health.py", title="Model health & costs", icon=":material/monitor_heart:"),
    "audit": st.Page("pages/admin_audit.py", title="Audit log", icon=":material/policy:"),
}

config = settings()  # a bad setting stops here, with a message naming it
user = current_user()
if config.auth_mode == "demo":
    st.sidebar.warning("Demo sign-in: anyone can take any role.", icon=":material/science:")
if user is None and signed_in_without_role():
    page = st.navigation([st.Page(no_access_page, title="No access", icon=":material/lock:")], position="hidden")
elif user is None:
    page = st.navigation([st.Page(sign_in_page, title="Sign in", icon=":material/login:")], position="hidden")
else:
    # The menu is drawn here with page links: config hides Streamlit's own sidebar list, which
    # would otherwise advertise every file of pages/ to visitors who are not signed in.
    page = st.navigation([PAGES[name] for name in pages_for(user.role)], position="hidden")
    with st.sidebar:
        for name in pages_for(user.role):
            st.page_link(PAGES[name])
        st.divider()
        st.markdown(f"Signed in as **{escape_markdown(user.role)}**")
        st.text(user.name)
        if user.role == "manager":
            st.caption("Groups: " + (escape_markdown(", ".join(user.groups)) or "none assigned"))
        if st.button("Sign out", icon=":material/logout:"):
            sign_out()
page.run()
