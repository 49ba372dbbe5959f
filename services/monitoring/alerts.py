"""Alerts: who needs attention now.

The rules run on every ingest, over the freshly scored check-ins and the history they need; an
annotator can also flag a check-in as urgent. Everything lives in the store:

    alerts/rules.json                            the rules (the defaults below when absent)
    alerts/rules-history/<stamp>-<who>.json      each saved version of the rules
    alerts/events/<alert id>.json                one alert, written once (create-if-absent), never changed
    alerts/status/<alert id>/<stamp>-<who>.json  acknowledgements and resolutions, append-only; the latest wins

An alert id is a hash of (rule, group, participant, the triggering check-in or the week of the
window), so evaluating the same check-ins twice, or ingesting a file again, adds nothing.

"Now" for the window rules is the latest check-in time among the fresh check-ins, not the wall
clock, so re-ingesting old data gives the same alerts. Sentiment for `baseline_drop` is the
model's expected score, p_positive - p_negative, from -1 (surely negative) to +1 (surely positive):
an unsure prediction counts for less than a sure one.

Message text is sensitive: it never goes into an alert, a log line or an error message. The inbox
looks the triggering check-ins up in the scored partitions, for users allowed to see their group.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from services.access import audit
from services.access.users import User
from services.checkins.partitions import PREFIX as CHECKINS
from services.checkins.partitions import read_scored
from services.errors import AlreadyExists, InvalidKey, KeyNotFound, PulseError
from services.store.base import ObjectStore

if TYPE_CHECKING:
    from services.review.labeling import ReviewItem

log = logging.getLogger(__name__)

RULES_KEY = "alerts/rules.json"
RULES_HISTORY = "alerts/rules-history/"
EVENTS = "alerts/events/"
STATUS = "alerts/status/"

WINDOW = timedelta(days=7)  # "the last 7 days" of the window rules
BASELINE = timedelta(days=28)  # a participant's own baseline: the 28 days before that window
WEEK_ZERO = pd.Timestamp("1970-01-05", tz="UTC")  # a Monday: window alerts are keyed by the week they end in

SEVERITIES = ("critical", "warning", "info")  # most urgent first
STATUSES = ("open", "acknowledged", "resolved")
RULE_TITLES = {
    "crisis_phrases": "Crisis language",
    "manual": "Flagged as urgent",
    "consecutive_negative": "Negative streak",
    "baseline_drop": "Drop below own baseline",
    "group_negative_share": "Group mostly negative",
}
SEVERITY = {
    "crisis_phrases": "critical",
    "manual": "critical",
    "consecutive_negative": "warning",
    "baseline_drop": "warning",
    "group_negative_share": "info",
}
MAX_NOTE = 1000
MAX_IDS = 200  # check-in ids kept on one alert (a group window can hold thousands)
MAX_PHRASES = 500
PHRASE_CHARS = (3, 100)
_ID = re.compile(r"^[0-9a-f]{24}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidRules(PulseError):
    """Alert rules with a value Pulse cannot use; the message names the field and its valid range."""


class InvalidNote(PulseError):
    """A status note that is missing (resolving needs one) or too long."""


class NotAllowed(PulseError):
    """The user may not see or change this alert (annotators, or a manager outside their groups)."""


class AlertNotFound(PulseError):
    """No alert (or check-in) with that id."""


# ------------------------------------------------------------------------------------------- rules


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


def _section(data: dict[str, Any], name: str) -> Any:
    cls = SECTIONS[name]
    raw = data.get(name, {})
    if not isinstance(raw, dict):
        raise InvalidRules(f"{name} must be an object of settings")
    known = [f.name for f in fields(cls)]
    extra = sorted(set(raw) - set(known))
    if extra:
        raise InvalidRules(f"{name}: unknown setting(s) {', '.join(extra)}; known: {', '.join(known)}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{name}.{key}"
        if key == "enabled":
            if not isinstance(value, bool):
                raise InvalidRules(f"{path} must be true or false, got {_shown(value)}")
            values[key] = value
        elif key == "phrases":
            values[key] = _check_phrases(path, value)
        else:
            values[key] = _check_number(path, value)
    return cls(**values)


def rules_from_dict(data: Any) -> Rules:
    """Validated rules from their JSON form; raises `InvalidRules` naming the bad field and its range.
    Missing rules or settings take their defaults."""
    if not isinstance(data, dict):
        raise InvalidRules("alert rules must be a JSON object with one entry per rule")
    extra = sorted(set(data) - {*SECTIONS, "updated_by", "updated_at"})
    if extra:
        raise InvalidRules(f"unknown alert rule(s) {', '.join(extra)}; known: {', '.join(SECTIONS)}")
    return Rules(
        consecutive_negative=_section(data, "consecutive_negative"),
        baseline_drop=_section(data, "baseline_drop"),
        group_negative_share=_section(data, "group_negative_share"),
        crisis_phrases=_section(data, "crisis_phrases"),
        updated_by=str(data.get("updated_by", "")),
        updated_at=str(data.get("updated_at", "")),
    )


def rules_to_dict(rules: Rules) -> dict[str, Any]:
    data = asdict(rules)
    data["crisis_phrases"]["phrases"] = list(rules.crisis_phrases.phrases)
    return data


def load_rules(store: ObjectStore) -> Rules:
    """The workspace's alert rules (the defaults when none were saved)."""
    try:
        body = store.get(RULES_KEY)
    except KeyNotFound:
        return Rules()
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRules(f"{RULES_KEY} is not valid JSON; save the rules again on the Alerts page ({exc})") from None
    try:
        return rules_from_dict(data)
    except InvalidRules as exc:
        raise InvalidRules(f"{RULES_KEY}: {exc}") from None


def save_rules(
    store: ObjectStore, rules: Rules, by: str, *, clock: Callable[[], datetime] | None = None, role: str = ""
) -> Rules:
    """Validate and store the rules (the previous versions are kept in rules-history). Returns what was saved."""
    checked = rules_from_dict(rules_to_dict(rules))
    saved = replace(checked, updated_by=by, updated_at=_stamp(clock))
    body = json.dumps(rules_to_dict(saved), indent=2, ensure_ascii=False).encode()
    store.put(f"{RULES_HISTORY}{_file_stamp(saved.updated_at)}-{_who(by)}.json", body, if_absent=True)
    store.put(RULES_KEY, body)
    log.info("alert rules saved by %s", by)
    audit.try_record(store, by, role, "alert_rules_changed", "alerts/rules.json")
    return saved


# ---------------------------------------------------------------------------------- crisis phrases

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
def _matcher(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    norms = sorted({normalise(p) for p in phrases} - {""}, key=len, reverse=True)
    if not norms:
        return None
    # Words may also be run together ("killmyself"); the phrase must start and end on a word boundary.
    alternatives = "|".join(" ?".join(re.escape(word) for word in norm.split()) for norm in norms)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def has_crisis_phrase(text: str, phrases: Sequence[str]) -> bool:
    """Whether `text` holds one of `phrases` as whole words, after normalisation (see `normalise`)."""
    matcher = _matcher(tuple(phrases))
    return matcher is not None and matcher.search(normalise(text)) is not None


# ------------------------------------------------------------------------------------------ alerts


@dataclass(frozen=True)
class StatusChange:
    """Someone acknowledged or resolved an alert. Stored as its own object; the latest wins."""

    alert_id: str
    status: str  # "acknowledged" or "resolved"
    by: str
    at: str
    note: str = ""


@dataclass(frozen=True)
class Alert:
    """Someone (or a group) who needs attention. Never holds message text."""

    id: str
    rule: str
    severity: str  # critical, warning or info
    group: str
    participant: str | None  # None for group rules
    created_at: str  # when the alert was raised
    at: str  # time of the latest triggering check-in (or the end of the window)
    checkin_ids: tuple[str, ...]
    reason: str  # short, human-readable, without message text
    by: str = "rules"  # "rules", or the annotator who flagged it
    note: str = ""  # the annotator's note on a manual flag
    status: str = "open"  # derived from the status changes, not stored with the event
    history: tuple[StatusChange, ...] = ()

    @property
    def title(self) -> str:
        return RULE_TITLES.get(self.rule, self.rule)


def alert_id(rule: str, group: str, participant: str | None, key: str) -> str:
    """The deterministic id of an alert: the same trigger always gives the same id."""
    raw = "\x1f".join((rule, group, participant or "", key))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def event_key(alert_id: str) -> str:
    return f"{EVENTS}{alert_id}.json"


def _stamp(clock: Callable[[], datetime] | None = None) -> str:
    return (clock or (lambda: datetime.now(UTC)))().astimezone(UTC).isoformat(timespec="microseconds")


def _file_stamp(iso: str) -> str:
    return iso.replace(":", "").replace("-", "").replace("+", "p").replace(".", "")


def _who(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._@-" else "_" for c in name)[:64] or "unknown"


def _iso(ts: pd.Timestamp) -> str:
    return str(pd.Timestamp(ts).tz_convert("UTC").isoformat())


def _encode(alert: Alert) -> bytes:
    data = asdict(alert)
    data.pop("status")
    data.pop("history")
    data["checkin_ids"] = list(alert.checkin_ids)
    return json.dumps(data, ensure_ascii=False, indent=1).encode()


def _decode(body: bytes) -> Alert:
    raw = json.loads(body)
    if not isinstance(raw, dict):
        raise ValueError("not an object")
    names = {f.name for f in fields(Alert)} - {"status", "history"}
    values = {k: v for k, v in raw.items() if k in names}
    values["checkin_ids"] = tuple(str(i) for i in values.get("checkin_ids", ()))
    return Alert(**values)


# ------------------------------------------------------------------------------------- evaluation

HISTORY_COLUMNS = ["id", "participant", "group", "time", "label", "p_negative", "p_positive"]


def _history(store: ObjectStore, fresh: pd.DataFrame) -> pd.DataFrame:
    """The fresh check-ins and the stored ones of the same participants and groups, in time order."""
    history = read_scored(store, HISTORY_COLUMNS, groups=sorted(fresh["group"].unique()))
    parts = [p for p in (history, fresh[HISTORY_COLUMNS]) if not p.empty]
    frame = pd.concat(parts, ignore_index=True).drop_duplicates("id", keep="last")
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame.sort_values(["time", "id"], kind="stable").reset_index(drop=True)


def _person_rows(frame: pd.DataFrame, fresh: pd.DataFrame) -> pd.DataFrame:
    """The rows of the participants (of a group) that have fresh check-ins."""
    people = pd.MultiIndex.from_frame(fresh[["group", "participant"]].drop_duplicates())
    return frame[pd.MultiIndex.from_frame(frame[["group", "participant"]]).isin(people)]


def _week_key(now: pd.Timestamp) -> str:
    start = WEEK_ZERO + timedelta(days=7 * ((now - WEEK_ZERO).days // 7))
    return f"week-{start:%Y-%m-%d}"


def _newest_ids(rows: pd.DataFrame) -> tuple[str, ...]:
    return tuple(str(i) for i in rows["id"].tolist()[-MAX_IDS:])


def _crisis_alerts(fresh: pd.DataFrame, phrases: Sequence[str], created_at: str) -> list[Alert]:
    matcher = _matcher(tuple(phrases))
    if matcher is None:
        return []
    hits = [matcher.search(normalise(str(text))) is not None for text in fresh["text"]]
    return [
        Alert(
            id=alert_id("crisis_phrases", row.group, row.participant, str(row.id)),
            rule="crisis_phrases",
            severity=SEVERITY["crisis_phrases"],
            group=str(row.group),
            participant=str(row.participant),
            created_at=created_at,
            at=_iso(row.time),
            checkin_ids=(str(row.id),),
            reason="a check-in holds crisis or self-harm language from the phrase list",
        )
        for row in fresh.loc[hits, ["id", "participant", "group", "time"]].itertuples(index=False)
    ]


def _streak_alerts(
    people: pd.DataFrame, fresh_ids: set[str], rule: ConsecutiveNegative, now: pd.Timestamp, created_at: str
) -> list[Alert]:
    """Runs of `rule.count`+ negatives that hold a fresh check-in and whose last check-in is within
    the last 7 days (a backfill does not raise streaks that ended long ago). A streak is keyed by its
    first check-in, so one that grows later raises nothing new. Vectorised: a workspace can hold
    tens of thousands of participants."""
    rows = people.sort_values(["group", "participant", "time", "id"], kind="stable").reset_index(drop=True)
    negative = rows["label"].eq("negative")
    same_person = rows["group"].eq(rows["group"].shift()) & rows["participant"].eq(rows["participant"].shift())
    rows = rows.assign(
        run=(~(same_person & negative.eq(negative.shift()))).cumsum(),
        fresh=rows["id"].astype(str).isin(fresh_ids),
    )[negative]
    runs = rows.groupby("run").agg(n=("id", "size"), last=("time", "max"), fresh=("fresh", "any"))
    wanted = runs[(runs["n"] >= rule.count) & (runs["last"] > now - WINDOW) & runs["fresh"]].index
    out = []
    for _, run in rows[rows["run"].isin(wanted)].groupby("run", sort=True):
        ids = [str(i) for i in run["id"]]
        first, last = run["time"].iloc[0], run["time"].iloc[-1]
        group, participant = str(run["group"].iloc[0]), str(run["participant"].iloc[0])
        out.append(
            Alert(
                id=alert_id("consecutive_negative", group, participant, ids[0]),
                rule="consecutive_negative",
                severity=SEVERITY["consecutive_negative"],
                group=group,
                participant=participant,
                created_at=created_at,
                at=_iso(last),
                checkin_ids=tuple(ids[-MAX_IDS:]),
                reason=f"{len(ids)} negative check-ins in a row ({first:%Y-%m-%d} to {last:%Y-%m-%d})",
            )
        )
    return out


def _baseline_alerts(people: pd.DataFrame, rule: BaselineDrop, now: pd.Timestamp, created_at: str) -> list[Alert]:
    window_start, base_start = now - WINDOW, now - WINDOW - BASELINE
    rows = people[(people["time"] > base_start) & (people["time"] <= now)]
    rows = rows.assign(
        score=rows["p_positive"].astype(float) - rows["p_negative"].astype(float),
        recent=rows["time"] > window_start,
    )
    stats = rows.groupby(["group", "participant", "recent"])["score"].agg(["size", "mean"]).unstack("recent")
    if True not in stats["size"].columns or False not in stats["size"].columns:
        return []  # nobody has check-ins in both windows
    n_recent, n_base = stats["size"][True].fillna(0), stats["size"][False].fillna(0)
    mean_recent, mean_base = stats["mean"][True], stats["mean"][False]
    hit = (n_recent >= rule.min_checkins) & (n_base >= rule.min_checkins) & (mean_base - mean_recent > rule.drop)
    out = []
    for group, participant in stats.index[hit.to_numpy()]:
        recent = rows[rows["recent"] & rows["group"].eq(group) & rows["participant"].eq(participant)]
        key = (group, participant)
        out.append(
            Alert(
                id=alert_id("baseline_drop", group, participant, _week_key(now)),
                rule="baseline_drop",
                severity=SEVERITY["baseline_drop"],
                group=str(group),
                participant=str(participant),
                created_at=created_at,
                at=_iso(recent["time"].max()),
                checkin_ids=_newest_ids(recent),
                reason=f"mean mood {mean_recent[key]:+.2f} over the 7 days to {now:%Y-%m-%d} "
                f"({int(n_recent[key])} check-ins), down from {mean_base[key]:+.2f} over the 28 days before "
                f"({int(n_base[key])} check-ins); scale -1 to +1",
            )
        )
    return out


def _group_alerts(
    frame: pd.DataFrame, groups: Iterable[str], rule: GroupNegativeShare, now: pd.Timestamp, created_at: str
) -> list[Alert]:
    window = frame[(frame["time"] > now - WINDOW) & (frame["time"] <= now) & frame["group"].isin(list(groups))]
    out = []
    for group, rows in window.groupby("group", sort=True):
        negative = rows[rows["label"] == "negative"]
        share = len(negative) / len(rows)
        if len(rows) >= rule.min_checkins and share > rule.share:
            out.append(
                Alert(
                    id=alert_id("group_negative_share", group, None, _week_key(now)),
                    rule="group_negative_share",
                    severity=SEVERITY["group_negative_share"],
                    group=str(group),
                    participant=None,
                    created_at=created_at,
                    at=_iso(rows["time"].max()),
                    checkin_ids=_newest_ids(negative),
                    reason=f"{share:.0%} of {len(rows)} check-ins in the 7 days to {now:%Y-%m-%d} were negative "
                    f"(threshold {rule.share:.0%})",
                )
            )
    return out


def evaluate_alerts(
    store: ObjectStore,
    fresh: pd.DataFrame,
    *,
    rules: Rules | None = None,
    notifier: Notifier | None = None,
    clock: Callable[[], datetime] | None = None,
) -> list[Alert]:
    """Raise the alerts that freshly scored check-ins (columns of `services.scored.SCHEMA`) call for,
    store the new ones and publish each once through `notifier`. Returns the new alerts only: an
    alert already stored (same rule, subject and trigger) is not raised again.

    Reads the history it needs: the stored check-ins of the fresh rows' groups."""
    if fresh.empty:
        return []
    rules = rules if rules is not None else load_rules(store)
    created_at = _stamp(clock)
    fresh = fresh.assign(time=pd.to_datetime(fresh["time"], utc=True))
    now = fresh["time"].max()
    found: list[Alert] = []
    if rules.crisis_phrases.enabled:
        found += _crisis_alerts(fresh, rules.crisis_phrases.phrases, created_at)
    window_rules = (rules.consecutive_negative, rules.baseline_drop, rules.group_negative_share)
    if any(r.enabled for r in window_rules):
        frame = _history(store, fresh)
        people = _person_rows(frame, fresh)
        if rules.consecutive_negative.enabled:
            fresh_ids = {str(i) for i in fresh["id"]}
            found += _streak_alerts(people, fresh_ids, rules.consecutive_negative, now, created_at)
        if rules.baseline_drop.enabled:
            found += _baseline_alerts(people, rules.baseline_drop, now, created_at)
        if rules.group_negative_share.enabled:
            found += _group_alerts(frame, fresh["group"].unique(), rules.group_negative_share, now, created_at)
    return _store_new(store, found, notifier)


def _store_new(store: ObjectStore, alerts: list[Alert], notifier: Notifier | None) -> list[Alert]:
    new = []
    for alert in alerts:
        try:
            store.put(event_key(alert.id), _encode(alert), if_absent=True)
        except AlreadyExists:
            continue  # raised before: by an earlier ingest or evaluation
        new.append(alert)
        if notifier is not None:
            notifier.publish(alert)
    if new:
        counts = Counter(a.rule for a in new)
        log.info("%d new alerts: %s", len(new), ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return new


# ----------------------------------------------------------------------------------- manual flags


def _find_checkin(store: ObjectStore, checkin_id: str, day: str | None) -> dict[str, Any] | None:
    """participant, group and time of one check-in: from its day's partitions when the day is known,
    else from the review item, else from every partition."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    columns = ["id", "participant", "group", "time"]
    if day and _DAY.match(day):
        for key in store.list(f"{CHECKINS}date={day}/"):
            if key.endswith(".parquet"):
                table = pq.read_table(io.BytesIO(store.get(key)), columns=columns)
                hits = table.filter(pc.equal(table.column("id"), checkin_id)).to_pylist()
                if hits:
                    return dict(hits[0])
    try:
        item = json.loads(store.get(f"review/unrecognized/{checkin_id}.json"))
        return {"id": checkin_id, "participant": item["participant"], "group": item["group"], "time": item["time"]}
    except (KeyNotFound, InvalidKey, ValueError, KeyError, TypeError):
        pass
    frame = read_scored(store, columns)
    hits = frame[frame["id"] == checkin_id]
    return hits.iloc[0].to_dict() if len(hits) else None


def _check_note(note: str, *, required: bool = False) -> str:
    note = note.strip()
    if required and not note:
        raise InvalidNote("write a note saying what was done before resolving the alert")
    if len(note) > MAX_NOTE:
        raise InvalidNote(f"the note is longer than {MAX_NOTE} characters")
    return note


def flag_urgent(
    store: ObjectStore,
    item: ReviewItem | str,
    by: str,
    note: str = "",
    *,
    notifier: Notifier | None = None,
    clock: Callable[[], datetime] | None = None,
    role: str = "",
) -> Alert:
    """An annotator's "flag as urgent" on a review item (or a check-in id): a critical alert for the
    managers of its group. Flagging the same check-in again returns the alert already raised."""
    checkin_id = item if isinstance(item, str) else item.id
    day = None if isinstance(item, str) else item.time[:10]
    row = _find_checkin(store, checkin_id, day) if checkin_id else None
    if row is None:
        raise AlertNotFound("that check-in is not in the workspace; it may have been removed")
    note = _check_note(note)
    group, participant = str(row["group"]), str(row["participant"])
    alert = Alert(
        id=alert_id("manual", group, participant, checkin_id),
        rule="manual",
        severity=SEVERITY["manual"],
        group=group,
        participant=participant,
        created_at=_stamp(clock),
        at=_iso(pd.Timestamp(row["time"])),
        checkin_ids=(checkin_id,),
        reason=f"flagged as urgent by {by}",
        by=by,
        note=note,
    )
    try:
        store.put(event_key(alert.id), _encode(alert), if_absent=True)
    except AlreadyExists:
        return _decode(store.get(event_key(alert.id)))
    log.info("alert %s raised: a check-in flagged as urgent by %s", alert.id, by)
    audit.try_record(store, by, role, "flag_urgent", alert.id, {"group": group})
    if notifier is not None:
        notifier.publish(alert)
    return alert


# ---------------------------------------------------------------------------------------- queries


def _refuse(user: User, action: str, alert_id: str = "", store: ObjectStore | None = None) -> NotAllowed:
    log.warning("refused: %s (%s) may not %s %s", user.name, user.role, action, alert_id or "alerts")
    if store is not None:
        audit.try_record(store, user.name, user.role, "access_denied", alert_id or "alerts", {"action": action})
    if user.role == "manager":
        return NotAllowed("this alert belongs to a group you do not look after")
    return NotAllowed("only managers and admins can see and act on alerts")


def _readable(user: User, store: ObjectStore) -> None:
    if user.role not in ("manager", "admin"):
        raise _refuse(user, "list", store=store)


def _read_many(store: ObjectStore, keys: list[str]) -> list[tuple[str, bytes]]:
    # Each read is a file or an S3 GET, both waiting on I/O.
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(zip(keys, pool.map(store.get, keys), strict=True))


def _statuses(store: ObjectStore, prefix: str) -> dict[str, list[StatusChange]]:
    keys = [k for k in store.list(prefix) if k.endswith(".json")]
    out: dict[str, list[StatusChange]] = {}
    for key, body in _read_many(store, keys):
        try:
            change = StatusChange(**json.loads(body))
        except (ValueError, TypeError):
            log.warning("status file %s cannot be read; skipped", key)
            continue
        out.setdefault(change.alert_id, []).append(change)
    return out


def _with_status(alert: Alert, changes: list[StatusChange]) -> Alert:
    ordered = tuple(sorted(changes, key=lambda c: c.at))
    return replace(alert, status=ordered[-1].status if ordered else "open", history=ordered)


def inbox_order(alerts: Iterable[Alert]) -> list[Alert]:
    """Open first, then acknowledged, then resolved; the most severe first; the newest first."""
    newest_first = sorted(alerts, key=lambda a: (a.at, a.id), reverse=True)
    return sorted(newest_first, key=lambda a: (STATUSES.index(a.status), SEVERITIES.index(a.severity)))


def list_alerts(store: ObjectStore, user: User, status: str | None = None) -> list[Alert]:
    """The alerts `user` may see, in inbox order: admins every group, managers their groups.
    Annotators are refused (`NotAllowed`, and the attempt is logged). `status` keeps only one status."""
    _readable(user, store)
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    keys = [k for k in store.list(EVENTS) if k.endswith(".json")]
    alerts = []
    for key, body in _read_many(store, keys):
        try:
            alert = _decode(body)
        except (ValueError, TypeError):
            log.warning("alert file %s cannot be read; skipped", key)
            continue
        if user.can_see_group(alert.group):
            alerts.append(alert)
    changes = _statuses(store, STATUS)
    shown = [_with_status(a, changes.get(a.id, [])) for a in alerts]
    return inbox_order(a for a in shown if status is None or a.status == status)


def get_alert(store: ObjectStore, alert_id: str, user: User) -> Alert:
    """One alert with its status history, if `user` may see it."""
    _readable(user, store)
    if not _ID.match(alert_id):
        raise AlertNotFound("no alert with that id")
    try:
        alert = _decode(store.get(event_key(alert_id)))
    except KeyNotFound:
        raise AlertNotFound("no alert with that id") from None
    if not user.can_see_group(alert.group):
        raise _refuse(user, "see alert", alert_id, store)
    return _with_status(alert, _statuses(store, f"{STATUS}{alert_id}/").get(alert_id, []))


def _change(
    store: ObjectStore, alert_id: str, user: User, status: str, note: str, clock: Callable[[], datetime] | None
) -> Alert:
    alert = get_alert(store, alert_id, user)
    note = _check_note(note, required=status == "resolved")
    for attempt in range(3):
        change = StatusChange(alert.id, status, user.name, _stamp(clock if attempt == 0 else None), note)
        key = f"{STATUS}{alert.id}/{_file_stamp(change.at)}-{_who(user.name)}.json"
        try:
            store.put(key, json.dumps(asdict(change), ensure_ascii=False).encode(), if_absent=True)
            break
        except AlreadyExists:  # two changes by one person in the same microsecond: take a new stamp
            if attempt == 2:
                raise
    log.info("alert %s %s by %s", alert.id, status, user.name)
    return get_alert(store, alert.id, user)


def acknowledge(
    store: ObjectStore, alert_id: str, user: User, note: str = "", *, clock: Callable[[], datetime] | None = None
) -> Alert:
    """Record that `user` has seen the alert and is on it. Managers only for their groups."""
    return _change(store, alert_id, user, "acknowledged", note, clock)


def resolve(
    store: ObjectStore, alert_id: str, user: User, note: str, *, clock: Callable[[], datetime] | None = None
) -> Alert:
    """Close the alert with a note saying what was done. Managers only for their groups."""
    return _change(store, alert_id, user, "resolved", note, clock)


def alert_checkins(store: ObjectStore, alert_id: str, user: User) -> pd.DataFrame:
    """The check-ins that triggered an alert (time, label, confidence, text), oldest first, for a
    user allowed to see its group. The text is for display as plain text only."""
    alert = get_alert(store, alert_id, user)
    columns = ["id", "time", "label", "confidence", "text"]
    frame = read_scored(store, columns, groups=[alert.group])
    frame = frame[frame["id"].isin(alert.checkin_ids)].sort_values(["time", "id"])
    return frame.reset_index(drop=True)


# ------------------------------------------------------------------------------ delivery (SNS)


class Notifier(Protocol):
    """Delivers a new alert somewhere outside Pulse. Returns False (and logs) when it could not; never raises."""

    def publish(self, alert: Alert) -> bool: ...
