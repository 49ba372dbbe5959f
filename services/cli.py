"""Command line: `python -m services.cli {ingest,demo,bootstrap,add-user} ...`."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from services.auth import ROLES, add_user
from services.config import Settings, load_settings
from services.errors import PulseError
from services.workspace import open_workspace


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"workspace": Path(args.workspace)} if getattr(args, "workspace", None) else {}
    return load_settings(**overrides)


def cmd_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from services.ingest import ingest

    ws = open_workspace(_settings(args))
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
            threshold=ws.settings.review_threshold,
            max_chars=ws.settings.max_text_chars,
            progress=progress,
        )
    prefix = "already ingested earlier; " if report.repeated else ""
    print(prefix + report.summary())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from services.demo import build_demo

    ws = open_workspace(_settings(args))
    if any(True for _ in ws.store.list("ingest/batches/")) and not args.force:
        print(f"{ws.store.describe()} already holds check-ins; nothing to do (use --force to add the demo anyway)")
        return 0
    reports = build_demo(ws.store, ws.endpoint, threshold=ws.settings.review_threshold, progress=print)
    for report in reports:
        print(report.summary())
    print(f"demo workspace ready in {ws.store.describe()}")
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    from services.training import train_bootstrap

    ws = open_workspace(_settings(args))
    dep = train_bootstrap(ws.store, by=args.by)
    print(f"bootstrap model {dep.version} trained and deployed in {ws.store.describe()}")
    return 0


def cmd_add_user(args: argparse.Namespace) -> int:
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.cli", description="Pulse command line")
    p.add_argument("--verbose", action="store_true", help="log progress to stderr")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("--workspace", help="local workspace folder (default: PULSE_WORKSPACE or ./workspace)")
        return sp

    sp = command("ingest", "score a CSV, JSON lines or Parquet file of check-ins into the workspace")
    sp.add_argument("file")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except PulseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
