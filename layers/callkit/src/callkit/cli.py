"""``callkit`` command line: ``callkit demo`` runs the simulated-call demo."""

from __future__ import annotations

import argparse
import asyncio
import logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="callkit", description="AI phone agents on Twilio and Plivo.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run a whole simulated call locally: no accounts, no keys")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.command == "demo":
        from callkit.demo import run

        raise SystemExit(asyncio.run(run()))


if __name__ == "__main__":
    main()
