"""The pages 'Training' and 'Models & deploy' (AppTest, on a private copy of the demo workspace
with a dataset version and two more registered versions)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from services.lifecycle.datasets import build_dataset
from services.lifecycle.deployment import CURRENT, current
from services.lifecycle.registry import ARTIFACT, ModelCard, fetch_model, list_versions, new_version, register
from services.lifecycle.runs import list_runs, wait_for
from services.model.corpus import split_corpus
from services.model.fasttext import fasttext_line, train
from services.model.params import TrainParams
from services.store.local import LocalStore
from tests.pages.conftest import ROOT, rendered_text, shown

TRAINING = "pages/admin_training.py"
MODELS = "pages/admin_models.py"


@dataclass(frozen=True)
class Prepared:
    root: Path
    live: str  # the demo's bootstrap model
    dataset: str
    equal: str  # the live model registered again: passes the gate
    tiny: str  # a small model: clearly worse, refused by the gate


def _card(dataset: str, temperature: float = 1.0) -> ModelCard:
    return ModelCard(new_version(), "2026-11-23T10:00:00+00:00", "tests", dataset, temperature=temperature)


@pytest.fixture(scope="module")
def prepared(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    base = tmp_path_factory.mktemp("admin-models")
    root = base / "ws"
    shutil.copytree(demo_dir, root)
    store = LocalStore(root)
    dep = current(store)
    assert dep is not None
    dataset = build_dataset(store, by="tests").version
    model = fetch_model(store, dep.version, base / "cache")
    equal = register(store, model, _card(f"copy of {dep.version}", model.temperature)).version
    lines = [fasttext_line(r.label, r.text) for r in split_corpus().train[:600]]
    tiny = register(store, train(lines, TrainParams(epoch=5, dim=10, bucket=10_000)), _card("small")).version
    return Prepared(root, dep.version, dataset, equal, tiny)


@pytest.fixture
def workspace_copy(prepared: Prepared, tmp_path: Path) -> Path:
    """Overrides the shared fixture: the prepared workspace, copied for one test."""
    target = tmp_path / "ws"
    shutil.copytree(prepared.root, target)
    return target


def live(root: Path) -> str:
    return json.loads((root / CURRENT).read_text())["version"]


def button(at: AppTest, starts_with: str):  # type: ignore[no-untyped-def]
    found = [b for b in at.button if shown(b.label).startswith(starts_with)]
    assert found, [b.label for b in at.button]
    return found[0]


def number_input(at: AppTest, starts_with: str):  # type: ignore[no-untyped-def]
    found = [n for n in at.number_input if shown(n.label).startswith(starts_with)]
    assert found, [n.label for n in at.number_input]
    return found[0]


# --- access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [TRAINING, MODELS])
def test_admin_sees_the_page(run_app, page: str, prepared: Prepared) -> None:  # type: ignore[no-untyped-def]
    at = run_app("admin", page)
    assert not at.exception and not at.error, rendered_text(at)
    text = rendered_text(at)
    if page == MODELS:
        assert prepared.live in text and prepared.tiny in text
        assert len(at.get("plotly_chart")) == 2  # both confusion matrices
    else:
        assert not button(at, "Start training").disabled


@pytest.mark.parametrize("page", [TRAINING, MODELS])
@pytest.mark.parametrize("role", ["manager", "annotator", None])
def test_other_roles_are_refused_even_by_direct_path(run_app, page: str, role: str | None, prepared: Prepared) -> None:  # type: ignore[no-untyped-def]
    at = run_app(role, file=str(ROOT / page))
    assert not at.exception
    assert at.error or at.warning
    assert not at.dataframe and not at.metric and not at.button and not at.get("plotly_chart")
    text = rendered_text(at)
    assert prepared.live not in text and prepared.dataset not in text


# --- training -------------------------------------------------------------------------------------


def test_a_run_started_from_the_page_ends_in_the_registry(run_app, app_env: Path, prepared: Prepared) -> None:  # type: ignore[no-untyped-def]
    at = run_app("admin", TRAINING)
    assert at.selectbox[0].value == prepared.dataset  # the newest (only) dataset version
    at.selectbox[1].set_value("fasttext")
    number_input(at, "Epochs").set_value(5)
    number_input(at, "Dimensions").set_value(10)
    at.run()
    button(at, "Start training").click()
    at.run()
    assert not at.exception and not at.error, rendered_text(at)
    store = LocalStore(app_env)
    [job] = list_runs(store)
    done = wait_for(store, job.job_name, timeout=60)
    assert done.status == "Completed", done.run.failure_reason
    assert done.run.model_version in list_versions(store)
    assert done.run.params["epoch"] == 5 and done.run.params["family"] == "fasttext"
    assert done.run.started_by == "demo-admin"
    assert live(app_env) == prepared.live  # training deploys nothing

    at.run()  # the page finds the run in the store (as after a browser refresh)
    assert not at.exception
    said = [shown(s.value) for s in [*at.success, *at.warning] if done.run.model_version in shown(s.value)]
    assert len(said) == 1 and "is registered" in said[0] and "nothing was deployed" in said[0].lower()
    # A run below the live model by more than the gate's margin is a warning that says so.
    warned = any(done.run.model_version in shown(w.value) for w in at.warning)
    assert ("gate would refuse it" in said[0]) == warned
    table = at.dataframe[-1].value
    assert list(table["status"]) == ["Completed"]
    assert list(table["model version"]) == [done.run.model_version]
    assert not button(at, "Start training").disabled


def test_an_out_of_range_hyperparameter_shows_the_range(run_app) -> None:  # type: ignore[no-untyped-def]
    at = run_app("admin", TRAINING)
    number_input(at, "Epochs").set_value(500)
    at.run()
    assert not at.exception
    assert any("epoch=500 is outside 1..100" in shown(e.value) for e in at.error)
    assert button(at, "Start training").disabled
    number_input(at, "Learning rate").set_value(9.0)
    at.run()
    message = " ".join(shown(e.value) for e in at.error)
    assert "epoch=500 is outside 1..100" in message and "lr=9.0 is outside 0.001..2" in message


# --- deploy ---------------------------------------------------------------------------------------


def test_promote_and_rollback_through_the_page(run_app, app_env: Path, prepared: Prepared) -> None:  # type: ignore[no-untyped-def]
    at = run_app("admin", MODELS)
    at.selectbox(key="models_version").set_value(prepared.equal)
    at.run()
    assert any("passes" in shown(s.value) for s in at.success)
    button(at, f"Promote {prepared.equal}").click()
    at.run()
    assert live(app_env) == prepared.live  # nothing happens before the confirmation
    at.button(key="confirm-promote").click()
    at.run()
    assert not at.exception
    assert live(app_env) == prepared.equal
    assert any(f"{prepared.equal} is live" in shown(s.value) for s in at.success)
    assert not [b for b in at.button if shown(b.label).startswith(f"Promote {prepared.equal}")]  # it is live now
    history = at.dataframe  # the history table names who and why
    assert any(
        "demo-admin" in df.value.to_csv() and "promoted from the Models page" in df.value.to_csv() for df in history
    )

    button(at, f"Roll back to {prepared.live}").click()
    at.run()
    assert live(app_env) == prepared.equal
    at.button(key="confirm-rollback").click()
    at.run()
    assert not at.exception
    assert live(app_env) == prepared.live
    assert any("Rolled back" in shown(s.value) for s in at.success)
    dep = current(LocalStore(app_env))
    assert dep is not None and dep.reason.startswith("rollback:") and dep.deployed_by == "demo-admin"


def test_a_refused_gate_needs_a_written_override_which_is_recorded(run_app, app_env: Path, prepared: Prepared) -> None:  # type: ignore[no-untyped-def]
    at = run_app("admin", MODELS)
    at.selectbox(key="models_version").set_value(prepared.tiny)
    at.run()
    assert any("is refused" in shown(w.value) for w in at.warning)
    assert button(at, f"Promote {prepared.tiny}").disabled  # no override reason yet
    at.text_area(key="override_reason").input("known issue, approved by the ops lead")
    at.run()
    button(at, f"Promote {prepared.tiny}").click()
    at.run()
    at.button(key="confirm-promote").click()
    at.run()
    assert not at.exception
    assert live(app_env) == prepared.tiny
    dep = current(LocalStore(app_env))
    assert dep is not None and "[gate overridden: known issue, approved by the ops lead]" in dep.reason

    # Rolled back, the refused version needs a new written reason: the old one is not reused.
    button(at, f"Roll back to {prepared.live}").click()
    at.run()
    at.button(key="confirm-rollback").click()
    at.run()
    assert live(app_env) == prepared.live
    assert at.text_area(key="override_reason").value == ""
    assert button(at, f"Promote {prepared.tiny}").disabled


def test_promoting_a_version_without_its_artifact_shows_the_error_and_switches_nothing(
    run_app, app_env: Path, prepared: Prepared
) -> None:  # type: ignore[no-untyped-def]
    (app_env / "models" / prepared.equal / ARTIFACT).unlink()
    before = (app_env / CURRENT).read_bytes()
    history = sorted((app_env / "deployments" / "history").iterdir())
    at = run_app("admin", MODELS)
    at.selectbox(key="models_version").set_value(prepared.equal)
    at.run()
    assert any("missing" in shown(e.value) for e in at.error)  # the gate cannot score it
    button(at, f"Promote {prepared.equal}").click()
    at.run()
    at.button(key="confirm-promote").click()
    at.run()
    assert not at.exception
    assert any("missing" in shown(e.value) and "Nothing was switched" in shown(e.value) for e in at.error)
    assert (app_env / CURRENT).read_bytes() == before
    assert sorted((app_env / "deployments" / "history").iterdir()) == history
    assert not (app_env / "deployments" / "lock.json").exists()


def test_promoting_twice_deploys_once(run_app, app_env: Path, prepared: Prepared) -> None:  # type: ignore[no-untyped-def]
    """Two admins (two sessions) confirm the same promotion: the second is told it is already live."""
    first = run_app("admin", MODELS)
    second = run_app("admin", MODELS)
    for at in (first, second):
        at.selectbox(key="models_version").set_value(prepared.equal)
        at.run()
        button(at, f"Promote {prepared.equal}").click()
        at.run()
    history = len(list((app_env / "deployments" / "history").iterdir()))
    first.button(key="confirm-promote").click()
    first.run()
    second.button(key="confirm-promote").click()
    second.run()
    assert not second.exception
    assert any("already live" in shown(e.value) for e in second.error), rendered_text(second)
    assert live(app_env) == prepared.equal
    assert len(list((app_env / "deployments" / "history").iterdir())) == history + 1


def test_comparison_lists_disagreements_as_plain_text(run_app, prepared: Prepared) -> None:  # type: ignore[no-untyped-def]
    at = run_app("admin", MODELS)
    at.selectbox(key="models_version").set_value(prepared.tiny)  # B follows the selected version; A is live
    at.run()
    tables = [df.value for df in at.dataframe if "message" in df.value.columns]
    assert tables, "no disagreement table"
    table = tables[0]
    assert len(table) > 0
    assert set(table["right"]) <= {"A", "B", "neither"}
    assert set(table["message"]) <= {r.text for r in split_corpus().gold}  # the demo's gold set is the corpus slice
    for el in at.markdown:  # no message is rendered as markdown
        assert not any(text in el.value for text in table["message"].head(5))
    per_class = [df.value for df in at.dataframe if "recall change" in df.value.columns]
    assert per_class and list(per_class[0]["class"]) == ["negative", "neutral", "positive"]
    assert "Not applicable" in rendered_text(at)  # the local backend has no endpoint to describe
