"""The app under 50 sessions at once: a real `streamlit run` server on 127.0.0.1 with a copy of the demo
workspace, and 50 browser-less websocket sessions (tests/benchmarks/st_client.py, one asyncio loop in
this process). Each signs in as the demo manager, opens Trends, waits for the others, then refreshes
Trends REFRESHES times. One session alone refreshing Trends, in the same run, is the baseline.

A run's time is what a browser waits: from the rerun request to the run's `script_finished`, every
element received. Only behaviour is asserted (every session signed in, every run finished and drew
the Trends page, no exception element), never a timing. Bounded: REFRESHES runs per session and
TIME_LIMIT seconds of refreshing under load.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.access.users import ROLES
from tests.benchmarks.results import write_result
from tests.benchmarks.st_client import RunResult, Session, choice, trigger
from tests.benchmarks.test_serve_load import _cpu_seconds
from tests.e2e.conftest import start_app

SESSIONS = 50
REFRESHES = 5  # Trends refreshes per session under load
BASELINE_RUNS = 10  # Trends refreshes of the session alone
SIGN_IN_LIMIT = 120.0  # seconds for all sessions to sign in and open Trends
TIME_LIMIT = 90.0  # seconds of refreshing under load; sessions stop early when it is up
# What a full Trends page draws, as RunResult.outline() names it (labels and headings, no message text).
TRENDS_PAGE = (
    "heading:Trends",
    "multiselect:Groups",
    "metric:Mean sentiment",
    "heading:Participants",
    "selectbox:Read the check-ins of",
)


@dataclass
class Load:
    sessions: int = 0
    signed_in: int = 0
    runs: list[float] = field(default_factory=list)  # seconds of each finished Trends refresh
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the refreshing
    sign_in_seconds: float = 0.0  # wall time until every session had Trends open
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    def fail(self, why: str) -> None:
        self.errors += 1
        if len(self.first_errors) < 5:
            self.first_errors.append(why)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.runs)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def trends_problem(session: Session, result: RunResult) -> str | None:
    """Why `result` is not a full Trends page, or None. Names elements only, never their text."""
    shown = result.outline()
    if result.exceptions or result.compile_errors:
        return f"{len(result.exceptions)} exception element(s), compile errors {result.compile_errors}"
    if result.page_script_hash != session.pages.get("trends"):
        return f"ran another page than Trends: {shown}"
    missing = [name for name in TRENDS_PAGE if name not in shown]
    if missing or shown.count("plotly_chart:") != 2:
        return f"Trends is missing {missing} or a chart: {shown}"
    return None


async def open_trends(url: str) -> Session:
    """A new session signed in as the demo manager (radio + button, as a person would) on Trends."""
    session = Session(url)
    await session.connect()
    try:
        sign_in = await session.run()
        role, button = sign_in.widget("radio", "Sign in as"), sign_in.widget("button", "Sign in")
        home = await session.run(widgets=[choice(role, ROLES.index("manager")), trigger(button.id)])
        if home.exceptions or not home.shows("Signed in as"):
            raise AssertionError(f"sign-in did not lead to the home page: {home.outline()}")
        trends = await session.run(page="trends")
        if why := trends_problem(session, trends):
            raise AssertionError(f"opening Trends: {why}")
    except BaseException:
        session.close()
        raise
    return session


async def crowd(url: str, pid: int, n: int, refreshes: int) -> Load:
    """n sessions sign in and open Trends at once; once all have, each refreshes it `refreshes` times."""
    out = Load(sessions=n)
    began = time.perf_counter()
    opened = await asyncio.gather(
        *(asyncio.wait_for(open_trends(url), SIGN_IN_LIMIT) for _ in range(n)), return_exceptions=True
    )
    out.sign_in_seconds = time.perf_counter() - began
    sessions = [s for s in opened if isinstance(s, Session)]
    for failed in (e for e in opened if not isinstance(e, Session)):
        out.fail(f"sign-in: {type(failed).__name__}: {failed}")
    out.signed_in = len(sessions)

    async def refresh(session: Session, deadline: float) -> None:
        try:
            for _ in range(refreshes):
                if time.monotonic() >= deadline:
                    return
                result = await session.run()  # the same page and widget values: the browser's rerun
                out.runs.append(result.seconds)
                if why := trends_problem(session, result):
                    out.fail(why)
        except Exception as exc:
            out.fail(f"refresh: {type(exc).__name__}: {exc}")
        finally:
            session.close()

    server_cpu, client_cpu = _cpu_seconds(pid), time.process_time()
    began = time.perf_counter()
    deadline = time.monotonic() + TIME_LIMIT
    await asyncio.gather(*(refresh(s, deadline) for s in sessions))
    out.seconds = time.perf_counter() - began
    out.server_cpu, out.client_cpu = _cpu_seconds(pid) - server_cpu, time.process_time() - client_cpu
    return out


def test_app_sessions(workspace_copy: Path, tmp_path: Path) -> None:
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure below
    proc, url = start_app(workspace_copy)
    try:
        alone = asyncio.run(crowd(url, proc.pid, 1, BASELINE_RUNS))
        many = asyncio.run(crowd(url, proc.pid, SESSIONS, REFRESHES))
    finally:
        proc.terminate()
        proc.wait(timeout=15)

    base = alone.percentile(0.5)
    out = io.StringIO()
    print(
        f"\napp sessions: `streamlit run app.py` on 127.0.0.1 (demo workspace), browser-less websocket "
        f"sessions signed in as the demo manager refreshing Trends; {os.cpu_count()} cores, "
        f"load average {load_before:.1f} before",
        file=out,
    )
    print(
        f"  {'sessions':>8}{'runs':>6}{'errors':>8}{'p50 s':>8}{'p99 s':>8}{'runs/s':>8}{'p50 vs 1':>10}"
        f"{'sign-in s':>11}{'server CPU/run':>16}{'client CPU':>12}",
        file=out,
    )
    for r in (alone, many):
        print(
            f"  {r.sessions:>8}{len(r.runs):>6}{r.errors:>8}{r.percentile(0.5):>8.3f}{r.percentile(0.99):>8.3f}"
            f"{len(r.runs) / r.seconds:>8.2f}{r.percentile(0.5) / base:>9.1f}x{r.sign_in_seconds:>11.1f}"
            f"{r.server_cpu / max(1, len(r.runs)):>14.3f} s{r.client_cpu:>11.1f}s",
            file=out,
        )
    print(out.getvalue())
    write_result(
        "app_sessions",
        f"The app under {SESSIONS} concurrent sessions refreshing Trends (`streamlit run`, 127.0.0.1)",
        ["sessions", "Trends runs", "errors", "p50 s", "p99 s", "runs/s", "p50 vs 1 session"],
        [
            [
                r.sessions,
                len(r.runs),
                r.errors,
                round(r.percentile(0.5), 3),
                round(r.percentile(0.99), 3),
                round(len(r.runs) / r.seconds, 2),
                f"{r.percentile(0.5) / base:.1f}x",
            ]
            for r in (alone, many)
        ],
        [
            f"Browser-less websocket sessions (tests/benchmarks/st_client.py) each sign in as the demo manager, "
            f"open Trends, then refresh it ({BASELINE_RUNS} times alone, {REFRESHES} times each under load, "
            f"all {SESSIONS} at once). A run: from the rerun request to `script_finished`, every element received.",
            f"Server CPU per Trends run: {alone.server_cpu / max(1, len(alone.runs)):.3f} s alone, "
            f"{many.server_cpu / max(1, len(many.runs)):.3f} s under load; all {SESSIONS} sessions signed in and "
            f"opened Trends in {many.sign_in_seconds:.1f} s; load average {load_before:.1f} before the run.",
        ],
    )

    for r in (alone, many):
        assert r.signed_in == r.sessions, f"{r.sessions} sessions: {r.first_errors}"
        assert r.errors == 0, f"{r.sessions} sessions: {r.errors} failed, first: {r.first_errors}"
        assert len(r.runs) >= r.sessions, f"{r.sessions} sessions: only {len(r.runs)} runs in {TIME_LIMIT} s"
