"""``callkit`` command line.

``callkit demo`` (the whole simulated demo), ``callkit call`` (be the caller), ``callkit doctor``
(the startup checks of ``callkit.preflight``, offline, with what to paste into the carrier console;
with ``--online`` also the read-only calls of ``callkit.probes`` that try each credential).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, get_args

from callkit.errors import ConfigurationError
from callkit.preflight import Component
from callkit.telemetry import FieldsFormatter

if TYPE_CHECKING:
    from callkit.interface import CallInterface
    from callkit.settings import Settings

_AS: dict[Component, str] = {
    "runtime": "the local runtime (AgentRuntime)",
    "webhook": "the webhook function",
    "relay": "the relay function",
    "media": "the media server",
}


def doctor(
    app: str | None = None,
    *,
    public_url: str | None = None,
    component: Component = "runtime",
    online: bool = False,
    timeout: float = 10.0,
    out: TextIO = sys.stdout,
) -> int:
    """Check the interfaces of ``app`` (``module:attribute``, default ``CALLKIT_APP``) as ``component``.

    Prints every problem with its fix, then what to paste into the carrier console; 0 when there
    is nothing to fix. Offline, keys are checked for presence; ``online`` also tries them with
    read-only calls (``callkit.probes``), all within ``timeout`` seconds, and any that fails is 1.
    """
    from callkit import preflight
    from callkit.app_loader import load_interfaces
    from callkit.settings import Settings, served_from

    # Where `callkit_app` lives in this repository, and the usual place for the user's own module.
    for folder in (Path.cwd() / "functions", Path.cwd()):
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    try:
        settings = Settings.from_env()
        spec = app or settings.app
        interfaces = load_interfaces(spec)
        if component == "runtime":
            local = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
            settings = served_from(settings, public_url or settings.public_url or local)
        elif public_url:
            settings = served_from(settings, public_url)
    except (ConfigurationError, ImportError) as error:
        out.write(f"callkit doctor: cannot load the app: {error}\n")
        return 2
    problems = preflight.check(interfaces, settings, component=component)
    count = len(interfaces)
    out.write(
        f"callkit doctor: {count} interface{'s' * (count != 1)} from {spec}, checked as {_AS[component]}\n"
    )
    if settings.public_url:
        out.write(f"  public URL: {settings.public_url}\n")
    if settings.relay_url and any(i.pipeline == "managed" for i in interfaces):
        out.write(f"  relay URL:  {settings.relay_url}\n")
    if settings.media_url and any(i.pipeline != "managed" for i in interfaces):
        out.write(f"  media URL:  {settings.media_url}\n")
    if problems:
        out.write(f"\n{len(problems)} problem{'s' * (len(problems) != 1)} to fix before the first call:\n")
        for number, problem in enumerate(problems, 1):
            out.write(f"  {number}. {problem.subject}: {problem.problem}\n     fix: {problem.fix}\n")
    else:
        out.write("\nno problems found: every interface has what its calls need\n")
    out.write("\npaste into the carrier console:\n")
    for line in preflight.carrier_console(interfaces, settings):
        out.write(f"  {line}\n")
    failed = _online(interfaces, settings, timeout, out) if online else 0
    return 1 if problems or failed else 0


def _online(interfaces: list[CallInterface], settings: Settings, timeout: float, out: TextIO) -> int:
    """Run the online checks and print one line each (fix below); how many failed."""
    from dataclasses import replace

    from callkit import probes
    from callkit.preflight import is_local

    if is_local(settings.public_url):
        # No carrier calls a local URL: the numbers' voice URLs are shown, not compared with it.
        settings = replace(settings, public_url="")
    findings = asyncio.run(probes.run(probes.plan(interfaces, settings), within=timeout))
    out.write(f"\nonline checks (read-only calls, {timeout:g} s at most):\n")
    for finding in findings:
        out.write(f"  {finding.status:<11} {finding.service} {finding.check}: {finding.detail}\n")
        if finding.fix and finding.status != "ok":
            out.write(f"  {'':<11} fix: {finding.fix}\n")
    failed = sum(finding.failed for finding in findings)
    if failed:
        out.write(f"\n{failed} online check{'s' * (failed != 1)} failed\n")
    else:
        out.write("\nevery credential works\n")
    return failed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="callkit", description="AI phone agents on Twilio and Plivo.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="simulated calls through the local runtime: no accounts, no keys")
    commands.add_parser("call", help="be the caller: type to the agent through the managed-mode stack")
    check = commands.add_parser(
        "doctor", help="check keys, credentials and URLs before the first call (offline unless --online)"
    )
    check.add_argument(
        "--app", help="module:attribute of your interfaces (default: CALLKIT_APP or callkit_app:interfaces)"
    )
    check.add_argument("--public-url", help="the URL carriers reach (default: CALLKIT_PUBLIC_URL)")
    check.add_argument(
        "--as",
        dest="component",
        choices=get_args(Component),
        default="runtime",
        help="check what this part needs: the local runtime (default) or a deployed function / the media server",
    )
    check.add_argument(
        "--online",
        action="store_true",
        help="also try each credential with read-only calls to the carriers and providers (keys masked)",
    )
    check.add_argument(
        "--timeout", type=float, default=10.0, help="seconds the online checks may take in all (default 10)"
    )
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(FieldsFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.ERROR, handlers=[handler])
    if args.command == "demo":
        from callkit.demo import run

        raise SystemExit(asyncio.run(run()))
    if args.command == "call":
        from callkit.demo.interactive import main as call

        call()
    if args.command == "doctor":
        raise SystemExit(
            doctor(
                args.app,
                public_url=args.public_url,
                component=args.component,
                online=args.online,
                timeout=args.timeout,
            )
        )


if __name__ == "__main__":
    main()
