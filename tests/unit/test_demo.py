"""The demo workspace's check-ins: Pulse's own check-ins (never gold), in each group's voice, with its stories."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from services.demo import CRISIS_GROUP, GROUPS, checkins_frame
from services.model.corpus import checkin_part, checkins
from services.model.text import loose, preprocess
from services.monitoring.crisis import find_crisis
from services.monitoring.rules import default_phrases

TODAY = datetime(2026, 12, 3, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return checkins_frame(TODAY)


def test_every_text_is_a_check_in_of_the_corpus_and_none_is_gold(frame: pd.DataFrame) -> None:
    corpus = {r.text: r for r in checkins()}
    gold = {loose(preprocess(r.text)) for r in checkin_part("gold", source=None)}
    assert set(frame["text"]) <= set(corpus)
    assert not {loose(preprocess(t)) for t in frame["text"]} & gold
    assert {corpus[t].part for t in frame["text"]} == {"demo", "train"}


def test_each_group_writes_in_its_programs_voice(frame: pd.DataFrame) -> None:
    programs: dict[str, set[str]] = {}
    for r in checkins():  # noise such as "..." is written in more than one program
        programs.setdefault(r.text, set()).add(r.program)
    for plan in GROUPS:
        assert all(plan.program in programs[t] for t in frame.loc[frame["group"] == plan.name, "text"])


def test_the_stories_are_there(frame: pd.DataFrame) -> None:
    corpus = {r.text: r for r in checkins()}
    frame = frame.assign(
        label=[corpus[t].label for t in frame["text"]], crisis=[corpus[t].crisis for t in frame["text"]]
    )
    desk = frame[frame["group"] == "Support desk"].sort_values("time")
    first, last = desk.iloc[: len(desk) // 3], desk.iloc[-len(desk) // 3 :]
    assert (last["label"] == "negative").mean() > (first["label"] == "negative").mean() + 0.1  # trending down
    (crisis,) = frame.loc[frame["crisis"], "text"]  # one crisis message, where the story puts it
    assert frame.loc[frame["crisis"], "group"].item() == CRISIS_GROUP
    assert find_crisis([crisis], default_phrases()) != [None]  # so the demo raises a critical alert
    assert (frame["label"] == "unclear").any()  # another language now and then, for the review queue
    repeats = frame.groupby("participant")["text"].agg(lambda t: t.duplicated().mean())
    assert repeats.max() < 0.2  # nobody keeps sending the same note
