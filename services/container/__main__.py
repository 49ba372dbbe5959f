"""`python -m services.container train|serve [--root /opt/ml]`: the Pulse image's entry points
(SageMaker runs the image with the argument `train` for a training job and `serve` for an endpoint
or a transform job)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.container.layout import DEFAULT_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.container", description=__doc__)
    parser.add_argument("command", choices=("train", "serve"))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the folder that stands for /opt/ml")
    parser.add_argument("--host", default="0.0.0.0", help="serve: the address to listen on")  # noqa: S104
    parser.add_argument("--port", type=int, default=None, help="serve: the port (SAGEMAKER_BIND_TO_PORT, else 8080)")
    args = parser.parse_args(argv)
    if args.command == "train":
        from services.container.train import main as train

        return train(args.root)
    from services.container.serve import main as serve

    return serve(args.root, host=args.host, port=args.port)


if __name__ == "__main__":
    sys.exit(main())
