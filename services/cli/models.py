"""`python -m services.cli import-model`: register a model trained outside Pulse as a version."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from services.errors import ModelUnavailable
from services.model.prediction import PREPROCESSINGS, PULSE_PREPROCESSING
from services.workspace import open_workspace


def add_import_model(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser(
        "import-model",
        help="register an outside model.tar.gz or fastText .bin (a file, s3://..., or --training-job NAME)",
    )
    sp.add_argument("--workspace", help="local workspace folder (default: PULSE_WORKSPACE or ./workspace)")
    what = sp.add_mutually_exclusive_group(required=True)
    what.add_argument("source", nargs="?", help="a model.tar.gz or .bin file, or s3://bucket/key")
    what.add_argument("--training-job", metavar="NAME", help="a completed SageMaker training job's model")
    sp.add_argument("--labels", help="the model's labels as Pulse's, e.g. 0=negative,1=neutral,2=positive")
    sp.add_argument(
        "--preprocessing",
        choices=PREPROCESSINGS,
        default=PULSE_PREPROCESSING,
        help="how the model's training text was prepared: Pulse's rules (pulse-v2, the default, as Pulse's "
        "datasets and BlazingText jobs on them), lower-cased words (lowercase), or the words as written (none)",
    )
    sp.add_argument("--by", default=getpass.getuser())
    sp.set_defaults(func=cmd_import_model)


def cmd_import_model(args: argparse.Namespace) -> int:
    """Read the model, check its labels, evaluate it on the gold set and register it (not deployed)."""
    from services.cli import _settings
    from services.lifecycle.imports import import_model, parse_labels
    from services.lifecycle.promotion import gate

    settings = _settings(args)
    ws = open_workspace(settings)
    labels = parse_labels(args.labels) if args.labels else None
    if args.training_job or str(args.source).startswith("s3://"):
        from services.aws.artifacts import read_s3_artifact, training_job_artifact

        source = training_job_artifact(settings, args.training_job) if args.training_job else args.source
        blob = read_s3_artifact(settings, source)
    else:
        source = args.source
        path = Path(source)
        if not path.is_file():
            raise ModelUnavailable(f"{source} is not a file (give a model.tar.gz, a .bin, or s3://bucket/key)")
        blob = path.read_bytes()
    card = import_model(ws.store, blob, source=source, by=args.by, labels=labels, preprocessing=args.preprocessing)
    print(f"registered {card.version} ({card.family}, preprocessing {card.preprocessing}) from {source}")
    print(gate(ws.store, card.version, margin=ws.settings.gate_margin).explain())
    print(f"deploy it with: python -m services.cli promote {card.version}")
    return 0
