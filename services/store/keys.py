"""Every key and prefix of the workspace layout, declared once (the same keys in a local folder and
in an S3 bucket/prefix), and the two rules that turn names and times into key segments.

    checkins/date=YYYY-MM-DD/<batch>.parquet      scored check-ins
    ingest/{batches,quarantine,uploads}/           batch records, rejected rows, original uploads
    ingest/lock.json                               the one ingest committing check-ins right now
    ingest/intake/<inbox>/<file>.json              the watcher's marker of each file it has seen in an inbox
    review/batches/<batch>-<part>.jsonl            items waiting for a human, written per ingest batch
    review/left/<id>.json                          items that left the queue (labelled, set aside, erased)
    review/unrecognized/<id>.json                  items of one file each (workspaces from before the batch files)
    review/labels/<id>/<stamp>-<who>.json          human labels (append-only), retractions beside them
    datasets/<version>/                            dataset versions (manifest, train, validation)
    models/<version>/{model.tar.gz,card.json}      the registry
    deployments/current.json, history/             the live model and every switch
    training/                                      runs, the training lock, cancel requests
    gold/                                          imported gold files
    alerts/                                        alerts, their status changes, the rules
    audit/<day>/                                   the audit log
    auth/                                          users, sign-in attempts
    settings/                                      values admins change at run time, workspace keys
    privacy/deletions/                             deletions that stopped half-way
"""

from __future__ import annotations

from datetime import datetime

CHECKINS = "checkins/"

INGEST_BATCHES = "ingest/batches/"
INGEST_QUARANTINE = "ingest/quarantine/"
INGEST_UPLOADS = "ingest/uploads/"
INGEST_INTAKE = "ingest/intake/"
INGEST_LOCK = "ingest/lock.json"
INGEST_LOCK_TAKEOVERS = "ingest/lock-takeovers/"

REVIEW_ITEMS = "review/unrecognized/"
REVIEW_BATCHES = "review/batches/"
REVIEW_LEFT = "review/left/"
REVIEW_INDEX = "review/index/"
REVIEW_CLAIMS = "review/claims/"
REVIEW_TAKEOVERS = "review/takeovers/"
REVIEW_SKIPS = "review/skips/"
REVIEW_ACTIONS = "review/actions/"
REVIEW_QUARANTINE = "review/quarantine/"
REVIEW_LABELS = "review/labels/"
REVIEW_RETRACTIONS = "review/retractions/"

DATASETS = "datasets/"
MODELS = "models/"
MODEL_ARTIFACT = "model.tar.gz"
MODEL_CARD = "card.json"
GOLD = "gold/"

DEPLOYMENT = "deployments/current.json"
DEPLOYMENT_HISTORY = "deployments/history/"
DEPLOY_LOCK = "deployments/lock.json"
DEPLOY_LOCK_TAKEOVERS = "deployments/lock-takeovers/"

TRAINING_RUNS = "training/runs/"
TRAINING_LOCK = "training/lock.json"
TRAINING_LOCK_TAKEOVERS = "training/lock-takeovers/"
TRAINING_CANCEL = "training/cancel/"

ALERTS = "alerts/"
ALERT_EVENTS = "alerts/events/"
ALERT_STATUS = "alerts/status/"
ALERT_RULES = "alerts/rules.json"
ALERT_RULES_HISTORY = "alerts/rules-history/"

AUDIT = "audit/"
USERS = "auth/users.json"
SIGN_IN_ATTEMPTS = "auth/attempts/"
SESSIONS = "auth/sessions/"

REVIEW_THRESHOLD = "settings/review_threshold.json"
REVIEW_THRESHOLD_HISTORY = "settings/history/review_threshold/"
PSEUDONYM_KEY = "settings/pseudonym.key"
ENDPOINT_CHOICE = "settings/endpoint.json"  # the SageMaker endpoint an admin moved the live model to
THROTTLE_KEY = "settings/throttle.key"

DELETIONS = "privacy/deletions/"
STORE_PROBES = "settings/store-probe/"  # a key created twice when a process opens the store, then deleted

# A Batch Transform job's input and output (deleted once its results are read)
SAGEMAKER_TRANSFORM = "sagemaker/transform/"


def model_key(version: str, name: str = MODEL_ARTIFACT) -> str:
    """A file of a registered model version (its artifact by default)."""
    return f"{MODELS}{version}/{name}"


def store_probe_key(token: str) -> str:
    return f"{STORE_PROBES}{token}"


def transform_key(job: str, name: str) -> str:
    """A file of a Batch Transform job: `input/records.jsonl`, or its output beside it."""
    return f"{SAGEMAKER_TRANSFORM}{job}/{name}"


def dataset_key(version: str, name: str) -> str:
    return f"{DATASETS}{version}/{name}"


def review_item_key(item_id: str) -> str:
    return f"{REVIEW_ITEMS}{item_id}.json"


def session_key(token_hash: str) -> str:
    """A browser session, named by the SHA-256 of its token (the token itself is never stored)."""
    return f"{SESSIONS}{token_hash}.json"


def batch_key(batch: str) -> str:
    return f"{INGEST_BATCHES}{batch}.json"


def partition_prefix(day: str) -> str:
    """The folder of one UTC day's scored check-ins."""
    return f"{CHECKINS}date={day}/"


def segment(name: str, *, limit: int = 64, allowed: str = "._@-", default: str = "") -> str:
    """`name` as one key segment: letters, digits and `allowed`, every other character an
    underscore, at most `limit` characters (a person's name in a key, say)."""
    return "".join(c if c.isalnum() or c in allowed else "_" for c in name)[:limit] or default


def file_name_segment(name: str, *, limit: int = 100, default: str = "upload") -> str:
    """An uploaded file's name as a key segment; its end (and so its extension) is what is kept."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[-limit:] or default


def file_stamp(at: str | datetime) -> str:
    """An ISO time as a key segment that sorts by time: 2026-12-03T09:30:00.5+00:00 becomes
    20261203T093000500000p0000 (no ":", "-", "+" or "." in it)."""
    iso = at.isoformat(timespec="microseconds") if isinstance(at, datetime) else at
    return iso.replace(":", "").replace("-", "").replace("+", "p").replace(".", "")
