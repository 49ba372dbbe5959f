"""The app image (`Dockerfile`) and `compose.yaml`, checked without a Docker daemon: what the image
copies exists and holds no secret, it runs as a user of its own, its command and its health check work
when run as the image runs them, and every command and setting of the compose file is one Pulse has."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli import parser
from services.config import Settings, load_settings
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every `name` instruction (continuation lines joined)."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.split(None, 1)[:1] == [name]]


def exec_form(text: str) -> list[str]:
    return list(json.loads(text[text.index("[") :]))


def test_the_image_copies_what_exists_and_no_secret() -> None:
    copies = [c.split() for c in instructions("COPY")]
    assert copies, "the image copies nothing"
    for *sources, _target in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert "secrets.toml" not in source and not source.startswith((".env", "workspace"))
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".streamlit/secrets.toml" in ignored and ".git" in ignored and "workspace" in ignored
    assert not re.search(r"(?i)(password|secret|aws_access_key|token)\s*=", DOCKERFILE)


def test_the_image_runs_as_a_user_of_its_own() -> None:
    (user,) = instructions("USER")
    assert user.strip() not in ("root", "0")
    assert "useradd" in DOCKERFILE and user.strip() in DOCKERFILE.split("useradd", 1)[1].split("\n", 1)[0]


def test_the_images_command_serves_the_app_and_its_health_check_passes(tmp_path: Path) -> None:
    """`CMD` and `HEALTHCHECK` run as the image runs them (the port made free, the workspace a folder)."""
    command = exec_form(instructions("CMD")[0])
    assert command[:3] == ["streamlit", "run", "app.py"] and "--server.address=0.0.0.0" in command
    (check,) = instructions("HEALTHCHECK")
    probe = exec_form(check)
    assert "/_stcore/health" in probe[-1]
    port = free_port()
    served = [sys.executable, "-m", *[a.replace("8501", str(port)) for a in command]]
    env = {**os.environ, "PULSE_WORKSPACE": str(tmp_path / "workspace")}
    with (tmp_path / "app.log").open("wb") as log:
        app = subprocess.Popen(served, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        health = [
            sys.executable if probe[0] == "python" else probe[0],
            *[a.replace("8501", str(port)) for a in probe[1:]],
        ]
        deadline = time.monotonic() + 60
        while subprocess.run(health, capture_output=True, check=False).returncode != 0:
            assert app.poll() is None and time.monotonic() < deadline, (tmp_path / "app.log").read_text()[-2000:]
            time.sleep(0.5)
    finally:
        app.terminate()
        app.wait(timeout=10)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def test_every_compose_command_is_a_pulse_command(compose: dict[str, Any]) -> None:
    assert {"app", "intake"} <= set(compose["services"])
    for name, service in compose["services"].items():
        command = service.get("command")
        if command is None:
            continue  # the image's CMD: the app
        words = command if isinstance(command, list) else shlex.split(command)
        assert words[:3] == ["python", "-m", "services.cli"], name
        parser().parse_args(words[3:])  # exits (fails the test) on an unknown command or flag


def test_every_compose_setting_is_a_pulse_setting_and_they_load(compose: dict[str, Any], tmp_path: Path) -> None:
    env = compose["x-pulse"]["environment"]
    fields = set(Settings.model_fields)
    unknown = [k for k in env if k.startswith("PULSE_") and k.removeprefix("PULSE_").lower() not in fields]
    assert not unknown, unknown
    values = {k.removeprefix("PULSE_").lower(): v for k, v in env.items() if "${" not in str(v)}
    settings = load_settings(tmp_path / "no-secrets.toml", **values, pseudonym_key="k" * 32)
    assert settings.env == "production" and settings.auth_mode == "password"
    assert "${PULSE_PSEUDONYM_KEY:?" in env["PULSE_PSEUDONYM_KEY"]  # required from the server, never written here
