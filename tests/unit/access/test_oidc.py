"""Single sign-on: ID-token claims of every shape to a Pulse user (or none)."""

from __future__ import annotations

from typing import Any

import pytest

from services.access.users import User, claim_values, user_from_claims
from services.config import DEFAULT_OIDC_ROLES, load_settings
from services.errors import SettingsError


def user(claims: dict[str, Any]) -> User | None:
    return user_from_claims(
        claims, role_claim="cognito:groups", roles=DEFAULT_OIDC_ROLES, group_claim="custom:pulse_groups"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["pulse-admin", "other"], ["pulse-admin", "other"]),
        ('["pulse-admin", "other"]', ["pulse-admin", "other"]),
        ("pulse-admin,other", ["pulse-admin", "other"]),
        ("pulse-admin other", ["pulse-admin", "other"]),
        ("  ", []),
        (None, []),
        (42, []),
        ({"pulse-admin": True}, []),
        (["pulse-admin", 3, None, {"x": 1}, " "], ["pulse-admin"]),
        ("[not json", ["[not", "json"]),
    ],
)
def test_claim_values_of_every_shape(value: object, expected: list[str]) -> None:
    assert claim_values(value) == expected


def test_roles_map_from_the_claim() -> None:
    assert user({"email": "a@x.org", "cognito:groups": ["pulse-annotator"]}) == User("a@x.org", "annotator")
    assert user({"email": "a@x.org", "cognito:groups": "pulse-admin"}) == User("a@x.org", "admin")


def test_the_most_privileged_role_wins() -> None:
    both = user({"email": "a@x.org", "cognito:groups": ["pulse-annotator", "pulse-manager", "pulse-admin"]})
    assert both is not None and both.role == "admin"
    two = user({"email": "a@x.org", "cognito:groups": ["pulse-annotator", "pulse-manager"]})
    assert two is not None and two.role == "manager"


@pytest.mark.parametrize(
    "claims",
    [
        {"email": "a@x.org"},  # no role claim
        {"email": "a@x.org", "cognito:groups": ["everyone", "pulse-admins"]},  # unknown values
        {"email": "a@x.org", "cognito:groups": 7},
        {"cognito:groups": ["pulse-admin"]},  # nobody named
        {"email": "x" * 200, "cognito:groups": ["pulse-admin"]},
        {"email": "a@x.org\x00", "cognito:groups": ["pulse-admin"]},
    ],
)
def test_no_known_role_or_no_name_is_no_user(claims: dict[str, Any]) -> None:
    assert user(claims) is None


def test_the_name_falls_back_to_username_then_subject() -> None:
    assert user({"preferred_username": "ann", "cognito:groups": "pulse-admin"}) == User("ann", "admin")
    assert user({"sub": "1234-abcd", "cognito:groups": "pulse-admin"}) == User("1234-abcd", "admin")


def test_a_manager_gets_the_groups_of_the_group_claim() -> None:
    listed = user({"email": "m@x.org", "cognito:groups": ["pulse-manager"], "custom:pulse_groups": ["Support desk"]})
    assert listed == User("m@x.org", "manager", ("Support desk",))
    joined = user({"email": "m@x.org", "cognito:groups": "pulse-manager", "custom:pulse_groups": "Support desk, Ops"})
    assert joined is not None and joined.groups == ("Support desk", "Ops")
    odd = user({"email": "m@x.org", "cognito:groups": "pulse-manager", "custom:pulse_groups": {"a": 1}})
    assert odd is not None and odd.groups == ()
    admin = user({"email": "a@x.org", "cognito:groups": "pulse-admin", "custom:pulse_groups": ["G"]})
    assert admin is not None and admin.groups == ()  # admins see every group anyway


def test_oidc_settings_validate() -> None:
    config = load_settings(auth_mode="oidc", oidc_roles={"staff-admins": "admin"}, env="production")
    assert config.oidc_roles == {"staff-admins": "admin"}
    with pytest.raises(SettingsError, match="PULSE_OIDC_ROLES"):
        load_settings(oidc_roles={"x": "superuser"})
    with pytest.raises(SettingsError, match="PULSE_OIDC_PROVIDER"):
        load_settings(oidc_provider="../evil")
