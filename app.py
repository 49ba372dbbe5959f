"""Pulse entry point: sign-in, then the pages the signed-in user's role may open."""

from collections.abc import Callable

import streamlit as st

from dashboard import urlstate
from dashboard.auth import (
    NAVIGATING,
    current_user,
    no_access_page,
    not_for_you,
    sign_in_page,
    sign_out,
    signed_in_without_role,
    sync_cookie,
)
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


def stand_in(name: str, run: Callable[[str], None], title: str) -> st.Page:
    """A page at `name`'s address that runs `run(name)`: an address never leads to "Page not
    found", whoever follows it (sign-in first, then the page itself; a page for another role says so)."""

    def page() -> None:
        run(name)

    page.__name__ = f"{name}_{run.__name__}"
    return st.Page(page, title=title, url_path=PAGES[name].url_path)


def no_such_page() -> None:
    st.title("No page here")
    st.info("There is no page at this address: the link may be mistyped or out of date.", icon=":material/link_off:")
    st.page_link(PAGES["home"], label="Go to Home", icon=":material/home:")


config = settings()  # a bad setting stops here, with a message naming it
stray = urlstate.unknown_address(p.url_path for p in PAGES.values())
user = current_user()
if config.auth_mode == "demo":
    st.sidebar.warning("Demo sign-in: anyone can take any role.", icon=":material/science:")
if user is None and signed_in_without_role():
    page = st.navigation([st.Page(no_access_page, title="No access", icon=":material/lock:")], position="hidden")
elif user is None:
    # Every address leads to sign-in, and after it to the page the address named.
    signing_in = [st.Page(sign_in_page, title="Sign in", icon=":material/login:", default=True)]
    signing_in += [stand_in(name, lambda _name: sign_in_page(), "Sign in") for name in PAGES if name != "home"]
    if stray is not None:
        signing_in.append(st.Page(sign_in_page, title="Sign in", url_path=stray))
    page = st.navigation(signing_in, position="hidden")
else:
    # The menu is drawn here with page links: config hides Streamlit's own sidebar list, which
    # would otherwise advertise every file of pages/ to visitors who are not signed in.
    allowed = pages_for(user.role)
    here = {name: PAGES[name] if name in allowed else stand_in(name, not_for_you, PAGES[name].title) for name in PAGES}
    listed = list(here.values())
    if stray is not None:
        listed.append(st.Page(no_such_page, title="No page here", url_path=stray))
    page = st.navigation(listed, position="hidden")
    wanted = st.query_params.get("next")  # a page opened by URL before the app's first run
    if wanted is not None:
        del st.query_params["next"]
        if wanted in here and wanted != "home":
            st.switch_page(here[wanted], query_params=urlstate.carried())  # with the link's filters
    with st.sidebar:
        for name in allowed:
            st.page_link(PAGES[name])
        st.divider()
        st.markdown(f"Signed in as **{escape_markdown(user.role)}**")
        st.text(user.name)
        if user.role == "manager":
            st.caption("Groups: " + (escape_markdown(", ".join(user.groups)) or "none assigned"))
        if st.button("Sign out", icon=":material/logout:"):
            sign_out()
sync_cookie()  # after any switch above: a switch ends the run before its output reaches the browser
st.session_state[NAVIGATING] = True
try:
    page.run()
finally:
    st.session_state.pop(NAVIGATING, None)
