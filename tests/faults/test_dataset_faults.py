"""Faults in the middle of building a dataset version on S3 (moto's server, real HTTP). A brief one
is retried and the dataset is the one a clean build of the same labels gives; a lasting one stops
the build with a domain error, leaves no version that training or the admin pages would pick up (a
version exists once its manifest, written last, does), and building again makes a complete one."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest

from services.aws.s3 import S3Store
from services.errors import StoreError
from services.lifecycle.datasets import DatasetManifest, build_dataset, list_datasets, load_manifest, verify_rebuild
from services.review.labels import Label, save_label
from services.store.base import ObjectStore
from services.store.local import LocalStore
from tests.faults.injection import Fault, injected

N = 12
WORDS = ("late again", "great support today", "meh it was fine", "the team was lovely", "so tired of this")


def seed_labels(store: ObjectStore) -> None:
    """N labelled messages (the same keys every time), one item labelled twice in disagreement and one
    marked "unclear", so that the manifest has conflicts and dropped rows to compare too."""
    for i in range(N):
        label = ("negative", "positive", "neutral", "positive", "negative")[i % 5]
        save_label(
            store,
            Label(f"c{i:04d}", f"{WORDS[i % 5]} number {i}", label, "ann", f"2026-11-01T10:00:{i:02d}.000000+00:00"),
        )
    save_label(store, Label("c0001", f"{WORDS[1]} number 1", "neutral", "bob", "2026-11-01T11:00:00.000000+00:00"))
    save_label(store, Label("c0999", "what even is this", "unclear", "ann", "2026-11-01T12:00:00.000000+00:00"))


def content(m: DatasetManifest) -> dict[str, Any]:
    """Everything a manifest says about the data (not its version name or build time)."""
    return {k: v for k, v in asdict(m).items() if k not in ("version", "created_at")}


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What a clean build of the labels gives (the content does not depend on the store)."""
    clean = LocalStore(tmp_path_factory.mktemp("clean-dataset"))
    seed_labels(clean)
    built = content(build_dataset(clean, by="tests"))
    assert built["conflicts"] and built["dropped"] and built["sources"]["human"] > 0
    return built


@pytest.fixture
def stores(s3_client: Any, bucket: str, expected: dict[str, Any]) -> tuple[S3Store, dict[str, Any]]:
    """A fresh S3 prefix with the labels, and what a clean build of them gives."""
    store = S3Store(s3_client, bucket, "pulse")
    seed_labels(store)
    return store, expected


def assert_complete(store: S3Store, manifest: DatasetManifest, expected: dict[str, Any]) -> None:
    assert list_datasets(store) == [manifest.version]
    assert content(load_manifest(store, manifest.version)) == expected
    assert verify_rebuild(store, manifest.version)  # the files match the manifest's hashes


# Reads: the label files (twice: listing, then building) and the gold set. Writes, in this order:
# train.txt, validation.txt, manifest.json.
TRANSIENT = [("GetObject", 5, k) for k in ("throttle", "500", "reset")] + [
    ("PutObject", 1, k) for k in ("throttle", "500", "reset")
]


@pytest.mark.fault(
    operation="dataset build (S3)",
    fault="{kind}",
    when="{operation} #{number}, mid-build",
    expected="retried; the same dataset as a clean build",
)
@pytest.mark.parametrize(("operation", "number", "kind"), [*TRANSIENT, ("PutObject", 3, "landed")])
def test_a_brief_fault_is_retried_and_the_dataset_is_the_clean_one(
    operation: str, number: int, kind: str, stores: tuple[S3Store, dict[str, Any]], s3_client: Any
) -> None:
    store, expected = stores
    with injected(s3_client, operation, Fault(kind, start=number)) as fault:
        manifest = build_dataset(store, by="tests")
    assert fault.failed == 1
    assert content(manifest) == expected
    assert_complete(store, manifest, expected)


LASTING = {
    "the train.txt write": ("PutObject", 1),
    "the manifest.json write": ("PutObject", 3),
    "a label read": ("GetObject", 5),
}


@pytest.mark.fault(
    operation="dataset build (S3)",
    fault="{kind}",
    when="from {step} on, until S3 is back",
    expected="stopped with a StoreError, no dataset version listed; re-run: the same dataset as a clean build",
)
@pytest.mark.parametrize("kind", ["throttle", "500", "reset"])
@pytest.mark.parametrize("step", list(LASTING))
def test_a_lasting_fault_leaves_no_version_and_a_rerun_builds_the_clean_one(
    step: str, kind: str, stores: tuple[S3Store, dict[str, Any]], s3_client: Any
) -> None:
    store, expected = stores
    operation, number = LASTING[step]
    with injected(s3_client, operation, Fault(kind, start=number, count=None)), pytest.raises(StoreError):
        build_dataset(store, by="tests")
    # Training takes the newest listed version, the admin pages list the same: there is none.
    assert list_datasets(store) == []
    assert not any(key.endswith("/manifest.json") for key in store.list("datasets/"))
    manifest = build_dataset(store, by="tests")
    assert content(manifest) == expected
    assert_complete(store, manifest, expected)


@pytest.mark.fault(
    operation="dataset build (S3)",
    fault="server error (500 InternalError)",
    when="from the manifest.json write on: the files it leaves",
    expected="no dataset files left without a manifest",
)
def test_a_failed_build_leaves_no_dataset_text_behind(stores: tuple[S3Store, dict[str, Any]], s3_client: Any) -> None:
    store, _ = stores
    with injected(s3_client, "PutObject", Fault("500", start=3, count=None)), pytest.raises(StoreError):
        build_dataset(store, by="tests")
    assert list(store.list("datasets/")) == []
