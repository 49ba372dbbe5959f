"""`deploy/cloudformation.yaml`: cfn-lint passes; its policies are docs/iam/'s; the bucket is versioned,
encrypted, private, with uploads expiring; and its S3 / IAM / SNS part deploys to moto's CloudFormation,
whose outputs, taken as the Pulse settings they name, open a workspace and publish an alert."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from services.config import load_settings
from services.workspace import open_workspace

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "cloudformation.yaml"
IAM = ROOT / "docs" / "iam"


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (`!Sub x` is `{"Fn::Sub": x}`, `!Ref x` is `{"Ref": x}`)."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {"Ref": value} if suffix == "Ref" else {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _tag)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=_Loader)  # noqa: S506 (SafeLoader + tags)
    return data


def test_cfn_lint_passes() -> None:
    lint = Path(sys.executable).with_name("cfn-lint")  # installed beside the interpreter (requirements-dev)
    done = subprocess.run([str(lint), str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# What the template's !Sub variables stand for in docs/iam/'s placeholders.
_AS_DOCS = {
    "${AWS::AccountId}": "ACCOUNT",
    "${AWS::Region}": "REGION",
    "${Bucket}": "BUCKET",
    "${Prefix}-inbox": "INBOXPREFIX",
    "${Prefix}": "PREFIX",
    "${NamePrefix}": "NAMEPREFIX",
    "${EndpointName}": "ENDPOINTNAME",
    "${SageMakerExecutionRole}": "EXECUTIONROLE",
    "${AlertsTopic.TopicName}": "TOPIC",
}


def _as_docs(value: Any) -> Any:
    """A template policy with its !Sub strings written as docs/iam/ writes them."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        text = value["Fn::Sub"]
        for variable, placeholder in _AS_DOCS.items():
            text = text.replace(variable, placeholder)
        return text
    if isinstance(value, dict):
        return {k: _as_docs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_docs(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("resource", "document"),
    [("AppRole", "pulse-app-policy.json"), ("SageMakerExecutionRole", "sagemaker-execution-role-policy.json")],
)
def test_the_roles_hold_the_policies_of_docs_iam(template: dict[str, Any], resource: str, document: str) -> None:
    docs = json.loads((IAM / document).read_text().replace("INBOXBUCKET", "BUCKET"))["Statement"]
    (policy,) = template["Resources"][resource]["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in _as_docs(policy["PolicyDocument"]["Statement"])}
    for statement in docs:
        assert statements.get(statement["Sid"]) == statement, statement["Sid"]
    extra = set(statements) - {s["Sid"] for s in docs}
    assert extra <= {"ReadThePseudonymKey"}, extra  # App Runner reads the secret with the app's role


def test_the_bucket_is_versioned_encrypted_private_and_uploads_expire(template: dict[str, Any]) -> None:
    bucket = template["Resources"]["Bucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    (uploads,) = [r for r in props["LifecycleConfiguration"]["Rules"] if r["Id"] == "uploads"]
    assert uploads["Prefix"] == {"Fn::Sub": "${Prefix}/ingest/uploads/"}


def test_every_setting_the_app_gets_is_an_output(template: dict[str, Any]) -> None:
    given = template["Resources"]["App"]["Properties"]["SourceConfiguration"]["ImageRepository"]
    names = {v["Name"] for v in given["ImageConfiguration"]["RuntimeEnvironmentVariables"]}
    outputs = {
        o["Description"] for o in template["Outputs"].values() if re.fullmatch(r"PULSE_[A-Z_]+", o["Description"])
    }
    assert names - {"PULSE_ENV", "PULSE_AUTH_MODE"} <= outputs


# moto's CloudFormation has no bucket policies nor secrets: it skips them, saying so.
@pytest.mark.filterwarnings("ignore:Tried to parse AWS::")
def test_the_s3_iam_sns_part_deploys_to_moto_and_pulse_opens_on_it(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def client(service: str) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=moto_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    cf = client("cloudformation")
    parameters = [{"ParameterKey": "CreateUserPool", "ParameterValue": "false"}]  # no AppImage: no service
    cf.create_stack(
        StackName="pulse-test",
        TemplateBody=TEMPLATE.read_text(),
        Parameters=parameters,
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    stack = cf.describe_stacks(StackName="pulse-test")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    settings = {
        o["Description"].removeprefix("PULSE_").lower(): o["OutputValue"]
        for o in stack["Outputs"]
        if o["Description"].startswith("PULSE_")
    }
    assert {"backend", "bucket", "prefix", "sagemaker_role_arn", "sns_topic_arn"} <= set(settings)
    s3 = client("s3")
    assert s3.get_bucket_encryption(Bucket=settings["bucket"])["ServerSideEncryptionConfiguration"]["Rules"]
    role = settings["sagemaker_role_arn"].rsplit("/", 1)[1]
    assert client("iam").list_role_policies(RoleName=role)["PolicyNames"] == ["pulse-sagemaker-execution"]

    ws = open_workspace(load_settings(tmp_path / "no-secrets.toml", **settings, aws_endpoint_url=moto_endpoint))
    ws.store.put("settings/hello.json", b"{}")  # the probe passed; the prefix is the stack's
    assert s3.get_object(Bucket=settings["bucket"], Key=f"{settings['prefix']}/settings/hello.json")["Body"].read()
    assert ws.notifier is not None
    topics = client("sns").list_topics()["Topics"]
    assert {"TopicArn": settings["sns_topic_arn"]} in topics
