"""Pseudonyms: a stable stand-in for a participant id (a keyed HMAC), the same for annotators on the
review page and in the audit log of a deletion, so an admin holding the key can still answer "was
X deleted?" while nobody else can turn a pseudonym back into an id.

The key is `PULSE_PSEUDONYM_KEY` when it is set, else a random key kept in the workspace
(`settings/pseudonym.key`, readable only by whoever can read the store itself).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from services.store import keys
from services.store.base import ObjectStore, workspace_secret

if TYPE_CHECKING:
    from services.config import Settings


def configured_key(settings: Settings) -> bytes | None:
    """The key the settings give (`PULSE_PSEUDONYM_KEY`), if any."""
    return settings.pseudonym_key.get_secret_value().encode() if settings.pseudonym_key else None


def pseudonym_key(store: ObjectStore, configured: bytes | None = None) -> bytes:
    """`configured` when given, else the workspace's own key (created once, shared by replicas)."""
    return configured or workspace_secret(store, keys.PSEUDONYM_KEY)


def pseudonym(key: bytes, participant: str) -> str:
    """`p-` and 12 hex digits of HMAC-SHA256(key, participant)."""
    return f"p-{hmac.new(key, str(participant).encode(), hashlib.sha256).hexdigest()[:12]}"
