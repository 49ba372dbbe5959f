"""One validated `Settings` object, read from `PULSE_*` environment variables and
the `[pulse]` table of `.streamlit/secrets.toml` (environment wins)."""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from services.errors import SettingsError

SECRETS_FILE = Path(".streamlit/secrets.toml")
_SECRETS: ContextVar[Path] = ContextVar("pulse_secrets_file", default=SECRETS_FILE)  # the file load_settings reads
Role = Literal["manager", "annotator", "admin"]
DEFAULT_OIDC_ROLES: dict[str, Role] = {
    "pulse-admin": "admin",
    "pulse-annotator": "annotator",
    "pulse-manager": "manager",
}


class Settings(BaseSettings):
    """Everything Pulse can be configured with. Invalid values stop the app at start."""

    model_config = SettingsConfigDict(env_prefix="PULSE_", extra="ignore", frozen=True)

    env: Literal["development", "production"] = "development"
    # Where the workspace lives and where models train and serve, chosen together (`backend`:
    # "local" is a folder and in-process models, "aws" is S3 and SageMaker) or each on its own
    # (`store`, `models`), e.g. an S3 bucket shared by several app replicas with in-process scoring.
    backend: Literal["local", "aws"] = "local"
    store: Literal["", "local", "s3"] = ""
    models: Literal["", "local", "sagemaker"] = ""
    workspace: Path = Path("workspace")
    bucket: str = ""
    prefix: str = ""
    aws_region: str = "us-east-1"
    aws_endpoint_url: str = ""  # every AWS service's, unless the one below is set
    s3_endpoint_url: str = ""  # an S3-compatible store (MinIO, Ceph RGW) apart from SageMaker's
    sagemaker_endpoint_url: str = ""
    auth_mode: Literal["demo", "password", "oidc"] = "demo"
    # Single sign-on (auth_mode "oidc", Streamlit's st.login): the ID-token claim that carries the
    # user's roles (a list or a comma-separated string), how its values map to Pulse roles, the
    # claim that lists a manager's groups, and the [auth.<provider>] section to use ("" = [auth]).
    oidc_role_claim: str = Field(default="cognito:groups", min_length=1, max_length=100)
    oidc_roles: dict[str, Role] = Field(default_factory=lambda: dict(DEFAULT_OIDC_ROLES))
    oidc_group_claim: str = Field(default="custom:pulse_groups", min_length=1, max_length=100)
    oidc_provider: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,40}$")
    # Privacy: may managers' CSV exports include message text? (Default no: ids, times, scores.)
    export_text: bool = False
    review_show_guess: bool = True  # the review card shows the model's label and confidence
    review_threshold: float = Field(default=0.6, gt=0.0, lt=1.0)
    max_text_chars: int = Field(default=2000, ge=100, le=100_000)
    max_upload_mb: int = Field(default=50, ge=1, le=2000)
    # Password sign-in: after each failure the next attempt waits longer (this many seconds, doubled
    # each time); this many failures within the lockout window lock the name (or a client address,
    # with its own, higher limit) for the window. An admin lifts a lockout with `services.cli unlock`.
    signin_delay_seconds: float = Field(default=1.0, ge=0.0, le=60.0)
    signin_max_failures: int = Field(default=5, ge=1, le=100)
    signin_client_max_failures: int = Field(default=20, ge=1, le=1000)
    signin_lockout_minutes: float = Field(default=15.0, gt=0.0, le=24 * 60.0)
    # Demo and password sign-in: how long a browser stays signed in across reloads and links (hours).
    session_hours: float = Field(default=12.0, gt=0.0, le=24 * 30.0)
    # Model lifecycle
    gate_margin: float = Field(default=0.01, ge=0.0, le=1.0)  # largest macro-F1 drop a promotion may cause
    # SageMaker (backend "aws")
    sagemaker_role_arn: str = ""  # execution role passed to training jobs and models
    sagemaker_name_prefix: str = Field(default="pulse", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,19}$")
    sagemaker_training_instance: str = "ml.c5.xlarge"
    sagemaker_training_max_seconds: int = Field(default=3600, ge=60, le=432_000)
    sagemaker_endpoint_name: str = "pulse-sentiment"
    sagemaker_endpoint_instance: str = "ml.t2.medium"
    # A serverless endpoint instead of a real-time one: its memory in MB (1024 to 6144, in steps of
    # 1024) and how many requests it serves at once. 0: real-time, on sagemaker_endpoint_instance.
    sagemaker_serverless_memory_mb: int = Field(default=0, ge=0, le=6144, multiple_of=1024)
    sagemaker_serverless_max_concurrency: int = Field(default=5, ge=1, le=200)
    # An upload of at least this many check-ins is scored by one Batch Transform job of the live
    # model instead of endpoint calls (0: never), on instances of this type.
    sagemaker_batch_transform_rows: int = Field(default=0, ge=0)
    sagemaker_transform_instance: str = "ml.m5.large"
    # The Pulse model image in ECR (`Dockerfile.model`, docs/aws.md). Set: SageMaker trains and
    # serves Pulse's own pipeline, both families, as locally. Empty: BlazingText (fastText only).
    sagemaker_model_image: str = Field(
        default="",
        pattern=r"^(\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[a-z0-9._/-]+(:[\w.-]{1,128}|@sha256:[0-9a-f]{64})?)?$",
    )
    # Key of the participant pseudonyms annotators see (HMAC). Unset: a random key kept in the
    # workspace (settings/pseudonym.key), readable only by whoever can read the store itself.
    pseudonym_key: SecretStr | None = None
    # Open an S3 workspace even on a store that ignores conditional writes (services/aws/probe.py):
    # one annotator, one upload and one admin at a time, said on the home page.
    store_single_writer: bool = False
    # Alerts: also publish each new alert to this SNS topic (empty: alerts stay in the app's inbox only)
    sns_topic_arn: str = Field(
        default="", pattern=r"^(arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?)?$"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values (CLI flags, tests) win over PULSE_* variables, which win over the `[pulse]`
        table of the secrets file."""
        return init_settings, env_settings, InitSettingsSource(settings_cls, _secrets_table(_SECRETS.get()))

    @property
    def store_kind(self) -> Literal["local", "s3"]:
        """Where the workspace lives: PULSE_STORE, else what PULSE_BACKEND implies."""
        return self.store or ("s3" if self.backend == "aws" else "local")

    @property
    def models_kind(self) -> Literal["local", "sagemaker"]:
        """Where models train and serve: PULSE_MODELS, else what PULSE_BACKEND implies."""
        return self.models or ("sagemaker" if self.backend == "aws" else "local")

    def endpoint_url(self, service: str) -> str:
        """The endpoint URL of an AWS service: its own setting, else PULSE_AWS_ENDPOINT_URL."""
        own = {"s3": self.s3_endpoint_url, "sagemaker": self.sagemaker_endpoint_url}
        return own.get(service.removesuffix("-runtime"), "") or self.aws_endpoint_url

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.store_kind == "s3" and not self.bucket:
            raise ValueError(
                "PULSE_BUCKET is required when PULSE_BACKEND is 'aws' or PULSE_STORE is 's3' (the workspace in S3)"
            )
        if self.models_kind == "sagemaker" and self.store_kind != "s3":
            raise ValueError(
                "PULSE_MODELS=sagemaker needs the workspace in S3 (PULSE_STORE=s3): SageMaker reads its training "
                "data and model artifacts from there"
            )
        if self.env == "production" and self.auth_mode == "demo":
            raise ValueError(
                "PULSE_AUTH_MODE='demo' is refused when PULSE_ENV is 'production': use 'password' (or single sign-on)"
            )
        return self


def _secrets_table(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path} is not valid TOML: {exc}") from exc
    table = data.get("pulse", {})
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: [pulse] must be a table of settings")
    return table


def _describe(error: Any) -> str:
    loc = error["loc"]
    if not loc:  # a cross-field rule: its message already names the settings
        return str(error["msg"]).removeprefix("Value error, ")
    name = f"PULSE_{str(loc[0]).upper()}"
    given = error.get("input")
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        return f"{name}={given!r} is not valid: accepted values are {ctx['expected']}"
    return f"{name}={given!r} is not valid: {error['msg']}"


def load_settings(secrets_file: Path = SECRETS_FILE, **overrides: Any) -> Settings:
    """Read and validate the settings; raise `SettingsError` naming each bad setting."""
    token = _SECRETS.set(secrets_file)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError("; ".join(_describe(e) for e in exc.errors())) from None
    finally:
        _SECRETS.reset(token)
