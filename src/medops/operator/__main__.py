"""``python -m medops.operator``: run the operator for all namespaces, or the ones named."""

from __future__ import annotations

import argparse
import logging

import kopf

from medops.operator import handlers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m medops.operator", description=__doc__)
    parser.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch only these (repeatable)"
    )
    parser.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="probe URL")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger(__name__).info("medops operator, sync every %ss", handlers.SYNC_SECONDS)
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
    )


if __name__ == "__main__":
    main()
