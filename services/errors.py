"""Every error Pulse reports, in one hierarchy under `PulseError`. Services raise them with a message
that says what went wrong (never message text); pages and the CLI show the message and what to do next."""

from typing import Any


class PulseError(Exception):
    """Base class of every error Pulse reports to a user."""


class SettingsError(PulseError):
    """A setting is missing or has a value Pulse cannot use."""


# --- The store (services.store, services.aws.s3) ----------------------------------------------------


class StoreError(PulseError):
    """The object store refused or failed an operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or used at all (missing bucket, no access, unwritable folder)."""


class StoreUnsafe(StoreUnavailable):
    """The store does not refuse a conditional write it should refuse (Pulse's guarantees need it)."""


class KeyNotFound(StoreError):
    """No object exists under the key."""


class AlreadyExists(StoreError):
    """A create-if-absent write found the key taken."""


class InvalidKey(StoreError):
    """A key that could escape the workspace or is not a plain relative path."""


class LeaseHeld(PulseError):
    """A live lease (`services.store.lease`) is in the way; it carries the lease found."""

    def __init__(self, held: dict[str, Any], message: str = "held by another holder") -> None:
        super().__init__(message)
        self.held = held


class LeaseContested(PulseError):
    """Another contender won the takeover of an expired lease, or it kept changing hands."""


# --- Check-ins --------------------------------------------------------------------------------------


class InvalidUpload(PulseError):
    """An uploaded file cannot be read at all (as opposed to single bad rows). `rejected_key`: where
    its rows were set aside with their reasons, when it had rows but none could be accepted."""

    def __init__(self, message: str, rejected_key: str | None = None) -> None:
        super().__init__(message + (f" Reasons per row: {rejected_key}." if rejected_key else ""))
        self.message = message  # without the store key (the app shows the rows themselves)
        self.rejected_key = rejected_key


class InboxError(PulseError):
    """The inbox a watcher reads (a folder or an S3 prefix) cannot be listed, or a file in it read."""


# --- Access: sign-in and the policy -----------------------------------------------------------------


class AuthError(PulseError):
    """Sign-in refused or a users file that cannot be trusted."""


class SignInRefused(AuthError):
    """A password sign-in that did not succeed; the message is the same for unknown names."""


class NotAllowed(AuthError):
    """The signed-in user's role may not open this page, take this action or see this group."""


# --- The review queue -------------------------------------------------------------------------------


class ClaimLost(PulseError):
    """The annotator does not hold the item (never claimed, released, or the lease expired)."""


# --- The model lifecycle ----------------------------------------------------------------------------


class DatasetError(PulseError):
    """A dataset that cannot be built or trusted (empty, a class missing, changed sources)."""


class InvalidParams(PulseError, ValueError):
    """Hyperparameters outside their valid range (the message names the range)."""


class TrainingBusy(PulseError):
    """Another training run holds the training lock."""


class IngestBusy(StoreError):
    """Another ingest held the ingest lock for longer than this one would wait."""


class TrainingJobFailed(PulseError):
    """A training job of the Pulse model image cannot train; the reason is SageMaker's FailureReason."""


class JobNotStarted(PulseError):
    """The run failed before it could be given a name (nothing was trained)."""


class JobNotFound(PulseError):
    """No training run of that name."""


class JobNotRunning(PulseError):
    """A cancel of a run that has already ended."""


class ModelUnavailable(PulseError):
    """No model is deployed, or its artifact is missing or corrupt."""


class GateFailed(PulseError):
    """A promotion refused because the candidate scores worse than the live model on the gold set."""


class DeployFailed(PulseError):
    """A deployment did not complete; the previous model still serves."""


class EndpointError(PulseError):
    """A scoring endpoint failed or answered something that is not a prediction."""


# --- Monitoring -------------------------------------------------------------------------------------


class InvalidRules(PulseError):
    """Alert rules that cannot be used (the message names the setting and its valid range)."""


class InvalidNote(PulseError):
    """An alert note that is missing or too long."""


class AlertNotFound(PulseError):
    """No alert (or check-in) with that id."""


class InvalidThreshold(PulseError):
    """A review threshold outside 0..1, or a stored override that cannot be read."""
