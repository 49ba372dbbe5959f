"""The documented IAM policies allow exactly what the code calls, and no secret is in the repository."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IAM = ROOT / "docs" / "iam"


def _policy(name: str) -> dict:  # type: ignore[type-arg]
    doc = json.loads((IAM / name).read_text(encoding="utf-8"))
    assert doc["Version"] == "2012-10-17"
    return doc


def _allowed(doc: dict, action: str) -> bool:  # type: ignore[type-arg]
    for statement in doc["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Effect"] == "Allow" and any(fnmatch.fnmatchcase(action, a) for a in actions):
            return True
    return False


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


S3_ACTIONS = {
    "get_object": "s3:GetObject",
    "put_object": "s3:PutObject",
    "delete_object": "s3:DeleteObject",
    "list_objects_v2": "s3:ListBucket",
}


def called_actions() -> set[str]:
    """The IAM actions behind every AWS call in services/ (found in the source, so a new call
    shows up here without anyone remembering to list it)."""
    actions: set[str] = set()
    for path in (ROOT / "services").rglob("*.py"):
        if path.name == "standin.py":  # the local stand-in for development plays AWS; it is not the app
            continue
        source = path.read_text(encoding="utf-8")
        for op in re.findall(r"\b(?:self\.)?sm\.([a-z_]+)\(", source) + re.findall(r'_call\(\s*"([a-z_]+)"', source):
            actions.add(f"sagemaker:{_camel(op)}")
        if re.search(r"\.invoke_endpoint\(", source):
            actions.add("sagemaker:InvokeEndpoint")
        if re.search(r"\bTags=", source) or '"Tags"' in source:
            actions.add("sagemaker:AddTags")
        for op in re.findall(r"\b(?:self\.client|self\.s3|s3)\.([a-z_0-9]+)\(", source):
            if op in S3_ACTIONS:
                actions.add(S3_ACTIONS[op])
        for op in re.findall(r'get_paginator\("([a-z_0-9]+)"\)', source):
            actions.add(S3_ACTIONS[op])
        if re.search(r"\.publish\(\s*TopicArn", source) or re.search(r"self\.client\.publish\(", source):
            actions.add("sns:Publish")
    return actions


def test_the_code_calls_what_the_scan_expects() -> None:
    """Guards the scan itself: if it found nothing, the next test would prove nothing."""
    found = called_actions()
    for action in (
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "sagemaker:CreateTrainingJob",
        "sagemaker:UpdateEndpoint",
        "sagemaker:InvokeEndpoint",
        "sns:Publish",
    ):
        assert action in found, action


def test_every_aws_call_of_the_app_is_allowed_by_the_app_policy() -> None:
    policy = _policy("pulse-app-policy.json")
    missing = sorted(a for a in called_actions() if not _allowed(policy, a))
    assert not missing, f"add to docs/iam/pulse-app-policy.json: {missing}"
    assert _allowed(policy, "iam:PassRole")


@pytest.mark.parametrize("name", ["pulse-app-policy.json", "sagemaker-execution-role-policy.json"])
def test_policies_grant_no_wildcard_actions_and_name_their_resources(name: str) -> None:
    for statement in _policy(name)["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(a != "*" and not a.endswith(":*") for a in actions), statement
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if resources == ["*"]:  # only actions that AWS does not scope to a resource
            assert set(actions) <= {
                "ecr:GetAuthorizationToken",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchCheckLayerAvailability",
                "cloudwatch:PutMetricData",
            }, statement


def test_pass_role_is_limited_to_the_execution_role_and_sagemaker() -> None:
    [statement] = [s for s in _policy("pulse-app-policy.json")["Statement"] if "iam:PassRole" in s["Action"]]
    assert statement["Resource"].endswith(":role/EXECUTIONROLE")
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_the_execution_role_trusts_only_sagemaker() -> None:
    [statement] = _policy("sagemaker-execution-role-trust.json")["Statement"]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}


# ------------------------------------------------------------------------- secrets

SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "AWS secret access key": re.compile(r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}"),
    "secret assignment": re.compile(
        # lower case: settings files and arguments (an upper-case name is a constant, e.g. a key path)
        r"\b(?:client_secret|cookie_secret|secret_key|api_key|password|pseudonym_key)\s*=\s*['\"][^'\"\s]{12,}['\"]"
    ),
}
# Test fixtures and examples may hold made-up values that look like secrets: only there.
ALLOWED = re.compile(r"(^tests/|\.example$|^docs/)")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line]


def test_no_credentials_in_tracked_files() -> None:
    files = tracked_files()
    assert "app.py" in files and len(files) > 50  # the scan sees the repository
    found = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        for what, pattern in SECRET_PATTERNS.items():
            if pattern.search(text) and not (what == "secret assignment" and ALLOWED.search(name)):
                found.append(f"{name}: {what}")
    assert not found, found


def test_the_scan_catches_what_it_looks_for() -> None:
    samples = {
        # built from pieces, so this file does not trip the scan of the repository itself
        "AWS access key id": "key = " + "AKIA" + "IOSFODNN7EXAMPLE",
        "private key": "-----BEGIN RSA " + "PRIVATE KEY-----",
        "AWS secret access key": "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "secret assignment": 'cookie_secret = "d41d8cd98f00b204e9800998ecf8427e"',
    }
    for what, sample in samples.items():
        assert SECRET_PATTERNS[what].search(sample), what


def test_local_secrets_and_workspaces_are_git_ignored() -> None:
    for path in (".streamlit/secrets.toml", "workspace/checkins/x.parquet"):
        check = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert check.returncode == 0, f"{path} is not git-ignored"
