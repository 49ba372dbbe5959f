"""Settings (`services.config`) and password sign-in (`services.auth`)."""

from __future__ import annotations

import json
from pathlib import Path

import bcrypt
import pytest

from services.access.users import USERS_KEY, User, add_user, verify
from services.config import load_settings
from services.errors import AuthError, SettingsError
from services.store.local import LocalStore

PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def no_secrets(tmp_path: Path) -> Path:
    return tmp_path / "absent" / "secrets.toml"


def secrets_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / ".streamlit" / "secrets.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


# --- settings --------------------------------------------------------------------------------------


def test_defaults(no_secrets: Path) -> None:
    s = load_settings(no_secrets)
    assert s.env == "development"
    assert s.backend == "local"
    assert s.workspace == Path("workspace")
    assert s.auth_mode == "demo"
    assert s.review_threshold == 0.6
    assert s.max_text_chars == 2000
    assert s.max_upload_mb == 50
    assert s.bucket == ""


def test_environment_variables_are_read(no_secrets: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PULSE_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("PULSE_REVIEW_THRESHOLD", "0.75")
    monkeypatch.setenv("PULSE_MAX_TEXT_CHARS", "500")
    monkeypatch.setenv("PULSE_BACKEND", "aws")
    monkeypatch.setenv("PULSE_BUCKET", "pulse-data")
    monkeypatch.setenv("PULSE_PREFIX", "team/")
    s = load_settings(no_secrets)
    assert s.workspace == tmp_path / "ws"
    assert s.review_threshold == 0.75
    assert s.max_text_chars == 500
    assert (s.backend, s.bucket, s.prefix) == ("aws", "pulse-data", "team/")


def test_a_wrong_backend_names_the_variable_and_its_accepted_values(
    no_secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PULSE_BACKEND", "gcs")
    with pytest.raises(SettingsError) as err:
        load_settings(no_secrets)
    message = str(err.value)
    assert "PULSE_BACKEND='gcs'" in message
    assert "accepted values" in message
    assert "'local'" in message
    assert "'aws'" in message


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "abc"])
def test_threshold_out_of_range_is_refused(no_secrets: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PULSE_REVIEW_THRESHOLD", value)
    with pytest.raises(SettingsError, match=f"PULSE_REVIEW_THRESHOLD='{value}' is not valid"):
        load_settings(no_secrets)


@pytest.mark.parametrize("value", ["0.01", "0.99"])
def test_threshold_just_inside_the_range(no_secrets: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PULSE_REVIEW_THRESHOLD", value)
    assert load_settings(no_secrets).review_threshold == float(value)


def test_aws_without_a_bucket_is_refused(no_secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_BACKEND", "aws")
    with pytest.raises(SettingsError, match="PULSE_BUCKET is required when PULSE_BACKEND is 'aws'"):
        load_settings(no_secrets)


@pytest.mark.parametrize(
    ("env", "store", "models"),
    [
        ({}, "local", "local"),
        ({"PULSE_BACKEND": "aws"}, "s3", "sagemaker"),
        ({"PULSE_STORE": "s3"}, "s3", "local"),
        ({"PULSE_BACKEND": "aws", "PULSE_MODELS": "local"}, "s3", "local"),
        ({"PULSE_STORE": "s3", "PULSE_MODELS": "sagemaker"}, "s3", "sagemaker"),
    ],
)
def test_the_store_and_the_models_are_chosen_together_or_apart(
    no_secrets: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], store: str, models: str
) -> None:
    for name, value in {"PULSE_BUCKET": "b", **env}.items():
        monkeypatch.setenv(name, value)
    s = load_settings(no_secrets)
    assert (s.store_kind, s.models_kind) == (store, models)


def test_sagemaker_without_the_s3_store_is_refused(no_secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_MODELS", "sagemaker")
    with pytest.raises(SettingsError, match="PULSE_MODELS=sagemaker needs the workspace in S3"):
        load_settings(no_secrets)


def test_s3_and_sagemaker_endpoint_urls_are_separate(no_secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_AWS_ENDPOINT_URL", "http://all:1")
    monkeypatch.setenv("PULSE_S3_ENDPOINT_URL", "http://minio:9000")
    s = load_settings(no_secrets)
    assert s.endpoint_url("s3") == "http://minio:9000"
    assert s.endpoint_url("sagemaker") == s.endpoint_url("sagemaker-runtime") == s.endpoint_url("sns") == "http://all:1"


def test_production_with_demo_sign_in_is_refused(no_secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_ENV", "production")
    with pytest.raises(SettingsError, match="PULSE_AUTH_MODE='demo' is refused"):
        load_settings(no_secrets)
    monkeypatch.setenv("PULSE_AUTH_MODE", "password")
    assert load_settings(no_secrets).auth_mode == "password"


def test_several_bad_settings_are_all_named(no_secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_BACKEND", "gcs")
    monkeypatch.setenv("PULSE_MAX_UPLOAD_MB", "0")
    with pytest.raises(SettingsError) as err:
        load_settings(no_secrets)
    assert "PULSE_BACKEND" in str(err.value)
    assert "PULSE_MAX_UPLOAD_MB" in str(err.value)


def test_the_pulse_table_of_secrets_toml_is_read(tmp_path: Path) -> None:
    path = secrets_file(
        tmp_path,
        '[pulse]\nreview_threshold = 0.7\nauth_mode = "password"\nenv = "production"\n\n[other]\nbucket = "nope"\n',
    )
    s = load_settings(path)
    assert s.review_threshold == 0.7
    assert (s.env, s.auth_mode) == ("production", "password")
    assert s.bucket == ""  # only the [pulse] table counts


def test_environment_wins_over_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = secrets_file(tmp_path, '[pulse]\nreview_threshold = 0.7\nbackend = "nonsense"\nmax_text_chars = 300\n')
    monkeypatch.setenv("PULSE_REVIEW_THRESHOLD", "0.8")
    monkeypatch.setenv("PULSE_BACKEND", "local")  # an invalid secret overridden by the environment is no error
    s = load_settings(path)
    assert s.review_threshold == 0.8
    assert s.backend == "local"
    assert s.max_text_chars == 300


def test_explicit_overrides_win_over_environment_and_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = secrets_file(tmp_path, '[pulse]\nworkspace = "from-secrets"\n')
    monkeypatch.setenv("PULSE_WORKSPACE", "from-env")
    assert load_settings(path, workspace=Path("from-flag")).workspace == Path("from-flag")


def test_a_bad_value_in_secrets_is_named(tmp_path: Path) -> None:
    path = secrets_file(tmp_path, "[pulse]\nreview_threshold = 2.0\n")
    with pytest.raises(SettingsError, match="PULSE_REVIEW_THRESHOLD"):
        load_settings(path)


@pytest.mark.parametrize("body", ["[pulse\nreview_threshold = 0.7\n", "[pulse]\nreview_threshold = \n", "a = = b"])
def test_invalid_toml_is_a_settings_error(tmp_path: Path, body: str) -> None:
    path = secrets_file(tmp_path, body)
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(path)


def test_a_pulse_key_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"\[pulse\] must be a table"):
        load_settings(secrets_file(tmp_path, "pulse = 3\n"))


# --- users -----------------------------------------------------------------------------------------


def users_file(store: LocalStore) -> dict[str, dict[str, object]]:
    return json.loads(store.get(USERS_KEY))


def test_add_user_stores_a_bcrypt_hash_never_the_password(store: LocalStore) -> None:
    user = add_user(store, "alice", PASSWORD, "manager", ["team-a", "team-b"])
    assert user == User("alice", "manager", ("team-a", "team-b"))
    raw = store.get(USERS_KEY)
    assert PASSWORD.encode() not in raw
    entry = users_file(store)["alice"]
    assert set(entry) == {"password_hash", "role", "groups"}
    hashed = str(entry["password_hash"])
    assert hashed.startswith("$2")
    assert bcrypt.checkpw(PASSWORD.encode(), hashed.encode())
    assert (entry["role"], entry["groups"]) == ("manager", ["team-a", "team-b"])


@pytest.mark.parametrize(
    "password", ["short", "elevenchars", "aaaaaaaaaaaaaaaa", "abababababababab", "passwordpassword"]
)
def test_weak_passwords_are_refused(store: LocalStore, password: str) -> None:
    with pytest.raises(AuthError, match="password"):
        add_user(store, "alice", password, "admin", [])
    assert not store.exists(USERS_KEY)


def test_an_unknown_role_is_refused(store: LocalStore) -> None:
    with pytest.raises(AuthError, match="unknown role 'superuser'"):
        add_user(store, "alice", PASSWORD, "superuser", [])
    assert not store.exists(USERS_KEY)


@pytest.mark.parametrize("name", ["", "a b", "../etc", "-lead", ".hidden", "x" * 65, "al/ice", "é", "bob\nroot"])
def test_bad_user_names_are_refused(store: LocalStore, name: str) -> None:
    with pytest.raises(AuthError, match="user names"):
        add_user(store, name, PASSWORD, "annotator", [])
    assert not store.exists(USERS_KEY)


def test_a_user_name_with_a_trailing_newline_is_refused(store: LocalStore) -> None:
    with pytest.raises(AuthError, match="user names"):
        add_user(store, "bob\n", PASSWORD, "annotator", [])
    assert not store.exists(USERS_KEY)


def test_verify(store: LocalStore) -> None:
    add_user(store, "alice@example.org", PASSWORD, "annotator", [])
    add_user(store, "bob", "another-good-password", "manager", ["team-a"])
    assert verify(store, "alice@example.org", PASSWORD) == User("alice@example.org", "annotator", ())
    assert verify(store, "bob", "another-good-password") == User("bob", "manager", ("team-a",))
    assert verify(store, "alice@example.org", PASSWORD + "x") is None
    assert verify(store, "alice@example.org", "another-good-password") is None  # bob's password
    assert verify(store, "carol", PASSWORD) is None


def test_verify_with_no_users_file(store: LocalStore) -> None:
    assert verify(store, "alice", PASSWORD) is None


@pytest.mark.parametrize(
    "entry",
    [
        {"password": PASSWORD, "role": "admin"},
        {"password_hash": PASSWORD, "role": "admin"},
        {"password_hash": "$2b$12$tooshort", "role": "admin"},
    ],
)
def test_a_users_file_with_a_plain_text_password_is_refused(store: LocalStore, entry: dict[str, str]) -> None:
    store.put(USERS_KEY, json.dumps({"root": entry}).encode())
    with pytest.raises(AuthError, match="plain-text password is refused"):
        verify(store, "root", PASSWORD)
    with pytest.raises(AuthError):
        add_user(store, "alice", PASSWORD, "admin", [])


def test_a_users_file_entry_without_a_valid_role_is_refused(store: LocalStore) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    store.put(USERS_KEY, json.dumps({"root": {"password_hash": hashed, "role": "god"}}).encode())
    with pytest.raises(AuthError, match="needs a role"):
        verify(store, "root", PASSWORD)


def test_a_users_file_that_is_not_json_is_refused(store: LocalStore) -> None:
    store.put(USERS_KEY, b"alice: hunter2")
    with pytest.raises(AuthError, match="not valid JSON"):
        verify(store, "alice", PASSWORD)
