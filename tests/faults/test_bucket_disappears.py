"""The workspace bucket is deleted (every object, then the bucket) in the middle of an ingest or of
labeling. The user gets a domain error that names the bucket and says what to check (the pages show
it with st.error; the CLI prints it and exits non-zero), never a traceback nor a message's text, and
nothing reports success: no ingest summary, no submitted label, no "queue is empty"."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services import cli
from services.aws import clients as storage
from services.aws.s3 import S3Store
from services.checkins.ingest import ingest
from services.errors import PulseError, StoreUnavailable
from services.lifecycle.endpoint import LocalEndpoint
from services.review.labeling import LabelingService
from services.store.local import LocalStore
from tests.conftest import moto_s3_client
from tests.faults.conftest import StandIn
from tests.faults.injection import Vanish, delete_bucket, injected
from tests.faults.test_ingest_faults import seeded, upload
from tests.unit.review.test_labeling import make_item, queue

GONE = "the bucket is deleted"


@pytest.fixture
def admin(moto_endpoint: str) -> Any:
    """Someone else's client on the same S3 (the one that deletes the bucket)."""
    return moto_s3_client(moto_endpoint)


def texts_of_upload() -> list[str]:
    return pd.read_csv(io.BytesIO(upload()))["text"].tolist()


def assert_names_the_bucket(exc: BaseException, bucket: str, texts: list[str]) -> None:
    assert isinstance(exc, StoreUnavailable) and isinstance(exc, PulseError)
    message = str(exc)
    assert f"bucket {bucket!r} does not exist" in message and "PULSE_BUCKET" in message
    assert not any(text in message for text in texts)


@pytest.mark.fault(
    operation="ingest (S3)",
    fault=GONE,
    when="at PutObject #12 (review items being queued)",
    expected="stopped: StoreUnavailable naming the bucket, no message text; no report",
)
def test_ingest_stops_with_the_bucket_named(
    s3_client: Any, bucket: str, admin: Any, bootstrap_store: LocalStore, tmp_path: Path
) -> None:
    store = seeded(s3_client, bucket, "pulse", bootstrap_store)
    vanish = Vanish(admin, bucket, at=12)
    with injected(s3_client, "PutObject", vanish), pytest.raises(StoreUnavailable) as info:
        ingest(store, LocalEndpoint(store, tmp_path / "cache"), upload(), "x.csv", threshold=0.9)
    assert vanish.vanished
    assert_names_the_bucket(info.value, bucket, texts_of_upload())


@pytest.mark.fault(
    operation="ingest, CLI (aws backend)",
    fault=GONE,
    when="at PutObject #3",
    expected='exit code 2 and "error: bucket … does not exist (check PULSE_BUCKET …)"; no traceback, no summary',
)
def test_the_cli_says_which_bucket_is_gone(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bucket = "pulse-vanishing"
    standin.seed(bucket)
    for name, value in standin.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PULSE_BUCKET", bucket)
    made = storage.s3_client

    def client_that_loses_its_bucket(settings: Any) -> Any:
        client = made(settings)
        client.meta.events.register("before-send.s3.PutObject", Vanish(standin.client(), bucket, at=3))
        return client

    monkeypatch.setattr(storage, "s3_client", client_that_loses_its_bucket)
    path = tmp_path / "checkins.csv"
    path.write_bytes(upload())
    code = cli.main(["ingest", str(path), "--quiet"])  # an exception other than a domain error would escape
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""  # no "accepted / rejected / sent to review" summary
    assert err.startswith(f"error: bucket {bucket!r} does not exist (check PULSE_BUCKET")
    assert "Traceback" not in err
    assert not any(text in err for text in texts_of_upload())


@pytest.fixture
def labeling(s3_client: Any, bucket: str) -> tuple[S3Store, LabelingService, list[str]]:
    store = S3Store(s3_client, bucket, "pulse")
    ids = queue(store, [make_item(i) for i in range(6)])
    return store, LabelingService(store, double_share=0.0, refresh_seconds=0), ids


ITEM_TEXTS = [make_item(i)["text"] for i in range(6)]


@pytest.mark.fault(
    operation="labeling (S3)",
    fault=GONE,
    when="between claim and submit",
    expected="submit, the next claim, the progress figures, a new replica: StoreUnavailable naming the bucket",
)
def test_labeling_after_the_bucket_is_gone_names_it(
    labeling: tuple[S3Store, LabelingService, list[str]], admin: Any, bucket: str
) -> None:
    store, svc, _ = labeling
    item = svc.claim_next("ann")
    assert item is not None
    delete_bucket(admin, bucket)
    attempts = {
        "submit": lambda: svc.submit(item.id, "positive", "ann"),
        "claim": lambda: svc.claim_next("ann"),  # never None: that would read as "nothing left to label"
        "stats": lambda: svc.stats("ann"),
        "new replica": lambda: LabelingService(store),
    }
    for name, attempt in attempts.items():
        with pytest.raises(StoreUnavailable, match="does not exist") as info:
            attempt()
        assert_names_the_bucket(info.value, bucket, ITEM_TEXTS)
        assert name


@pytest.mark.fault(
    operation="labeling (S3)",
    fault=GONE,
    when="during the label write",
    expected="submit fails with StoreUnavailable naming the bucket; no label returned",
)
def test_a_submit_whose_bucket_disappears_fails_and_names_it(
    labeling: tuple[S3Store, LabelingService, list[str]], s3_client: Any, admin: Any, bucket: str
) -> None:
    _, svc, _ = labeling
    item = svc.claim_next("ann")
    assert item is not None
    vanish = Vanish(admin, bucket, where="review/labels/")
    with injected(s3_client, "PutObject", vanish), pytest.raises(StoreUnavailable) as info:
        svc.submit(item.id, "positive", "ann")
    assert vanish.vanished
    assert_names_the_bucket(info.value, bucket, ITEM_TEXTS)
    with pytest.raises(StoreUnavailable):
        svc.claim_next("ann")
