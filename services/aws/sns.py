"""Publishing new alerts to an SNS topic (the optional `Notifier`): a subject and a message without
check-in text."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from services.aws.clients import sns_client
from services.monitoring.alerts import Alert

if TYPE_CHECKING:
    from services.config import Settings

log = logging.getLogger(__name__)


def _ascii(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def sns_subject(alert: Alert) -> str:
    """SNS subjects are ASCII, one line, under 100 characters."""
    return _ascii(f"Pulse {alert.severity} alert: {alert.title} in {alert.group}")[:99]


def sns_message(alert: Alert) -> str:
    """Rule, severity, group, participant id and reason: never message text."""
    return "\n".join(
        [
            f"{alert.title} ({alert.rule}), severity {alert.severity}",
            f"Group: {alert.group}",
            f"Participant: {alert.participant or '(whole group)'}",
            f"Reason: {alert.reason}",
            f"Latest check-in: {alert.at}",
            f"Alert id: {alert.id}",
            "Open the Alerts page in Pulse to see the check-ins and acknowledge the alert.",
        ]
    )


class SnsNotifier:
    """Publishes each new alert to one SNS topic through an injected boto3 SNS client.

    When SNS cannot be reached at all, the next publishes are skipped (and logged) for
    `pause_seconds` instead of each waiting for its own timeouts: an ingest never stalls on it."""

    def __init__(self, client: Any, topic_arn: str, *, pause_seconds: float = 60.0) -> None:
        self.client = client
        self.topic_arn = topic_arn
        self.pause_seconds = pause_seconds
        self._paused_until = 0.0

    def publish(self, alert: Alert) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        if time.monotonic() < self._paused_until:
            log.warning("alert %s was not published to SNS (unreachable a moment ago); it stays in the inbox", alert.id)
            return False
        try:
            self.client.publish(TopicArn=self.topic_arn, Subject=sns_subject(alert), Message=sns_message(alert))
        except (BotoCoreError, ClientError) as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "") or type(exc).__name__
            if isinstance(exc, BotoCoreError):  # no answer at all (connection, timeout), not a refusal
                self._paused_until = time.monotonic() + self.pause_seconds
            log.warning("alert %s was not published to SNS (%s); it stays in the inbox", alert.id, code)
            return False
        return True


def make_notifier(settings: Settings) -> SnsNotifier | None:
    """An SNS notifier when `sns_topic_arn` is set, else None (alerts stay in the inbox only)."""
    if not settings.sns_topic_arn:
        return None
    return SnsNotifier(sns_client(settings), settings.sns_topic_arn)
