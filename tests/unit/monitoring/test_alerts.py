"""Alerts: each rule and its edge cases, idempotence, crisis phrases, status changes, access, rules
validation, and that message text never reaches an alert, a log line or an error."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from services.access.users import User
from services.checkins.ingest import IngestReport, ingest
from services.checkins.partitions import SCHEMA, read_scored
from services.errors import InvalidNote, InvalidRules, NotAllowed, PulseError
from services.model.prediction import Prediction
from services.monitoring.alerts import evaluate_alerts
from services.monitoring.inbox import acknowledge, alert_checkins, flag_urgent, get_alert, list_alerts, resolve
from services.monitoring.rules import (
    BaselineDrop,
    ConsecutiveNegative,
    CrisisPhrases,
    GroupNegativeShare,
    Rules,
    default_phrases,
    has_crisis_phrase,
    load_rules,
    normalise,
    rules_from_dict,
    rules_to_dict,
    save_rules,
)
from services.review.labeling import LabelingService
from services.store.local import LocalStore

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
ADMIN = User("ada", "admin")
ANNOTATOR = User("ann", "annotator")


def manager(*groups: str) -> User:
    return User("max", "manager", groups)


class KeywordEndpoint:
    """A stand-in model: "awful" is negative, "wonderful" positive, "meh" unsure, anything else neutral."""

    def version(self) -> str:
        return "keywords-1"

    def preprocessing(self) -> str:
        return "pulse-v2"

    def score(self, prepared: Sequence[str]) -> tuple[str, list[Prediction]]:
        preds = []
        for text in prepared:
            if "awful" in text:
                probs = {"negative": 0.9, "neutral": 0.05, "positive": 0.05}
            elif "wonderful" in text:
                probs = {"negative": 0.05, "neutral": 0.05, "positive": 0.9}
            elif "meh" in text:
                probs = {"negative": 0.3, "neutral": 0.4, "positive": 0.3}
            else:
                probs = {"negative": 0.1, "neutral": 0.8, "positive": 0.1}
            label = max(probs, key=probs.__getitem__)
            preds.append(Prediction(label, probs[label], probs))
        return "keywords-1", preds


def upload(rows: list[tuple[str, str, str, str]]) -> bytes:
    frame = pd.DataFrame(rows, columns=["participant", "group", "time", "text"])
    return frame.to_csv(index=False).encode()


def run(store: LocalStore, rows: list[tuple[str, str, str, str]], name: str = "u.csv", **kw: object) -> IngestReport:
    return ingest(store, KeywordEndpoint(), upload(rows), name, threshold=0.6, now=NOW, **kw)  # type: ignore[arg-type]


def stored(store: LocalStore) -> list[dict[str, object]]:
    return [json.loads(store.get(k)) for k in store.list("alerts/events/")]


def of_rule(store: LocalStore, rule: str) -> list[dict[str, object]]:
    return [a for a in stored(store) if a["rule"] == rule]


def day(d: int, hour: int = 9) -> str:
    """A time `d` days before NOW (0 = NOW's day), in UTC."""
    return (NOW - timedelta(days=d)).replace(hour=hour, minute=0).isoformat()


QUIET = Rules(
    consecutive_negative=ConsecutiveNegative(enabled=False),
    baseline_drop=BaselineDrop(enabled=False),
    group_negative_share=GroupNegativeShare(enabled=False),
    crisis_phrases=CrisisPhrases(enabled=False),
)


def only(store: LocalStore, **rules: object) -> None:
    """Save rules with only the given ones on, so a test sees one rule at a time."""
    save_rules(store, replace(QUIET, **rules), "tests")  # type: ignore[arg-type]


# --- consecutive_negative ---------------------------------------------------------------------------


def test_three_negatives_in_a_row_raise_one_warning(store: LocalStore) -> None:
    only(store, consecutive_negative=ConsecutiveNegative())
    report = run(store, [("p1", "g", day(d), "awful day") for d in (3, 2, 1)] + [("p2", "g", day(1), "awful")])
    (alert,) = stored(store)
    assert report.alerts == 1 and "1 new alert" in report.summary()
    assert (alert["rule"], alert["severity"], alert["group"], alert["participant"]) == (
        "consecutive_negative",
        "warning",
        "g",
        "p1",
    )
    assert len(alert["checkin_ids"]) == 3  # type: ignore[arg-type]
    assert alert["reason"].startswith("3 negative check-ins in a row")  # type: ignore[union-attr]


def test_two_negatives_are_not_a_streak(store: LocalStore) -> None:
    only(store, consecutive_negative=ConsecutiveNegative())
    assert run(store, [("p1", "g", day(d), "awful") for d in (2, 1)]).alerts == 0


def test_gaps_in_days_do_not_break_a_streak(store: LocalStore) -> None:
    only(store, consecutive_negative=ConsecutiveNegative())
    run(store, [("p1", "g", day(d), "awful") for d in (19, 11, 2)])
    assert len(of_rule(store, "consecutive_negative")) == 1


def test_a_non_negative_checkin_breaks_a_streak(store: LocalStore) -> None:
    only(store, consecutive_negative=ConsecutiveNegative())
    rows = [("p1", "g", day(4), "awful"), ("p1", "g", day(3), "awful"), ("p1", "g", day(2), "lunch")]
    rows += [("p1", "g", day(1), "awful"), ("p1", "g", day(0), "awful")]
    assert run(store, rows).alerts == 0


def test_a_streak_that_ended_weeks_before_now_is_not_raised(store: LocalStore) -> None:
    only(store, consecutive_negative=ConsecutiveNegative())
    rows = [("p1", "g", day(d), "awful") for d in (30, 29, 28)] + [("p1", "g", day(1), "lunch")]
    assert run(store, rows).alerts == 0


def test_a_streak_spanning_midnight_in_other_time_zones_is_found_in_utc_order(store: LocalStore) -> None:
    """Offsets are normalised to UTC by ingest; sorting the raw strings would put the neutral
    check-in inside the streak. Rows arrive out of order."""
    only(store, consecutive_negative=ConsecutiveNegative())
    rows = [
        ("p1", "g", "2026-01-15T01:00:00+00:00", "awful"),  # 15 Jan 01:00 UTC
        ("p1", "g", "2026-01-14T21:00:00Z", "lunch plans"),  # 14 Jan 21:00 UTC, before the streak
        ("p1", "g", "2026-01-15T07:00:00+09:00", "awful"),  # 14 Jan 22:00 UTC
        ("p1", "g", "2026-01-14T19:30:00-05:00", "awful"),  # 15 Jan 00:30 UTC
    ]
    run(store, rows)
    (alert,) = of_rule(store, "consecutive_negative")
    assert "(2026-01-14 to 2026-01-15)" in alert["reason"]  # type: ignore[operator]
    times = read_scored(store, ["id", "time"]).set_index("id")["time"]
    ordered = [times[i] for i in alert["checkin_ids"]]  # type: ignore[union-attr]
    assert ordered == sorted(ordered) and ordered[0] == pd.Timestamp("2026-01-14T22:00:00Z")


def test_a_late_upload_completes_a_streak_with_stored_history(store: LocalStore) -> None:
    only(store, consecutive_negative=ConsecutiveNegative())
    assert run(store, [("p1", "g", day(5), "awful"), ("p1", "g", day(3), "awful")], "first.csv").alerts == 0
    assert run(store, [("p1", "g", day(4), "awful")], "late.csv").alerts == 1


def test_a_growing_streak_raises_nothing_new(store: LocalStore) -> None:
    only(store, consecutive_negative=ConsecutiveNegative())
    assert run(store, [("p1", "g", day(d), "awful") for d in (4, 3, 2)], "a.csv").alerts == 1
    assert run(store, [("p1", "g", day(1), "awful again")], "b.csv").alerts == 0
    # A new streak after a break is a new alert.
    rows = [("p1", "g", day(1, 12), "lunch")] + [("p1", "g", day(0, h), "awful") for h in (8, 9, 10)]
    assert run(store, rows, "c.csv").alerts == 1


# --- baseline_drop ----------------------------------------------------------------------------------


def baseline_rows(who: str, recent: int) -> list[tuple[str, str, str, str]]:
    base = [(who, "g", day(d), "wonderful") for d in (30, 25, 20, 15, 10)]
    return base + [(who, "g", day(d), "awful") for d in range(recent)]


def test_a_drop_below_the_own_baseline_is_raised(store: LocalStore) -> None:
    only(store, baseline_drop=BaselineDrop())
    run(store, baseline_rows("p1", 3))
    (alert,) = stored(store)
    assert (alert["rule"], alert["participant"], alert["severity"]) == ("baseline_drop", "p1", "warning")
    assert len(alert["checkin_ids"]) == 3  # type: ignore[arg-type]
    assert "-0.85" in alert["reason"] and "+0.85" in alert["reason"]  # type: ignore[operator]


def test_a_baseline_drop_needs_the_minimum_in_both_windows(store: LocalStore) -> None:
    only(store, baseline_drop=BaselineDrop())
    assert run(store, baseline_rows("p1", 2)).alerts == 0
    # Not enough history: three bad days but only two check-ins in the 28 days before.
    rows = [("p2", "g", day(d), "wonderful") for d in (20, 10)] + [("p2", "g", day(d), "awful") for d in range(3)]
    assert run(store, rows, "b.csv").alerts == 0


def test_a_participant_with_one_checkin_never_triggers(store: LocalStore) -> None:
    only(store, baseline_drop=BaselineDrop(min_checkins=1), consecutive_negative=ConsecutiveNegative(count=2))
    assert run(store, [("solo", "g", day(0), "awful")]).alerts == 0


def test_a_drop_smaller_than_the_setting_is_not_raised(store: LocalStore) -> None:
    only(store, baseline_drop=BaselineDrop(drop=1.8))  # the fake model's drop is 1.7
    assert run(store, baseline_rows("p1", 3)).alerts == 0


# --- group_negative_share ---------------------------------------------------------------------------


def group_rows(negative: int, total: int, group: str = "g") -> list[tuple[str, str, str, str]]:
    # One check-in per participant, so no streak or baseline is involved.
    return [(f"p{i}", group, day(i % 6), "awful" if i < negative else "lunch") for i in range(total)]


def test_a_mostly_negative_group_raises_an_info_alert(store: LocalStore) -> None:
    only(store, group_negative_share=GroupNegativeShare())
    run(store, group_rows(6, 10))
    (alert,) = stored(store)
    assert (alert["rule"], alert["severity"], alert["group"], alert["participant"]) == (
        "group_negative_share",
        "info",
        "g",
        None,
    )
    assert len(alert["checkin_ids"]) == 6  # type: ignore[arg-type]
    assert alert["reason"].startswith("60% of 10 check-ins")  # type: ignore[union-attr]


@pytest.mark.parametrize(("negative", "total"), [(6, 9), (5, 10)])
def test_a_group_below_the_minimum_or_at_the_threshold_is_not_raised(
    store: LocalStore, negative: int, total: int
) -> None:
    only(store, group_negative_share=GroupNegativeShare())
    assert run(store, group_rows(negative, total)).alerts == 0


def test_old_checkins_are_outside_the_window(store: LocalStore) -> None:
    only(store, group_negative_share=GroupNegativeShare())
    rows = [(f"p{i}", "g", day(10), "awful") for i in range(10)] + [("q", "g", day(0), "lunch")]
    assert run(store, rows).alerts == 0


# --- time: "now" comes from the data ---------------------------------------------------------------


def test_checkins_slightly_in_the_future_are_fine(store: LocalStore) -> None:
    only(store, consecutive_negative=ConsecutiveNegative(), group_negative_share=GroupNegativeShare())
    soon = (NOW + timedelta(minutes=5)).isoformat()
    tomorrow = (NOW + timedelta(days=1)).isoformat()
    rows = [("p1", "g", day(2), "awful"), ("p1", "g", day(1), "awful"), ("p1", "g", soon, "awful")]
    report = run(store, [*rows, ("p1", "g", tomorrow, "awful")])
    assert (report.accepted, report.rejected, report.alerts) == (3, 1, 1)


def test_evaluation_is_deterministic_whatever_the_wall_clock(store: LocalStore) -> None:
    """Far-future times, and history newer than the fresh rows, do not break anything: windows end
    at the newest fresh check-in."""
    rules = replace(QUIET, group_negative_share=GroupNegativeShare(min_checkins=3))
    future = pd.Timestamp("2031-05-01T10:00:00Z")
    frame = pd.DataFrame(
        {
            "id": ["f1", "f2", "f3", "f4"],
            "participant": ["a", "b", "c", "d"],
            "group": "g",
            "time": [future - pd.Timedelta(days=d) for d in (3, 2, 1, 0)],
            "text": ["awful", "awful", "awful", "lunch"],
            "label": ["negative", "negative", "negative", "neutral"],
            "confidence": 0.9,
            "p_negative": [0.9, 0.9, 0.9, 0.1],
            "p_neutral": 0.05,
            "p_positive": 0.05,
            "model_version": "m",
            "batch": "b",
            "extra": "",
        }
    )[SCHEMA.names]
    first = evaluate_alerts(store, frame, rules=rules)
    assert [a.rule for a in first] == ["group_negative_share"]
    assert first[0].at.startswith("2031-05-01")
    assert evaluate_alerts(store, frame, rules=rules) == []  # twice: nothing new


# --- idempotence ------------------------------------------------------------------------------------


def test_ingesting_the_same_file_twice_keeps_the_same_alerts(store: LocalStore) -> None:
    rows = [("p1", "g", day(d), "awful") for d in (3, 2, 1)] + [("p2", "g", day(0), "I want to end it all")]
    first = run(store, rows)
    before = {k: store.get(k) for k in store.list("alerts/")}
    again = run(store, rows)
    assert first.alerts == 2 and again.repeated
    assert {k: store.get(k) for k in store.list("alerts/")} == before


def test_an_interrupted_ingest_rerun_creates_no_duplicate(store: LocalStore) -> None:
    rows = [("p1", "g", day(d), "awful") for d in (3, 2, 1)]
    report = run(store, rows)
    store.delete(f"ingest/batches/{report.batch}.json")  # killed before the manifest
    rerun = run(store, rows)
    assert (report.alerts, rerun.alerts, len(stored(store))) == (1, 0, 1)


def test_an_old_manifest_without_the_alert_count_still_loads(store: LocalStore) -> None:
    report = run(store, [("p1", "g", day(1), "lunch")])
    old = json.loads(store.get(f"ingest/batches/{report.batch}.json"))
    old.pop("alerts")
    assert IngestReport(**old).alerts == 0


# --- crisis phrases ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Honestly I want to kill myself",
        "I WANT TO END IT ALL",
        "i can’t go on like this",  # curly apostrophe
        "I cant go on",
        "thinking about self-harm again",
        "ｋｉｌｌ ｍｙｓｅｌｆ",  # full-width
        "𝐬𝐮𝐢𝐜𝐢𝐝𝐞",  # mathematical bold
        "suïcide",  # an accent
        "sui\u00adcide",  # a soft hyphen inside the word
        "kill\u200bmyself",  # a zero-width space between the words
        "killmyself",
        "su\u0456cide",  # a Cyrillic і
        "SUİCİDE",  # Turkish dotted capital I
        "better off   dead\nreally",
    ],
)
def test_crisis_phrases_match_whatever_the_spelling(text: str) -> None:
    assert has_crisis_phrase(text, default_phrases())


@pytest.mark.parametrize(
    "text",
    [
        "the tiramisu is to die for",
        "I need to skill myself up",  # "kill myself" inside a word
        "the weekend my life changed",  # "end my life" across a word boundary
        "overdosed on coffee",
        "suicidesquad marathon",
    ],
)
def test_crisis_phrases_match_whole_words_only(text: str) -> None:
    assert not has_crisis_phrase(text, default_phrases())


def test_normalise_folds_case_accents_and_punctuation() -> None:
    assert normalise("  Ça  VA?! Don’t—stop ") == "ca va dont stop"


def test_a_positive_message_with_a_crisis_phrase_alerts_at_once(store: LocalStore) -> None:
    only(store, crisis_phrases=CrisisPhrases())
    report = run(store, [("p1", "g", day(0), "wonderful party, then I want to end it all")])
    (alert,) = stored(store)
    assert read_scored(store, ["label"])["label"].tolist() == ["positive"]
    assert (report.alerts, alert["rule"], alert["severity"]) == (1, "crisis_phrases", "critical")
    assert "end it all" not in json.dumps(alert)


def test_crisis_phrases_are_configurable(store: LocalStore) -> None:
    only(store, crisis_phrases=CrisisPhrases(phrases=("zorblax",)))
    rows = [("p1", "g", day(0), "Zorblax!"), ("p2", "g", day(0), "Lovely walk by the river at lunch")]
    run(store, rows)
    (alert,) = stored(store)
    assert alert["participant"] == "p1" and alert["reason"].endswith("(phrase list)")


@pytest.mark.parametrize(
    ("text", "signal"),
    [
        ("I want to end it all", "pattern: ending it or self-harm"),
        ("Honestly everyone would be better off without me.", "pattern: others better off without them"),
        ("I don't know how much longer I can keep doing this", "pattern: cannot go on, not coping"),
        ("gave my guitar to my brother today, won't be needing it", "pattern: final arrangements"),
    ],
)
def test_indirect_crisis_language_alerts_whatever_the_phrase_list_says(
    store: LocalStore, text: str, signal: str
) -> None:
    """An admin editing the phrase list cannot switch off the shipped patterns and the learned signal:
    only switching the rule off does."""
    only(store, crisis_phrases=CrisisPhrases(phrases=("zorblax",)))
    run(store, [("p1", "g", day(0), text)])
    (alert,) = stored(store)
    assert alert["severity"] == "critical" and signal in alert["reason"]
    assert text.lower() not in json.dumps(alert).lower()


def test_the_learned_signal_alone_raises_a_warning_below_its_critical_score(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.monitoring import crisis

    class Fixed:
        def scores(self, texts: list[str]) -> list[float]:
            return [{"sure": 0.9, "unsure": 0.7}.get(t.split()[0], 0.1) for t in texts]

    monkeypatch.setattr(crisis, "learned_signal", Fixed)
    only(store, crisis_phrases=CrisisPhrases())
    run(store, [("p1", "g", day(0), "sure day"), ("p2", "g", day(0), "unsure day"), ("p3", "g", day(0), "fine day")])
    assert {a["participant"]: a["severity"] for a in stored(store)} == {"p1": "critical", "p2": "warning"}


def test_the_crisis_rule_switched_off_raises_nothing(store: LocalStore) -> None:
    only(store, crisis_phrases=CrisisPhrases(enabled=False))
    assert run(store, [("p1", "g", day(0), "I want to end it all")]).alerts == 0


# --- status changes and access ----------------------------------------------------------------------


def two_groups(store: LocalStore) -> None:
    only(store, crisis_phrases=CrisisPhrases())
    run(store, [("p1", "Support", day(1), "suicidal"), ("p2", "Night", day(0), "I can't go on")])


def clock(minute: int) -> Callable[[], datetime]:
    return lambda: NOW.replace(minute=minute)


def test_managers_see_only_their_groups_admins_all(store: LocalStore) -> None:
    two_groups(store)
    assert {a.group for a in list_alerts(store, ADMIN)} == {"Support", "Night"}
    assert {a.group for a in list_alerts(store, manager("Night"))} == {"Night"}
    assert list_alerts(store, manager()) == []


def test_annotators_are_refused_and_the_attempt_is_logged(store: LocalStore, caplog: pytest.LogCaptureFixture) -> None:
    two_groups(store)
    with caplog.at_level(logging.WARNING, logger="services.monitoring.alerts"), pytest.raises(NotAllowed):
        list_alerts(store, ANNOTATOR)
    assert any("refused" in r.getMessage() and "ann" in r.getMessage() for r in caplog.records)


def test_acknowledge_then_resolve_and_the_latest_wins(store: LocalStore) -> None:
    two_groups(store)
    (alert,) = list_alerts(store, manager("Night"))
    acked = acknowledge(store, alert.id, manager("Night"), "calling them", clock=clock(5))
    assert acked.status == "acknowledged"
    done = resolve(store, alert.id, ADMIN, "talked, they are safe", clock=clock(10))
    assert done.status == "resolved"
    assert [(c.status, c.by, c.note) for c in done.history] == [
        ("acknowledged", "max", "calling them"),
        ("resolved", "ada", "talked, they are safe"),
    ]
    # A change stamped earlier (a slow replica) does not override a later one.
    late = acknowledge(store, alert.id, ADMIN, clock=clock(7))
    assert late.status == "resolved" and len(late.history) == 3
    assert [a.status for a in list_alerts(store, ADMIN, status="resolved")] == ["resolved"]
    assert len(list_alerts(store, ADMIN, status="open")) == 1
    # The event itself was never rewritten.
    assert json.loads(store.get(f"alerts/events/{alert.id}.json"))["reason"] == alert.reason


def test_open_alerts_come_first(store: LocalStore) -> None:
    two_groups(store)
    newest = list_alerts(store, ADMIN)[0]
    resolve(store, newest.id, ADMIN, "done")
    assert [a.status for a in list_alerts(store, ADMIN)] == ["open", "resolved"]


def test_a_manager_cannot_act_on_another_groups_alert(store: LocalStore) -> None:
    two_groups(store)
    (alert,) = list_alerts(store, manager("Support"))
    for act in (acknowledge, resolve):
        with pytest.raises(NotAllowed, match="group you do not look after"):
            act(store, alert.id, manager("Night"), "note")
    with pytest.raises(NotAllowed):
        acknowledge(store, alert.id, ANNOTATOR)
    with pytest.raises(NotAllowed):
        alert_checkins(store, alert.id, manager("Night"))
    assert list(store.list("alerts/status/")) == []


def test_resolving_needs_a_note(store: LocalStore) -> None:
    two_groups(store)
    alert = list_alerts(store, ADMIN)[0]
    with pytest.raises(InvalidNote, match="write a note"):
        resolve(store, alert.id, ADMIN, "   ")
    with pytest.raises(InvalidNote, match="longer than 1000"):
        acknowledge(store, alert.id, ADMIN, "x" * 1001)


def test_unknown_alert_ids_are_not_found(store: LocalStore) -> None:
    with pytest.raises(PulseError, match="no alert"):
        get_alert(store, "../../auth/users", ADMIN)
    with pytest.raises(PulseError, match="no alert"):
        acknowledge(store, "0" * 24, ADMIN)


def test_the_triggering_checkins_are_there_for_allowed_users(store: LocalStore) -> None:
    two_groups(store)
    (alert,) = list_alerts(store, manager("Support"))
    rows = alert_checkins(store, alert.id, manager("Support"))
    assert rows["text"].tolist() == ["suicidal"]
    assert list(rows.columns) == ["id", "time", "label", "confidence", "text"]


# --- manual flag ------------------------------------------------------------------------------------


def test_an_annotator_flags_a_review_item_as_urgent(store: LocalStore) -> None:
    only(store)
    run(store, [("p1", "Support", day(1), "meh whatever")])  # unsure: goes to review
    service = LabelingService(store)
    item = service.claim_next("ann")
    assert item is not None
    alert = flag_urgent(store, item, "ann", "sounds worrying")
    assert (alert.rule, alert.severity, alert.group, alert.participant, alert.by) == (
        "manual",
        "critical",
        "Support",
        "p1",  # the real participant for the managers, not the annotator's pseudonym
        "ann",
    )
    assert alert.checkin_ids == (item.id,) and "meh" not in json.dumps(stored(store))
    assert flag_urgent(store, item.id, "someone-else") == alert  # once per check-in
    assert len(stored(store)) == 1
    # The item stays in the annotator's hands.
    again = service.claim_next("ann")
    assert again is not None and again.id == item.id and again.claimed_by == "ann"
    service.submit(item.id, "negative", "ann")


def test_flagging_an_unknown_checkin_says_so(store: LocalStore) -> None:
    for unknown in ("nope", "../../auth/users", "a b/c"):
        with pytest.raises(PulseError, match="not in the workspace"):
            flag_urgent(store, unknown, "ann")


# --- rules ------------------------------------------------------------------------------------------


def test_rules_default_when_absent_and_round_trip(store: LocalStore) -> None:
    assert load_rules(store) == Rules()
    assert len(Rules().crisis_phrases.phrases) > 20
    mine = Rules(consecutive_negative=ConsecutiveNegative(count=4), crisis_phrases=CrisisPhrases(phrases=("a b c",)))
    saved = save_rules(store, mine, "ada")
    assert load_rules(store) == saved and saved.updated_by == "ada"
    assert saved.consecutive_negative.count == 4 and saved.crisis_phrases.phrases == ("a b c",)
    assert len(list(store.list("alerts/rules-history/"))) == 1


def test_the_rules_change_what_is_raised(store: LocalStore) -> None:
    only(store, consecutive_negative=ConsecutiveNegative(count=2))
    assert run(store, [("p1", "g", day(d), "awful") for d in (2, 1)]).alerts == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"consecutive_negative": {"count": 1}}, "consecutive_negative.count must be a whole number from 2 to 50"),
        ({"consecutive_negative": {"count": 2.5}}, "consecutive_negative.count must be a whole number from 2 to 50"),
        ({"consecutive_negative": {"count": "3"}}, "consecutive_negative.count must be a whole number"),
        ({"consecutive_negative": {"count": True}}, "consecutive_negative.count must be a whole number"),
        ({"baseline_drop": {"drop": 0}}, r"baseline_drop.drop must be a number from 0.05 to 2.0"),
        ({"baseline_drop": {"drop": float("nan")}}, r"baseline_drop.drop must be a number from 0.05 to 2.0"),
        ({"baseline_drop": {"min_checkins": 0}}, "baseline_drop.min_checkins must be a whole number from 1 to 100"),
        ({"group_negative_share": {"share": 1.0}}, "group_negative_share.share must be a number from 0.05 to 0.95"),
        ({"group_negative_share": {"min_checkins": -1}}, "group_negative_share.min_checkins must be a whole number"),
        ({"crisis_phrases": {"enabled": "yes"}}, "crisis_phrases.enabled must be true or false"),
        ({"crisis_phrases": {"phrases": "kill myself"}}, "crisis_phrases.phrases must be a list"),
        ({"crisis_phrases": {"phrases": ["ok phrase", "  "]}}, "crisis_phrases.phrases: phrase 2 needs at least 3"),
        ({"crisis_phrases": {"phrases": ["x" * 101]}}, "phrase 1 is longer than 100 characters"),
        ({"crisis_phrases": {"phrases": [3]}}, "phrase 1 is not text"),
        ({"nonsense": {}}, "unknown alert rule"),
        ({"baseline_drop": {"window": 3}}, "baseline_drop: unknown setting"),
        ([], "must be a JSON object"),
    ],
)
def test_bad_rules_are_refused_naming_the_field_and_range(data: object, message: str) -> None:
    with pytest.raises(InvalidRules, match=message):
        rules_from_dict(data)


def test_save_rules_validates_and_writes_nothing_when_bad(store: LocalStore) -> None:
    bad = Rules(group_negative_share=GroupNegativeShare(share=1.5))
    with pytest.raises(InvalidRules, match=r"group_negative_share\.share"):
        save_rules(store, bad, "ada")
    assert list(store.list("alerts/")) == []


def test_a_corrupt_rules_file_names_the_file(store: LocalStore) -> None:
    store.put("alerts/rules.json", b"{not json")
    with pytest.raises(InvalidRules, match=r"alerts/rules\.json is not valid JSON"):
        load_rules(store)
    store.put("alerts/rules.json", json.dumps({"consecutive_negative": {"count": 99}}).encode())
    with pytest.raises(InvalidRules, match=r"alerts/rules\.json: consecutive_negative\.count"):
        load_rules(store)


def test_duplicate_phrases_are_kept_once() -> None:
    rules = rules_from_dict({"crisis_phrases": {"phrases": ["Self-harm", "self harm", "SELF  HARM"]}})
    assert rules.crisis_phrases.phrases == ("Self-harm",)
    assert rules_from_dict(rules_to_dict(rules)) == rules


# --- message text never leaks -----------------------------------------------------------------------


def test_message_text_never_reaches_alerts_logs_or_errors(store: LocalStore, caplog: pytest.LogCaptureFixture) -> None:
    secret = "zqxsecret4417"
    rows = [("p1", "g", day(d), f"awful {secret} day") for d in (3, 2, 1)]
    rows += [(f"q{i}", "g", day(1), f"awful {secret}") for i in range(10)]
    rows += [("p2", "g", day(0), f"{secret} I want to kill myself"), ("p3", "g", day(0), f"meh {secret}")]
    errors: list[str] = []
    with caplog.at_level(logging.DEBUG):
        report = run(store, rows)
        item = LabelingService(store).claim_next("ann")
        assert item is not None
        flag_urgent(store, item, "ann")
        for attempt in (
            lambda: list_alerts(store, ANNOTATOR),
            lambda: acknowledge(store, list_alerts(store, ADMIN)[0].id, manager("other"), secret),
            lambda: resolve(store, list_alerts(store, ADMIN)[0].id, ADMIN, ""),
            lambda: flag_urgent(store, "missing", "ann", secret),
        ):
            with pytest.raises(PulseError) as err:
                attempt()
            errors.append(str(err.value))
    assert {a["rule"] for a in stored(store)} == {
        "consecutive_negative",
        "crisis_phrases",
        "group_negative_share",
        "manual",
    }
    assert report.alerts == 3
    written = b"".join(store.get(k) for k in store.list("alerts/"))
    assert secret.encode() not in written and b"kill myself" not in written
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "refused" in logged and "new alerts" in logged  # the logs were really captured
    for shown in (logged, *errors, report.summary()):
        assert secret not in shown and "kill myself" not in shown


def test_no_alert_is_raised_from_an_empty_frame(store: LocalStore) -> None:
    empty = SCHEMA.empty_table().to_pandas()
    assert evaluate_alerts(store, empty) == []


def test_the_partition_reader_is_used_for_history(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the fresh rows' groups are read from the store."""
    only(store, consecutive_negative=ConsecutiveNegative())
    run(store, [("x", "other", day(1), "lunch")], "other.csv")
    seen: list[object] = []
    import services.monitoring.alerts as alerts_module

    real = alerts_module.read_scored

    def spy(store: LocalStore, columns: object = None, groups: object = None) -> pd.DataFrame:
        seen.append(groups)
        return real(store, columns, groups)  # type: ignore[arg-type]

    monkeypatch.setattr(alerts_module, "read_scored", spy)
    run(store, [("p1", "g", day(d), "awful") for d in (3, 2, 1)], "g.csv")
    assert seen == [["g"]]
