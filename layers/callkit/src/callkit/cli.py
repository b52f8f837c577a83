"""``callkit`` command line: ``callkit demo`` (the whole simulated demo), ``callkit call`` (be the caller)."""

from __future__ import annotations

import argparse
import asyncio
import logging


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="callkit", description="AI phone agents on Twilio and Plivo.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="simulated calls through the local runtime: no accounts, no keys")
    commands.add_parser("call", help="be the caller: type to the agent through the managed-mode stack")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.command == "demo":
        from callkit.demo import run

        raise SystemExit(asyncio.run(run()))
    if args.command == "call":
        from callkit.demo.interactive import main as call

        call()


if __name__ == "__main__":
    main()
