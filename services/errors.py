"""Domain errors. Pages turn them into a message that says what to do next."""


class PulseError(Exception):
    """Base class of every error Pulse reports to a user."""


class SettingsError(PulseError):
    """A setting is missing or has a value Pulse cannot use."""


class StoreError(PulseError):
    """The object store refused or failed an operation."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or used at all (missing bucket, no access, unwritable folder)."""


class KeyNotFound(StoreError):
    """No object exists under the key."""


class AlreadyExists(StoreError):
    """A create-if-absent write found the key taken."""


class InvalidKey(StoreError):
    """A key that could escape the workspace or is not a plain relative path."""


class InvalidUpload(PulseError):
    """An uploaded file cannot be read at all (as opposed to single bad rows)."""


class ModelUnavailable(PulseError):
    """No model is deployed, or its artifact is missing or corrupt."""


class AuthError(PulseError):
    """Sign-in refused or a users file that cannot be trusted."""


class NotAllowed(AuthError):
    """The signed-in user's role may not open this page, take this action or see this group."""


class InvalidRules(PulseError):
    """Alert rules that cannot be used (the message names the setting and its valid range)."""


class InvalidNote(PulseError):
    """An alert note that is missing or too long."""


class AlertNotFound(PulseError):
    """No alert (or check-in) with that id."""


class InvalidThreshold(PulseError):
    """A review threshold outside 0..1, or a stored override that cannot be read."""


class DeployFailed(PulseError):
    """A deployment did not complete; the previous model still serves."""


class GateFailed(PulseError):
    """A promotion refused because the candidate scores worse than the live model on the gold set."""


class EndpointError(PulseError):
    """A scoring endpoint failed or answered something that is not a prediction."""
