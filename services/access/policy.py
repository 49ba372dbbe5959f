"""Who may open which page, take which action and see which group: the one authorization policy.

Pages ask it before they show anything (`dashboard.auth.require_page`), the navigation lists what
it allows, and services that act for a signed-in `User` ask it again (a page is only the first
line of defence: Streamlit can run a page file directly). Refusals are audited as `access_denied`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.access import audit
from services.access.users import ROLES, User
from services.errors import NotAllowed
from services.store.base import ObjectStore

log = logging.getLogger(__name__)

MANAGERS = ("manager", "admin")
REVIEWERS = ("annotator", "admin")
ADMINS = ("admin",)

# Page -> the roles that may open it, in the order the navigation lists them.
PAGES: dict[str, tuple[str, ...]] = {
    "home": ROLES,
    "trends": MANAGERS,
    "alerts": MANAGERS,
    "review": REVIEWERS,
    "upload": ADMINS,
    "data": ADMINS,
    "training": ADMINS,
    "models": ADMINS,
    "health": ADMINS,
    "audit": ADMINS,
}
# Action -> the roles that may take it (services check these for the user they act for).
ACTIONS: dict[str, tuple[str, ...]] = {
    "read_trends": MANAGERS,
    "read_alerts": MANAGERS,
    "change_alert": MANAGERS,  # acknowledge, resolve
    "edit_alert_rules": ADMINS,
    "review": REVIEWERS,  # claim, label, skip, undo
    "flag_urgent": REVIEWERS,
}
WHAT = {
    "read_trends": "trends are for managers and admins",
    "read_alerts": "alerts are for managers and admins",
    "change_alert": "alerts are for managers and admins",
    "edit_alert_rules": "only admins change the alert rules",
    "review": "the review queue is for annotators and admins",
    "flag_urgent": "flagging a message as urgent is for annotators and admins",
}


def pages_for(role: str) -> list[str]:
    """The pages `role` may open, in navigation order."""
    return [page for page, roles in PAGES.items() if role in roles]


def may_open(role: str, page: str) -> bool:
    return role in PAGES.get(page, ())


def may(user: User, action: str) -> bool:
    return user.role in ACTIONS[action]


def require(user: User, action: str, store: ObjectStore | None = None, target: str = "") -> None:
    """Raise `NotAllowed` (audited when a store is given) unless `user` may take `action`."""
    if may(user, action):
        return
    if store is not None:
        audit.try_record(store, user.name, user.role, "access_denied", target or action)
    raise NotAllowed(f"{WHAT[action]}; {user.name} is signed in as {user.role}")


def sees_group(user: User, group: str) -> bool:
    """Admins see every group; managers the groups they are given (`User.can_see_group`)."""
    return user.can_see_group(group)


def group_scope(user: User, groups: Sequence[str] | None, action: str = "read_trends") -> list[str] | None:
    """The groups a query for `user` may read: None means every group (an admin who named none).

    Managers get the asked groups that are theirs; asking for others is logged (names only, never
    message text). Other roles are refused with `NotAllowed`."""
    if not may(user, action):
        log.warning("%s refused: user %r with role %r", action, user.name, user.role)
        raise NotAllowed(f"{WHAT[action]}; {user.name} is signed in as {user.role}")
    if user.role == "admin":
        return None if groups is None else list(dict.fromkeys(groups))
    asked = list(user.groups) if groups is None else list(dict.fromkeys(groups))
    outside = [g for g in asked if not sees_group(user, g)]
    if outside:
        log.warning(
            "%s: manager %r asked for %d group(s) outside their scope: %r", action, user.name, len(outside), outside
        )
    return [g for g in asked if sees_group(user, g)]
