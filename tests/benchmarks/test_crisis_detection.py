"""Crisis detection, measured on the check-in corpus's gold part (never trained on): recall on the
crisis messages (every-day check-ins flagged crisis and the crisis part's), false alarms per 1,000
ordinary check-ins (the every-day gold part without crisis), how many of the crisis part's look-alikes
("this rota is killing me", a nurse reporting a patient's words, recovery told from a safe place)
alert, and alerts per 1,000 TweetEval tweets (ordinary text of another kind). The phrase list alone is
the baseline; each signal is shown alone and added in turn, in one run.

Run standalone: `python -m tests.benchmarks.test_crisis_detection`."""

from __future__ import annotations

from dataclasses import dataclass

from services.model.corpus import checkin_part, tweeteval
from services.monitoring.crisis import LEARNED_THRESHOLD, find_crisis, learned_signal, matching_pattern
from services.monitoring.rules import default_phrases, has_crisis_phrase

GOAL_RECALL = 0.95
GOAL_FALSE_ALARMS = 5.0  # per 1,000 ordinary check-ins


@dataclass(frozen=True)
class Row:
    name: str
    recall: float
    caught: int
    crisis: int
    false_alarms: float  # per 1,000 ordinary check-ins
    look_alikes: int
    looks: int
    tweets: float  # alerts per 1,000 tweets


def sets() -> dict[str, list[str]]:
    gold = checkin_part("gold", source=None, sentiment_only=False)
    return {
        "crisis": [r.text for r in gold if r.crisis],
        "ordinary": [r.text for r in gold if not r.crisis and r.source == "checkins"],
        "look": [r.text for r in gold if not r.crisis and r.source == "crisis"],
        "tweets": [t.text for t in tweeteval()],
    }


def measure(threshold: float = LEARNED_THRESHOLD) -> list[Row]:
    data = sets()
    phrases = default_phrases()
    signals = {
        "phrase list": lambda texts: [has_crisis_phrase(t, phrases) for t in texts],
        "patterns": lambda texts: [matching_pattern(t) is not None for t in texts],
        "learned signal": lambda texts: [s >= threshold for s in learned_signal().scores(texts)],
        "phrase list + patterns": lambda texts: [f is not None for f in find_crisis(texts, phrases, learned=False)],
        "Pulse: all three": lambda texts: [f is not None for f in find_crisis(texts, phrases, threshold=threshold)],
        "Pulse: critical ones": lambda texts: [f is not None and f.critical for f in find_crisis(texts, phrases)],
    }
    rows = []
    for name, flags in signals.items():
        hit = {part: sum(flags(texts)) for part, texts in data.items()}
        rows.append(
            Row(
                name,
                hit["crisis"] / len(data["crisis"]),
                hit["crisis"],
                len(data["crisis"]),
                1000 * hit["ordinary"] / len(data["ordinary"]),
                hit["look"],
                len(data["look"]),
                1000 * hit["tweets"] / len(data["tweets"]),
            )
        )
    return rows


def table(rows: list[Row]) -> str:
    head = f"{'signal':<24} {'recall':>14} {'false alarms/1000':>18} {'look-alikes':>12} {'tweets/1000':>12}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r.name:<24} {r.recall:>6.3f} ({r.caught:>3}/{r.crisis}) {r.false_alarms:>18.1f} "
            f"{r.look_alikes:>5}/{r.looks:<6} {r.tweets:>12.1f}"
        )
    return "\n".join(lines)


def test_crisis_detection_side_by_side() -> None:
    rows = measure()
    print(
        f"\ncrisis detection, check-in gold part (goal: recall >= {GOAL_RECALL}, <= {GOAL_FALSE_ALARMS:g} "
        f"false alarms per 1,000 ordinary check-ins; learned threshold {LEARNED_THRESHOLD})\n" + table(rows)
    )
    by = {r.name: r for r in rows}
    # Each signal only adds alerts: Pulse catches at least what the phrase list alone catches.
    assert by["Pulse: all three"].caught >= by["phrase list + patterns"].caught >= by["phrase list"].caught
    assert by["Pulse: all three"].recall > by["phrase list"].recall


if __name__ == "__main__":
    print(table(measure()))
    for th in (0.3, 0.4, 0.5, 0.6, 0.7):
        print(f"\nlearned threshold {th}")
        print(table(measure(th))[-200:])
