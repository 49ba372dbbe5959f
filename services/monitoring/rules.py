"""The alert rules: what raises an alert (the rule settings and their valid ranges), reading and saving
them (`alerts/rules.json`, every saved version kept in `alerts/rules-history/`), and finding crisis
language in a message. The stored JSON is validated by pydantic models; a bad value is refused
naming the setting and the range it takes."""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from services.access import audit
from services.errors import InvalidRules, KeyNotFound
from services.store import keys
from services.store.base import ObjectStore

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


MAX_PHRASES = 500


PHRASE_CHARS = (3, 100)


def stamp(clock: Callable[[], datetime] | None = None) -> str:
    return (clock or (lambda: datetime.now(UTC)))().astimezone(UTC).isoformat(timespec="microseconds")


@cache
def default_phrases() -> tuple[str, ...]:
    """The shipped crisis phrase list (services/monitoring/crisis_phrases.txt)."""
    text = resources.files("services.monitoring").joinpath("crisis_phrases.txt").read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


@dataclass(frozen=True)
class ConsecutiveNegative:
    """`count` negative check-ins in a row by one participant (gaps in days do not break a streak)."""

    enabled: bool = True
    count: int = 3


@dataclass(frozen=True)
class BaselineDrop:
    """Mean score over the last 7 days below the participant's 28-day baseline by more than `drop`."""

    enabled: bool = True
    drop: float = 0.5
    min_checkins: int = 3  # in each of the two windows


@dataclass(frozen=True)
class GroupNegativeShare:
    """More than `share` of a group's check-ins of the last 7 days negative (with `min_checkins` of them)."""

    enabled: bool = True
    share: float = 0.5
    min_checkins: int = 10


@dataclass(frozen=True)
class CrisisPhrases:
    """A check-in holding one of `phrases` alerts at once, whatever the model's label."""

    enabled: bool = True
    phrases: tuple[str, ...] = field(default_factory=default_phrases)


@dataclass(frozen=True)
class Rules:
    """All alert rules; stored at `alerts/rules.json`."""

    consecutive_negative: ConsecutiveNegative = field(default_factory=ConsecutiveNegative)
    baseline_drop: BaselineDrop = field(default_factory=BaselineDrop)
    group_negative_share: GroupNegativeShare = field(default_factory=GroupNegativeShare)
    crisis_phrases: CrisisPhrases = field(default_factory=CrisisPhrases)
    updated_by: str = ""
    updated_at: str = ""


SECTIONS: dict[str, Any] = {
    "consecutive_negative": ConsecutiveNegative,
    "baseline_drop": BaselineDrop,
    "group_negative_share": GroupNegativeShare,
    "crisis_phrases": CrisisPhrases,
}


# Valid ranges, inclusive: integers for counts, floats for amounts (scores span -1..+1, so a drop is at most 2).
LIMITS: dict[str, tuple[int, int] | tuple[float, float]] = {
    "consecutive_negative.count": (2, 50),
    "baseline_drop.drop": (0.05, 2.0),
    "baseline_drop.min_checkins": (1, 100),
    "group_negative_share.share": (0.05, 0.95),
    "group_negative_share.min_checkins": (1, 100_000),
}


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_number(path: str, value: Any) -> int | float:
    lo, hi = LIMITS[path]
    whole = isinstance(lo, int)
    is_number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if whole and is_number and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not is_number or (whole and not isinstance(value, int)) or not lo <= value <= hi:
        kind = "a whole number" if whole else "a number"
        raise InvalidRules(f"{path} must be {kind} from {lo} to {hi}, got {_shown(value)}")
    return int(value) if whole else float(value)


def _check_phrases(path: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidRules(f"{path} must be a list of phrases, one per entry")
    if len(value) > MAX_PHRASES:
        raise InvalidRules(f"{path} holds {len(value)} phrases; at most {MAX_PHRASES} are allowed")
    lo, hi = PHRASE_CHARS
    out: list[str] = []
    seen: set[str] = set()
    for number, phrase in enumerate(value, start=1):
        if not isinstance(phrase, str):
            raise InvalidRules(f"{path}: phrase {number} is not text")
        phrase = " ".join(phrase.split())
        norm = normalise(phrase)
        if len(phrase) > hi:
            raise InvalidRules(f"{path}: phrase {number} is longer than {hi} characters (from {lo} to {hi})")
        if len(norm.replace(" ", "")) < lo:
            raise InvalidRules(f"{path}: phrase {number} needs at least {lo} letters or digits (from {lo} to {hi})")
        if norm not in seen:  # the same phrase twice (after normalisation) is kept once
            seen.add(norm)
            out.append(phrase)
    return tuple(out)


def _checked(path: str) -> BeforeValidator:
    return BeforeValidator(functools.partial(_check_phrases if path.endswith(".phrases") else _check_number, path))


_StreakCount = Annotated[float, _checked("consecutive_negative.count")]
_Drop = Annotated[float, _checked("baseline_drop.drop")]
_DropCheckins = Annotated[float, _checked("baseline_drop.min_checkins")]
_Share = Annotated[float, _checked("group_negative_share.share")]
_ShareCheckins = Annotated[float, _checked("group_negative_share.min_checkins")]
_Phrases = Annotated[tuple[str, ...], _checked("crisis_phrases.phrases")]


class _Section(BaseModel):
    # Unknown settings are refused, booleans must be booleans; numbers and phrases are checked
    # by the validators above, which name the setting and the range it takes.
    model_config = ConfigDict(extra="forbid", strict=True)


class _ConsecutiveNegative(_Section):
    enabled: bool = True
    count: _StreakCount = ConsecutiveNegative.count


class _BaselineDrop(_Section):
    enabled: bool = True
    drop: _Drop = BaselineDrop.drop
    min_checkins: _DropCheckins = BaselineDrop.min_checkins


class _GroupNegativeShare(_Section):
    enabled: bool = True
    share: _Share = GroupNegativeShare.share
    min_checkins: _ShareCheckins = GroupNegativeShare.min_checkins


class _CrisisPhrases(_Section):
    enabled: bool = True
    phrases: _Phrases = Field(default_factory=default_phrases)


class _Document(BaseModel):
    """`alerts/rules.json` as stored: one object per rule, who saved it and when."""

    model_config = ConfigDict(extra="forbid")

    consecutive_negative: _ConsecutiveNegative = Field(default_factory=_ConsecutiveNegative)
    baseline_drop: _BaselineDrop = Field(default_factory=_BaselineDrop)
    group_negative_share: _GroupNegativeShare = Field(default_factory=_GroupNegativeShare)
    crisis_phrases: _CrisisPhrases = Field(default_factory=_CrisisPhrases)
    updated_by: Any = ""
    updated_at: Any = ""


def _refusal(exc: ValidationError, data: dict[str, Any]) -> str:
    """The first problem pydantic found, in the words an admin needs (setting, range, value)."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    if error["type"] == "extra_forbidden" and len(loc) == 1:
        extra = sorted(set(data) - set(_Document.model_fields))
        return f"unknown alert rule(s) {', '.join(extra)}; known: {', '.join(SECTIONS)}"
    name = loc[0]
    if error["type"] == "extra_forbidden":
        known = list(_Document.model_fields[name].annotation.model_fields)  # type: ignore[union-attr]
        extra = sorted(set(data[name]) - set(known))
        return f"{name}: unknown setting(s) {', '.join(extra)}; known: {', '.join(known)}"
    if len(loc) == 1:
        return f"{name} must be an object of settings"
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return f"{'.'.join(loc)} must be true or false, got {_shown(error['input'])}"


def rules_from_dict(data: Any) -> Rules:
    """Validated rules from their JSON form; raises `InvalidRules` naming the bad field and its range.
    Missing rules or settings take their defaults."""
    if not isinstance(data, dict):
        raise InvalidRules("alert rules must be a JSON object with one entry per rule")
    try:
        doc = _Document.model_validate(data)
    except ValidationError as exc:
        raise InvalidRules(_refusal(exc, data)) from None
    cn, bd, gs, cp = doc.consecutive_negative, doc.baseline_drop, doc.group_negative_share, doc.crisis_phrases
    return Rules(
        consecutive_negative=ConsecutiveNegative(cn.enabled, int(cn.count)),
        baseline_drop=BaselineDrop(bd.enabled, float(bd.drop), int(bd.min_checkins)),
        group_negative_share=GroupNegativeShare(gs.enabled, float(gs.share), int(gs.min_checkins)),
        crisis_phrases=CrisisPhrases(cp.enabled, cp.phrases),
        updated_by=str(doc.updated_by),
        updated_at=str(doc.updated_at),
    )


def rules_to_dict(rules: Rules) -> dict[str, Any]:
    data = asdict(rules)
    data["crisis_phrases"]["phrases"] = list(rules.crisis_phrases.phrases)
    return data


def load_rules(store: ObjectStore) -> Rules:
    """The workspace's alert rules (the defaults when none were saved)."""
    try:
        body = store.get(keys.ALERT_RULES)
    except KeyNotFound:
        return Rules()
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRules(
            f"{keys.ALERT_RULES} is not valid JSON; save the rules again on the Alerts page ({exc})"
        ) from None
    try:
        return rules_from_dict(data)
    except InvalidRules as exc:
        raise InvalidRules(f"{keys.ALERT_RULES}: {exc}") from None


def save_rules(
    store: ObjectStore, rules: Rules, by: str, *, clock: Callable[[], datetime] | None = None, role: str = ""
) -> Rules:
    """Validate and store the rules (the previous versions are kept in rules-history). Returns what was saved."""
    checked = rules_from_dict(rules_to_dict(rules))
    saved = replace(checked, updated_by=by, updated_at=stamp(clock))
    body = json.dumps(rules_to_dict(saved), indent=2, ensure_ascii=False).encode()
    store.put(
        f"{keys.ALERT_RULES_HISTORY}{keys.file_stamp(saved.updated_at)}-{keys.segment(by, default='unknown')}.json",
        body,
        if_absent=True,
    )
    store.put(keys.ALERT_RULES, body)
    log.info("alert rules saved by %s", by)
    audit.try_record(store, by, role, "alert_rules_changed", keys.ALERT_RULES)
    return saved


_APOSTROPHES = dict.fromkeys(map(ord, "'’‘`´ʼ′ʹ"), None)


# Letters from other scripts that look like Latin ones, so "suіcide" with a Cyrillic і still matches.
_LOOKALIKES = str.maketrans("аеорсухіјѕԁһӏοαιερκν", "aeopcyxijsdhloaiepkv")


_WORD_BREAKS = {"\u200b", "\u2060", "\ufeff"}  # zero-width space, word joiner, BOM: read as a space


_NON_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """`text` reduced for phrase matching: Unicode compatibility forms folded (full-width and styled
    letters), case folded, accents and invisible characters dropped, apostrophes removed, every
    other non-letter/digit a single space."""
    if text.isascii():
        folded = text.lower().replace("'", "").replace("`", "")
    else:
        text = text.translate(_APOSTROPHES)  # before NFKC, which splits some of them into space + accent
        decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
        kept = []
        for ch in decomposed:
            category = unicodedata.category(ch)
            if category == "Mn":  # combining accents
                continue
            if category == "Cf":  # zero-width and other format characters
                if ch in _WORD_BREAKS:
                    kept.append(" ")
                continue
            kept.append(ch)
        folded = "".join(kept).translate(_LOOKALIKES).translate(_APOSTROPHES)
    return _NON_WORD.sub(" ", folded).strip()  # [\W_]+ already turns each run into one space


@lru_cache(maxsize=16)
def crisis_matcher(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    norms = sorted({normalise(p) for p in phrases} - {""}, key=len, reverse=True)
    if not norms:
        return None
    # Words may also be run together ("killmyself"); the phrase must start and end on a word boundary.
    alternatives = "|".join(" ?".join(re.escape(word) for word in norm.split()) for norm in norms)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def has_crisis_phrase(text: str, phrases: Sequence[str]) -> bool:
    """Whether `text` holds one of `phrases` as whole words, after normalisation (see `normalise`)."""
    matcher = crisis_matcher(tuple(phrases))
    return matcher is not None and matcher.search(normalise(text)) is not None
