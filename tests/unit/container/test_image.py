"""The Pulse model image's entry points against SageMaker's container contract, run as the image runs
them (`python -m services.container train|serve` on an /opt/ml layout) with nothing importable beyond
requirements-model.txt: hyperparameters and channels in, the model folder and the failure file out;
`/ping` and `/invocations` in JSON and jsonlines, `Accept`, payload limits, the port SageMaker names."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.container.layout import FACTS_FILE, Layout
from services.container.train import train
from services.errors import TrainingJobFailed
from services.model.corpus import split_corpus
from services.model.fasttext import fasttext_line
from services.model.prediction import LABELS, PREFIX
from tests.conftest import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
RUNNER = HERE / "model_side_only.py"
SECRET = "zebracakes"  # a word of the data that must never reach a failure reason or the log


@pytest.fixture(scope="module")
def corpus_lines() -> list[str]:
    """fastText lines of the shipped check-in corpus (its train part): real data, a few seconds to train."""
    return [fasttext_line(r.label, r.text) for r in split_corpus().train]


def job(root: Path, lines: list[str], hyperparameters: dict[str, str] | None = None, **channels: list[str]) -> Layout:
    """An /opt/ml layout as SageMaker writes it for a training job."""
    layout = Layout(root)
    layout.hyperparameters.parent.mkdir(parents=True, exist_ok=True)
    layout.hyperparameters.write_text(json.dumps(hyperparameters or {}))
    for name, data in {"train": lines, **channels}.items():
        layout.channel(name).mkdir(parents=True, exist_ok=True)
        (layout.channel(name) / f"{name}.txt").write_text("\n".join(data) + "\n")
    return layout


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUNNER), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


# --- train ------------------------------------------------------------------------------------


def test_train_writes_the_model_and_its_facts_with_the_family_picked_on_validation(
    tmp_path: Path, corpus_lines: list[str]
) -> None:
    layout = job(tmp_path, corpus_lines, {"family": "auto"})
    done = run("train", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    facts = json.loads((layout.model_dir / FACTS_FILE).read_text())
    model_files = {p.name for p in layout.model_dir.iterdir()} - {FACTS_FILE}
    assert model_files == {"model.bin" if facts["family"] == "fasttext" else "linear.npz"}
    assert facts["labels"] == list(LABELS) and facts["preprocessing"] == "pulse-v2"
    assert 0 < facts["temperature"] < 100
    assert "candidate 1/2" in done.stdout and "candidate 2/2" in done.stdout  # both families tried
    assert not layout.failure.exists()


@pytest.mark.parametrize(("family", "file"), [("fasttext", "model.bin"), ("linear", "linear.npz")])
def test_train_trains_the_family_asked_for(tmp_path: Path, corpus_lines: list[str], family: str, file: str) -> None:
    layout = job(tmp_path, corpus_lines[:1500], {"family": family, "epoch": "5"})
    done = run("train", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (layout.model_dir / file).is_file()
    assert json.loads((layout.model_dir / FACTS_FILE).read_text())["family"] == family


def test_train_validates_on_the_validation_channel_when_there_is_one(tmp_path: Path, corpus_lines: list[str]) -> None:
    job(tmp_path, corpus_lines[:1200], {"family": "linear"}, validation=corpus_lines[1200:1500])
    done = run("train", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "training on 1,200 lines, validating on 300" in done.stdout


def test_train_reads_every_file_of_a_channel_and_ignores_what_sagemaker_adds(
    tmp_path: Path, corpus_lines: list[str]
) -> None:
    hyper = {"family": "linear", "sagemaker_program": "x.py", "_tuning_objective_metric": "f1"}
    layout = job(tmp_path, corpus_lines[:600], hyper)
    (layout.channel("train") / "more.txt").write_text("\n".join(corpus_lines[600:1000]) + "\n")
    done = run("train", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "training on 800 lines, validating on 200" in done.stdout  # 1,000 lines, a fifth held out


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unknown hyperparameter", "unknown hyperparameter 'epochs'"),
        ("not a number", "hyperparameter epoch='many' is not a valid int"),
        ("out of range", "epoch=0 is outside 1..100"),
        ("unknown family", "family='bert' is not one of auto, fasttext, linear"),
        ("no train channel", "no train channel"),
        ("empty channel", "the train channel holds no line"),
        ("not utf-8", "is not UTF-8 text"),
        ("hyperparameters not json", "is not valid JSON"),
    ],
)
def test_a_job_that_cannot_train_says_why_in_output_failure(
    tmp_path: Path, corpus_lines: list[str], case: str, reason: str
) -> None:
    lines = [*corpus_lines[:300], f"__label__negative {SECRET} day"]
    hyper = {
        "unknown hyperparameter": {"epochs": "5"},
        "not a number": {"epoch": "many"},
        "out of range": {"epoch": "0"},
        "unknown family": {"family": "bert"},
    }.get(case, {})
    layout = job(tmp_path, lines, hyper)
    if case == "no train channel":
        (layout.channel("train") / "train.txt").unlink()
        layout.channel("train").rmdir()
    if case == "empty channel":
        (layout.channel("train") / "train.txt").write_text("\n\n")
    if case == "not utf-8":
        (layout.channel("train") / "train.txt").write_bytes(f"__label__negative {SECRET} caf\xe9\n".encode("latin-1"))
    if case == "hyperparameters not json":
        layout.hyperparameters.write_text("{epoch: 5")
    done = run("train", "--root", str(tmp_path))
    assert done.returncode == 1
    failure = layout.failure.read_text()
    assert reason in failure
    assert SECRET not in failure + done.stdout + done.stderr
    assert not layout.model_dir.exists() or not any(layout.model_dir.iterdir())


def test_a_stopped_job_writes_no_model(tmp_path: Path, corpus_lines: list[str]) -> None:
    """StopTrainingJob sends SIGTERM: the entry point stops between two candidates."""
    layout = job(tmp_path, corpus_lines[:600], {"family": "auto"})
    assert train(layout, say=lambda _line: None, should_stop=lambda: True) == "Stopped"
    assert not layout.model_dir.exists()
    with pytest.raises(TrainingJobFailed, match="no train channel"):
        train(Layout(tmp_path / "nothing"))


# --- serve ------------------------------------------------------------------------------------


class Serving:
    """The serve entry point in a subprocess, as SageMaker starts the image: `serve`, no other argument."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.port = int(env["SAGEMAKER_BIND_TO_PORT"])
        self.log = root / "serve.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(RUNNER), "serve", "--root", str(root)],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                self.call("GET", "/ping")
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve did not start:\n{self.log.read_text()}") from None
                time.sleep(0.1)

    def call(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, corpus_lines: list[str]) -> Path:
    """An /opt/ml whose model folder the train entry point filled (the linear family: the one
    BlazingText cannot serve)."""
    root = tmp_path_factory.mktemp("opt-ml")
    job(root, corpus_lines, {"family": "linear"})
    done = run("train", "--root", str(root))
    assert done.returncode == 0, done.stderr
    return root


@pytest.fixture
def serving(trained: Path) -> Iterator[Serving]:
    server = Serving(trained, {"SAGEMAKER_BIND_TO_PORT": str(free_port()), "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"})
    yield server
    server.stop()


def test_serve_listens_on_every_address_at_the_port_sagemaker_names(serving: Serving) -> None:
    status, headers, body = serving.call("GET", "/ping")
    assert status == 200
    assert json.loads(body)["status"] == "ok" and headers["x-pulse-model-version"].startswith("sha256-")
    assert f"serving on http://0.0.0.0:{serving.port}" in serving.log.read_text()
    assert serving.stop() == 0  # SIGTERM: a clean stop


def test_serve_answers_blazingtext_json_and_jsonlines_alike(serving: Serving) -> None:
    texts = ["great day with the team", "awful shift cried in the car", "meeting moved to monday"]
    request = json.dumps({"instances": texts, "configuration": {"k": 3}}).encode()
    status, headers, body = serving.call("POST", "/invocations", request, {"Content-Type": "application/json"})
    assert status == 200 and headers["content-type"].startswith("application/json")
    as_json = json.loads(body)
    lines = b"".join(json.dumps({"source": t, "k": 3}).encode() + b"\n" for t in texts)
    kinds = {"Content-Type": "application/jsonlines", "Accept": "application/jsonlines"}
    status, headers, body = serving.call("POST", "/invocations", lines, kinds)
    assert status == 200 and headers["content-type"].startswith("application/jsonlines")
    assert [json.loads(line) for line in body.decode().splitlines()] == as_json
    assert [row["label"][0] for row in as_json] == [PREFIX + "positive", PREFIX + "negative", PREFIX + "neutral"]
    for row in as_json:
        assert set(row["label"]) == {PREFIX + label for label in LABELS}
        assert sum(row["prob"]) == pytest.approx(1.0) and row["prob"] == sorted(row["prob"], reverse=True)


def test_serve_takes_bodies_up_to_sagemaker_max_payload(serving: Serving) -> None:
    line = json.dumps({"source": "an ordinary day at work " * 8}).encode() + b"\n"
    fits = line * ((1024 * 1024) // len(line))
    too_big = fits + line * 10
    kinds = {"Content-Type": "application/jsonlines"}
    status, _, body = serving.call("POST", "/invocations", fits, kinds)
    assert status == 200 and len(body.splitlines()) == fits.count(b"\n")  # more than JSON's 1,000 instances
    # Declared too big, it is refused from its headers (the server closes the connection without
    # reading the body, so a client still sending it would meet a broken pipe).
    conn = http.client.HTTPConnection("127.0.0.1", serving.port, timeout=30)
    try:
        conn.putrequest("POST", "/invocations")
        conn.putheader("Content-Type", "application/jsonlines")
        conn.putheader("Content-Length", str(len(too_big)))
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 413 and "1,048,576 bytes" in json.loads(answer.read())["error"]
    finally:
        conn.close()


def test_serve_without_a_model_starts_and_says_why_on_ping(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    server = Serving(tmp_path, {"SAGEMAKER_BIND_TO_PORT": str(free_port())})
    try:
        status, _, body = server.call("GET", "/ping")
        assert status == 503 and "holds no model.bin or linear.npz" in json.loads(body)["error"]
        request = json.dumps({"instances": ["hello"]}).encode()
        status, _, _ = server.call("POST", "/invocations", request, {"Content-Type": "application/json"})
        assert status == 503
    finally:
        server.stop()


def test_serve_serves_a_model_bin_of_fasttexts_own_trainer_as_blazingtext_would(
    tmp_path: Path, corpus_lines: list[str]
) -> None:
    """A BlazingText model.bin is a fastText one: the image gives fastText's own probabilities."""
    import fasttext

    data = tmp_path / "train.txt"
    data.write_text("\n".join(corpus_lines[:2000]) + "\n")
    model = fasttext.train_supervised(input=str(data), epoch=5, verbose=0, thread=10)
    (tmp_path / "model").mkdir()
    model.save_model(str(tmp_path / "model" / "model.bin"))
    texts = ["slept well and the shift went fine", "i can not do this anymore"]
    labels, probs = model.predict(texts, k=3)
    server = Serving(tmp_path, {"SAGEMAKER_BIND_TO_PORT": str(free_port())})
    try:
        request = json.dumps({"instances": texts, "configuration": {"k": 3}}).encode()
        status, _, body = server.call("POST", "/invocations", request, {"Content-Type": "application/json"})
    finally:
        server.stop()
    assert status == 200
    got = json.loads(body)
    assert [row["label"] for row in got] == [list(ls) for ls in labels]
    assert [row["prob"] for row in got] == [pytest.approx(list(ps), abs=1e-6) for ps in probs]


# --- the image --------------------------------------------------------------------------------


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9_.\[\]-]+)==(\S+)", line.strip())
        if found:
            pins[re.sub(r"\[.*\]", "", found.group(1)).lower()] = found.group(2)
    return pins


def test_the_image_pins_the_apps_versions_and_runs_the_entry_points() -> None:
    model, app = _pins(ROOT / "requirements-model.txt"), _pins(ROOT / "requirements.txt")
    assert model and all(app.get(name) == version for name, version in model.items()), (model, app)
    dockerfile = (ROOT / "Dockerfile.model").read_text()
    assert "COPY requirements-model.txt" in dockerfile and "pip install" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "services.container"]' in dockerfile
    assert not re.search(r"(?i)(secret|password|aws_access_key)", dockerfile)


def test_the_entry_points_import_nothing_outside_the_image() -> None:
    """What model_side_only.py blocks is really blocked (else the tests above prove nothing)."""
    code = (
        f"import sys; sys.argv = ['x', '--help']; sys.path.insert(0, {str(HERE)!r}); import model_side_only as m; "
        "m.sys.argv = ['x', '--help']\n"
        "try:\n    m.main()\nexcept SystemExit:\n    pass\nimport pandas"
    )
    blocked = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert blocked.returncode != 0 and "not installed in the model image" in blocked.stderr
