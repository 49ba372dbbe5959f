"""The loop, end to end, in a real browser against a real server: an admin uploads check-ins → the
manager sees them on Trends → an annotator labels unrecognized ones from the keyboard → the admin
builds a dataset, trains, passes the gate (or overrides it with a written reason) and promotes → a
new upload is scored by the new version, on the home page and in the stored rows.

It runs twice: on the local backend (a workspace folder, the local trainer and the pointer
deployer), and on the aws backend against moto's server on 127.0.0.1 — review items, labels,
datasets and the registry in an S3 bucket; training through CreateTrainingJob, deployment through
CreateModel/CreateEndpointConfig/UpdateEndpoint and scoring through InvokeEndpoint. moto does not
run the BlazingText algorithm nor host models: the SageMaker stand-in (services/aws/standin.py)
trains fastText locally on the job's S3 channel with the job's hyperparameters and puts
model.tar.gz where SageMaker would, and scores InvokeEndpoint requests with the model of the
endpoint's current config. Screenshots of every step: artifacts/e2e/loop-*.png, loop-aws-*.png."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from services.aws.errors import resource_name
from services.lifecycle.deployment import current
from services.lifecycle.registry import list_versions
from services.store.base import ObjectStore
from services.store.local import LocalStore
from tests.benchmarks.datasets import airline_rows
from tests.e2e.conftest import AwsApp, settled, shot
from tests.e2e.test_browser import _sign_in, promote_from_page

GROUP = "Support desk"  # one of the demo manager's groups


def checkins(rows: list[dict[str, str]], minutes_ago: int) -> bytes:
    now = datetime.now(UTC).replace(microsecond=0)
    frame = pd.DataFrame(
        {
            "participant": [f"loop-{r['name']}" for r in rows],
            "group": GROUP,
            "time": [(now - timedelta(minutes=minutes_ago + i)).isoformat() for i in range(len(rows))],
            "text": [r["text"] for r in rows],
        }
    )
    return frame.to_csv(index=False).encode()


def upload(page, path: Path) -> str:  # type: ignore[no-untyped-def]
    page.locator("[data-testid=stSidebar]").get_by_role("link", name="Upload check-ins").click()
    page.locator("input[type=file]").set_input_files(str(path))
    settled(page)
    page.get_by_role("button", name="Score and add to the workspace").click()
    done = page.get_by_text(" added, scored by ").first
    done.wait_for(timeout=120_000)
    return done.inner_text()


def sign_out(page) -> None:  # type: ignore[no-untyped-def]
    page.locator("[data-testid=stSidebar]").get_by_role("button", name="Sign out").click()
    page.get_by_text("Sign in as").wait_for()


def rows_of(store: ObjectStore, participants: set[str]) -> pd.DataFrame:
    frames = [
        pq.read_table(io.BytesIO(store.get(k))).to_pandas() for k in store.list("checkins/") if k.endswith(".parquet")
    ]
    frame = pd.concat(frames)
    return frame[frame["participant"].isin(participants)]


def test_the_loop_closes(page, app_url: str, workspace_copy: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    the_loop(page, app_url, LocalStore(workspace_copy), tmp_path, "loop")


def test_the_loop_closes_on_aws(page, aws_app: AwsApp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import boto3

    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=aws_app.aws_url)
    first_config = sm.describe_endpoint(EndpointName="pulse-sentiment")["EndpointConfigName"]
    new = the_loop(page, aws_app.url, aws_app.store, tmp_path, "loop-aws")
    jobs = sm.list_training_jobs()["TrainingJobSummaries"]
    assert len(jobs) == 1 and jobs[0]["TrainingJobStatus"] == "Completed"
    endpoint = sm.describe_endpoint(EndpointName="pulse-sentiment")
    assert endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] != first_config
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert config["ProductionVariants"][0]["ModelName"] == resource_name("pulse", new)
    assert current(aws_app.store).details["endpoint_config_name"] == endpoint["EndpointConfigName"]  # type: ignore[union-attr]


def test_an_admin_moves_the_live_model_to_a_serverless_endpoint_from_the_health_page(  # type: ignore[no-untyped-def]
    page, aws_app: AwsApp
) -> None:
    import boto3

    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=aws_app.aws_url)
    live = current(aws_app.store)
    assert live is not None
    _sign_in(page, aws_app.url, "Admin — data")
    page.get_by_role("link", name="Model health & costs").click()
    page.get_by_text("The live model is served by the real-time endpoint pulse-sentiment.").wait_for()
    page.get_by_role("button", name="Move the live model to a serverless endpoint of 2,048 MB").click()
    page.get_by_role("button", name="Confirm the move").click()
    page.get_by_text("is served by a serverless endpoint of 2,048 MB now").wait_for(timeout=90_000)
    settled(page)
    shot(page, "health-aws-moved-to-serverless")
    page.get_by_text("The live model is served by the serverless endpoint pulse-sentiment-serverless.").wait_for()
    moved = current(aws_app.store)
    assert moved is not None and moved.version == live.version and moved.previous == live.previous
    assert moved.details["endpoint_name"] == "pulse-sentiment-serverless"
    names = {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}
    assert names == {"pulse-sentiment-serverless"}


def test_the_loop_closes_on_an_s3_store_with_models_in_process(page, s3_app: AwsApp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import boto3

    the_loop(page, s3_app.url, s3_app.store, tmp_path, "loop-s3")
    sm = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=s3_app.aws_url)
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []  # trained in the app's process
    assert sm.list_endpoints()["Endpoints"] == []  # and scored there
    assert current(s3_app.store).details["backend"] == "local"  # type: ignore[union-attr]


def the_loop(page, app_url: str, store: ObjectStore, tmp_path: Path, name: str) -> str:  # type: ignore[no-untyped-def]
    """Walk the loop; return the version the admin trained and promoted."""
    airline = airline_rows()
    first, second = airline[:80], airline[80:120]
    (tmp_path / "first.csv").write_bytes(checkins(first, minutes_ago=200))
    (tmp_path / "second.csv").write_bytes(checkins(second, minutes_ago=60))
    live_before = current(store)
    assert live_before is not None

    # 1. An admin uploads the first batch.
    _sign_in(page, app_url, "Admin — data")
    page.get_by_text("Check-ins per day").wait_for()
    summary = upload(page, tmp_path / "first.csv")
    assert "80 check-ins added" in summary and live_before.version in summary
    shot(page, f"{name}-1-uploaded")
    sign_out(page)

    # 2. The manager sees them on Trends and reads one participant's check-ins.
    _sign_in(page, app_url, "Manager — trends")
    page.get_by_role("link", name="Trends").click()
    person = page.get_by_role("combobox", name="Read the check-ins of")
    person.wait_for()
    group_box = page.get_by_role("combobox", name="Group", exact=True)
    group_box.scroll_into_view_if_needed()
    group_box.click()
    page.get_by_role("option", name=GROUP, exact=True).click()
    page.wait_for_timeout(1000)  # the participant list follows the group
    person.scroll_into_view_if_needed()
    person.click()
    page.keyboard.type(f"loop-{first[0]['name']}")  # the list is long: filter it as a person would
    page.get_by_role("option", name=f"loop-{first[0]['name']}").first.click()
    page.get_by_text("newest first").first.wait_for()
    shot(page, f"{name}-2-manager-trends")
    sign_out(page)

    # 3. An annotator labels unrecognized messages from the keyboard (the truth of the airline set).
    truth = {r["text"]: r["airline_sentiment"] for r in airline}
    keys = {"negative": "1", "neutral": "2", "positive": "3"}
    _sign_in(page, app_url, "Annotator — label")
    page.get_by_role("link", name="Review queue").click()
    labelled = 0
    page.get_by_text("model says").wait_for()
    shot(page, f"{name}-3-review")
    for n in range(1, 13):
        page.get_by_text("model says").wait_for()
        # The whole page drawn by a finished run: no key goes to the buttons of the item before.
        settled(page)
        page.get_by_role("button", name="Flag urgent").wait_for()
        text = page.locator("[data-testid=stText]").first.inner_text()
        page.evaluate("document.activeElement && document.activeElement.blur()")  # keys go to the page
        page.keyboard.press(keys.get(truth.get(text, ""), "2"))
        page.get_by_text(f"Done today: {n} by you").wait_for()
        labelled += 1
    shot(page, f"{name}-3-annotator-labelled")
    assert sum(1 for _ in store.list("review/labels/")) >= labelled
    sign_out(page)

    # 4. The admin builds a dataset, trains, and promotes through the gate.
    before = set(list_versions(store))
    _sign_in(page, app_url, "Admin — data")
    page.get_by_role("link", name="Labels & datasets").click()
    settled(page)
    page.get_by_role("button", name="Build dataset version").click()
    page.get_by_text("Built dataset version").wait_for(timeout=60_000)
    shot(page, f"{name}-4-dataset-built")
    page.locator("[data-testid=stSidebar]").get_by_role("link", name="Training").click()
    settled(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("is registered").wait_for(timeout=240_000)
    shot(page, f"{name}-5-trained")
    (new,) = set(list_versions(store)) - before
    # a dozen labels on top of the corpus can move gold macro-F1 either way: the gate may refuse
    promote_from_page(page, new, "e2e: the loop test promotes the model trained on its labels", f"{name}-6-promoted")

    # 5. New check-ins are scored by the new version: on the home page and in the stored rows.
    summary = upload(page, tmp_path / "second.csv")
    assert "40 check-ins added" in summary and new in summary
    page.locator("[data-testid=stSidebar]").get_by_role("link", name="Home").click()
    page.get_by_text(f"{new}").first.wait_for()
    shot(page, f"{name}-7-home-new-version")
    loop_rows = rows_of(store, {f"loop-{r['name']}" for r in airline[:120]})
    scored = loop_rows[loop_rows["text"].isin({r["text"] for r in second})]
    earlier = loop_rows[loop_rows["text"].isin({r["text"] for r in first})]
    assert len(scored) == 40 and set(scored["model_version"]) == {new}
    assert len(earlier) == 80 and set(earlier["model_version"]) == {live_before.version}
    return new
