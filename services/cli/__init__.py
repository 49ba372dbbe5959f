"""The command line, `python -m services.cli COMMAND ...`: the workspace (ingest, demo, bootstrap,
add-user, unlock, gold), the model lifecycle (dataset, train, evaluate, promote, rollback), serving
(serve) and the benchmark. Each command opens the workspace the settings name and calls the same
services as the app; a domain error is printed as one line and exits with 2."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.access.users import ROLES, add_user
from services.cli.models import add_import_model
from services.config import Settings, load_settings
from services.errors import PulseError
from services.model.corpus import read_labelled_csv
from services.model.params import TrainParams, validate_params
from services.store import keys
from services.workspace import Workspace, open_workspace

if TYPE_CHECKING:
    from services.lifecycle.switch import Switch


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"workspace": Path(args.workspace)} if getattr(args, "workspace", None) else {}
    return load_settings(**overrides)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Score a file of check-ins into the workspace; print accepted / rejected / sent to review. With
    --watch, ingest every file that lands in a folder or an S3 prefix instead, each once."""
    from tqdm import tqdm

    from services.checkins.ingest import ingest
    from services.checkins.times import validate_time_format
    from services.monitoring.threshold import effective_threshold

    try:
        time_format = validate_time_format(args.time_format)
    except ValueError as exc:
        raise PulseError(str(exc)) from None
    interval = 10.0 if args.interval is None else args.interval
    if ((args.once or args.interval is not None) and args.watch is None) or not interval > 0:
        raise PulseError("--once and --interval SECONDS (more than 0) go with --watch")
    ws = open_workspace(_settings(args))
    if args.watch is not None:
        return _watch(ws, args.watch, args.once, interval, time_format)
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PulseError(f"cannot read {path}: {exc.strerror}") from None
    with tqdm(total=0, unit="check-ins", desc="scoring", disable=args.quiet or None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        report = ingest(
            ws.store,
            ws.endpoint,
            data,
            path.name,
            threshold=effective_threshold(ws.store, ws.settings),
            max_chars=ws.settings.max_text_chars,
            progress=progress,
            notifier=ws.notifier,
            time_format=time_format,
        )
    prefix = "already ingested earlier; " if report.repeated else ""
    print(prefix + report.summary())
    return 0


def _watch(ws: Workspace, source: str, once: bool, interval: float, time_format: str | None) -> int:
    """`ingest --watch`: a line per file until SIGTERM or Ctrl-C (between files); --once: a single pass."""
    import signal
    import threading

    from services.aws.inbox import s3_inbox
    from services.checkins.intake import FolderInbox, Intake

    inbox = s3_inbox(source, ws.settings) if source.startswith("s3://") else FolderInbox(source)
    intake = Intake(ws.store, ws.endpoint, inbox, settings=ws.settings, notifier=ws.notifier, time_format=time_format)
    intake.on_file = lambda handled: print(handled.line(), flush=True)
    stop = threading.Event()

    def stop_between_files(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops mid-file

    previous = {s: signal.signal(s, stop_between_files) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if once:
            return 1 if any(h.state == "pending" for h in intake.run_once(stop)) else 0
        print(f"watching {inbox.describe()} every {interval:g} s (Ctrl-C stops)", file=sys.stderr, flush=True)
        intake.watch(interval, stop, on_error=lambda exc: print(f"error: {exc}", file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        print("stopped mid-file: the next pass ingests that file again", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _bootstrap_deploy(ws: Workspace) -> dict[str, Any]:
    """How the bootstrap model goes live: the local pointer, or the SageMaker endpoint, which serves
    the family picked as locally with the Pulse model image, and fastText only with BlazingText."""
    if ws.settings.models_kind == "sagemaker":
        return {"deployer": ws.deployer, "family": "auto" if ws.settings.sagemaker_model_image else "fasttext"}
    return {}


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the demo workspace (bootstrap model + 90 days of check-ins) unless it holds check-ins."""
    from services.demo import build_demo
    from services.monitoring.threshold import effective_threshold

    ws = open_workspace(_settings(args))
    if any(True for _ in ws.store.list(keys.INGEST_BATCHES)) and not args.force:
        print(f"{ws.store.describe()} already holds check-ins; nothing to do (use --force to add the demo anyway)")
        return 0
    threshold = effective_threshold(ws.store, ws.settings)
    reports = build_demo(ws.store, ws.endpoint, threshold=threshold, progress=print, **_bootstrap_deploy(ws))
    for report in reports:
        print(report.summary())
    print(f"demo workspace ready in {ws.store.describe()}")
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    """Train the bootstrap model on the shipped corpus, register it and make it live."""
    from services.lifecycle.training import train_bootstrap

    ws = open_workspace(_settings(args))
    dep = train_bootstrap(ws.store, by=args.by, **_bootstrap_deploy(ws))
    print(f"bootstrap model {dep.version} trained and deployed in {ws.store.describe()}")
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
    """Add or update a password sign-in user (the password from a prompt or standard input)."""
    ws = open_workspace(_settings(args))
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise PulseError("the two passwords differ")
    groups = [g.strip() for g in (args.groups or "").split(",") if g.strip()]
    user = add_user(ws.store, args.name, password, args.role, groups)
    print(f"user {user.name} ({user.role}) saved in {ws.store.describe()}")
    return 0


def cmd_unlock(args: argparse.Namespace) -> int:
    """Lift a sign-in lockout (or a delay) of a user name, or of a client address with --client."""
    from services.access.audit import try_record
    from services.access.throttle import Limits, Throttle

    ws = open_workspace(_settings(args))
    throttle = Throttle(ws.store, Limits.from_settings(ws.settings))
    kind, value = ("client", args.client) if args.client else ("user", args.name)
    if not value:
        raise PulseError("name a user, or a client address with --client")
    before = throttle.clear(throttle.subject(kind, value))
    state = "was locked" if before.locked and before.wait_seconds > 0 else "was not locked"
    print(f"{kind} {value}: {state} ({before.failures} recent failed attempts); the count is lifted")
    try_record(ws.store, args.by, "cli", "sign_in_unlocked", value, {"scope": kind, "failures": before.failures})
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    """Build a dataset version from the base corpus and every human label (audited)."""
    from services.lifecycle.datasets import build_dataset

    ws = open_workspace(_settings(args))
    m = build_dataset(ws.store, by=args.by, seed=args.seed, validation_share=args.validation_share, base=args.base)
    from services.access.audit import rows_per_split, try_record

    try_record(ws.store, args.by, "cli", "dataset_built", m.version, rows_per_split(m.counts))
    print(f"dataset {m.version}: train {m.counts['train']}, validation {m.counts['validation']}")
    print(f"  sources {m.sources}; dropped {m.dropped or 'none'}; {len(m.conflicts)} conflicting items")
    return 0


def _params(args: argparse.Namespace) -> TrainParams:
    given = {
        k: getattr(args, k)
        for k in ("epoch", "lr", "dim", "word_ngrams", "minn", "maxn")
        if getattr(args, k) is not None
    }
    return validate_params(TrainParams(**given))


def cmd_train(args: argparse.Namespace) -> int:
    """Train on a dataset version (default: the newest) with the default pipeline and register it."""
    from services.lifecycle.datasets import list_datasets
    from services.lifecycle.training import run_training

    ws = open_workspace(_settings(args), search_seconds=args.search_seconds)
    known = list_datasets(ws.store)
    dataset = args.dataset or (known[-1] if known else None)
    if dataset is None:
        raise PulseError("no dataset yet: run `python -m services.cli dataset` first")
    run = run_training(
        ws.store,
        ws.trainer,
        dataset,
        params=_params(args),
        by=args.by,
        max_chars=ws.settings.max_text_chars,
        progress=lambda share, line: print(f"[{share:4.0%}] {line}", flush=True),
        name_prefix=ws.settings.sagemaker_name_prefix,
    )
    if run.status != "Completed":
        print(f"training {run.job_name} {run.status}: {run.failure_reason or ''}", file=sys.stderr)
        return 1
    print(f"registered {run.model_version}: {run.metrics}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Compare a version with the live one on the gold set: the gate's verdict, without deploying."""
    from services.lifecycle.promotion import gate

    ws = open_workspace(_settings(args))
    verdict = gate(ws.store, args.version, margin=ws.settings.gate_margin)
    print(verdict.explain())
    print(json.dumps(verdict.candidate_metrics, indent=2))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """Gate a version on the gold set and deploy it (with --override when the gate refuses)."""
    from services.lifecycle.switch import switch_to

    ws = open_workspace(_settings(args))
    done = switch_to(ws, args.version, by=args.by, reason=args.reason, override_reason=args.override, role="cli")
    assert done.verdict is not None
    print(done.verdict.explain())
    print(f"{done.deployment.version} is live (previous: {done.deployment.previous})")
    _say_queue(done)
    return 0


def _say_queue(done: Switch) -> None:
    if done.rerank_problem:
        print(f"the review queue keeps its order: {done.rerank_problem}", file=sys.stderr)
    elif done.reranked:
        print(f"review queue re-ranked by {done.deployment.version} ({done.reranked:,} items)")


def cmd_rollback(args: argparse.Namespace) -> int:
    """Put the previous version back in one step (no gate: it served before)."""
    from services.lifecycle.switch import roll_back

    ws = open_workspace(_settings(args))
    done = roll_back(ws, by=args.by, reason=args.reason, role="cli")
    print(f"rolled back: {done.deployment.version} is live again")
    _say_queue(done)
    return 0


def cmd_gold(args: argparse.Namespace) -> int:
    """Import a text,label CSV file as part of the gold set."""
    from services.lifecycle.gold import import_gold

    ws = open_workspace(_settings(args))
    rows = read_labelled_csv(Path(args.file))
    key = import_gold(ws.store, Path(args.file).stem, rows)
    print(f"{len(rows)} gold messages stored in {key}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Train the default pipeline on one labelled CSV and evaluate it on another."""
    from services.model.benchmark import run_benchmark

    result = run_benchmark(
        read_labelled_csv(Path(args.train)), read_labelled_csv(Path(args.test)), search_seconds=args.search_seconds
    )
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the live model over HTTP with SageMaker's container contract (/ping, /invocations)."""
    from services.lifecycle.serve import run

    run(_settings(args), host=args.host, port=args.port)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.cli", description="Pulse command line")
    p.add_argument("--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("--workspace", help="local workspace folder (default: PULSE_WORKSPACE or ./workspace)")
        return sp

    sp = command("ingest", "score a CSV, JSON lines or Parquet file of check-ins into the workspace")
    what = sp.add_mutually_exclusive_group(required=True)
    what.add_argument("file", nargs="?", help="the file to ingest")
    what.add_argument(
        "--watch", metavar="SOURCE", help="ingest each file landing in this folder or s3://bucket/prefix/"
    )
    sp.add_argument("--once", action="store_true", help="with --watch: one pass over the inbox, then exit")
    sp.add_argument("--interval", type=float, metavar="SECONDS", help="with --watch: seconds between passes (10)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument(
        "--time-format",
        help="how dates like 03/04/2026 are meant: day-first, month-first, or a strftime pattern such as "
        "'%%d.%%m.%%Y %%H:%%M' (default: such dates are rejected as ambiguous; ISO 8601 is always read)",
    )
    sp.set_defaults(func=cmd_ingest)
    sp = command("demo", "build the demo workspace (bootstrap model + 90 days of check-ins)")
    sp.add_argument("--force", action="store_true")
    sp.set_defaults(func=cmd_demo)
    sp = command("bootstrap", "train the bootstrap model from the shipped corpus and deploy it")
    sp.add_argument("--by", default=getpass.getuser())
    sp.set_defaults(func=cmd_bootstrap)
    sp = command("add-user", "add or update a user for password sign-in")
    sp.add_argument("name")
    sp.add_argument("--role", required=True, choices=ROLES)
    sp.add_argument("--groups", help="comma-separated groups a manager may see")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sp.set_defaults(func=cmd_add_user)
    sp = command("unlock", "lift a password sign-in lockout of a user name (or of a client address)")
    sp.add_argument("name", nargs="?", default="")
    sp.add_argument("--client", help="a client address instead of a user name")
    sp.add_argument("--by", default=getpass.getuser())
    sp.set_defaults(func=cmd_unlock)
    sp = command("dataset", "build a dataset version from the base corpus and all human labels")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--validation-share", type=float, default=0.2)
    sp.add_argument(
        "--base",
        default="checkin-corpus",
        help="base corpus: checkin-corpus (the shipped one), bootstrap-corpus (before it) or none",
    )
    sp.add_argument("--by", default=getpass.getuser())
    sp.set_defaults(func=cmd_dataset)
    sp = command("train", "train a model on a dataset version and register it")
    sp.add_argument("--dataset", help="dataset version (default: the newest)")
    sp.add_argument("--search-seconds", type=float, default=0.0, help="hyperparameter search budget")
    for name, kind in (("epoch", int), ("lr", float), ("dim", int), ("word-ngrams", int), ("minn", int), ("maxn", int)):
        sp.add_argument(f"--{name}", type=kind)
    sp.add_argument("--by", default=getpass.getuser())
    sp.set_defaults(func=cmd_train)
    sp = command("evaluate", "evaluate a model version against the live one on the gold set")
    sp.add_argument("version")
    sp.set_defaults(func=cmd_evaluate)
    sp = command("promote", "gate a model version on the gold set and deploy it")
    sp.add_argument("version")
    sp.add_argument("--reason", default="promoted from the command line")
    sp.add_argument("--override", help="deploy even if the gate refuses; this written reason is recorded")
    sp.add_argument("--by", default=getpass.getuser())
    sp.set_defaults(func=cmd_promote)
    sp = command("rollback", "put the previous model version back")
    sp.add_argument("--reason", required=True)
    sp.add_argument("--by", default=getpass.getuser())
    sp.set_defaults(func=cmd_rollback)
    sp = command("gold", "import a labelled CSV (text,label) as part of the gold set")
    sp.add_argument("file")
    sp.set_defaults(func=cmd_gold)
    sp = command("serve", "serve the live model over HTTP (SageMaker container contract: /ping, /invocations)")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8080)
    sp.set_defaults(func=cmd_serve)
    sp = sub.add_parser("benchmark", help="train the default pipeline on A.csv, evaluate on B.csv (text,label)")
    sp.add_argument("--train", required=True)
    sp.add_argument("--test", required=True)
    sp.add_argument("--search-seconds", type=float, default=0.0)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_benchmark)
    add_import_model(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except (PulseError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
