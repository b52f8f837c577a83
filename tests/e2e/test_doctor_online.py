"""``callkit doctor --online`` against loopback fakes of every service it calls.

All credentials right: every check ok. One wrong key: that service's checks are ``refused`` with
the fix, the key never printed. A service that refuses connections or never answers:
``unreachable`` within the bound. A number that sends calls elsewhere: a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callkit.cli import doctor
from callkit.testing.carrier_api import FakeCarrierApi
from callkit.testing.cartesia import FakeCartesia
from callkit.testing.deepgram import TEST_DEEPGRAM_API_KEY, FakeDeepgram
from callkit.testing.openai_chat import ScriptedChatServer

TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "twilio-token-0123456789abcdef"
PLIVO_ID = "MAFAKEAUTHID00000001"
PLIVO_TOKEN = "plivo-token-0123456789abcdef"
OPENAI_KEY = "sk-test-0123456789abcdef"
CARTESIA_KEY = "sk_car_test_0123456789abcdef"
VOICE = "a0e99841-438c-4a64-b679-ae501e7d6091"
PUBLIC_URL = "https://abcd.ngrok.app"
TWILIO_NUMBER = "+15550009011"
PLIVO_NUMBER = "+15550009012"
WEBHOOK = {TWILIO_NUMBER: f"{PUBLIC_URL}/call/twilio", PLIVO_NUMBER: f"{PUBLIC_URL}/call/plivo"}
SECRETS = (TWILIO_TOKEN, PLIVO_TOKEN, OPENAI_KEY, CARTESIA_KEY, TEST_DEEPGRAM_API_KEY)
WRONG = "wrong-key-0123456789-zzzz"


class Fakes:
    """The carriers' REST API, OpenAI, Deepgram and Cartesia on loopback, on a loop in a thread:
    ``doctor`` runs its own ``asyncio.run``."""

    def __init__(self, numbers: dict[str, str | None], *, openai_models: tuple[str, ...] = ()) -> None:
        self.carriers = FakeCarrierApi({TWILIO_SID: TWILIO_TOKEN, PLIVO_ID: PLIVO_TOKEN}, numbers)
        self.openai = ScriptedChatServer(
            api_key=OPENAI_KEY, model=openai_models[0] if openai_models else "gpt-4o-mini"
        )
        self.deepgram = FakeDeepgram(api_key=TEST_DEEPGRAM_API_KEY)
        self.cartesia = FakeCartesia(api_key=CARTESIA_KEY, voices={VOICE: "Calm Lady"})
        self.silent_port = 0  # accepts connections and never answers
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._main(),), daemon=True
        )

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        held: list[asyncio.StreamWriter] = []

        def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)

        async with contextlib.AsyncExitStack() as stack:
            for fake in (self.carriers, self.openai, self.deepgram, self.cartesia):
                await stack.enter_async_context(fake)
            silent = await asyncio.start_server(hold, "127.0.0.1", 0)
            self.silent_port = silent.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            for writer in held:
                writer.close()
            silent.close()
            await silent.wait_closed()

    def __enter__(self) -> Fakes:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with Fakes(dict(WEBHOOK)) as running:
        yield running


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fakes: Fakes, **overrides: Any) -> str:
    """A Twilio and a Plivo cascading interface whose services are the fakes (``overrides``: env)."""
    env = {
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "PLIVO_AUTH_ID": PLIVO_ID,
        "PLIVO_AUTH_TOKEN": PLIVO_TOKEN,
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": fakes.openai.base_url,
        "DEEPGRAM_API_KEY": TEST_DEEPGRAM_API_KEY,
        "CARTESIA_API_KEY": CARTESIA_KEY,
        "CALLKIT_TWILIO_API_URL": fakes.carriers.base_url,
        "CALLKIT_PLIVO_API_URL": fakes.carriers.base_url,
        "DEEPGRAM_URL": fakes.deepgram.base_url,
        "CARTESIA_URL": fakes.cartesia.base_url,
    } | overrides
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("CALLKIT_PUBLIC_URL", "CALLKIT_RELAY_URL", "CALLKIT_MEDIA_URL", "CALLKIT_TABLE"):
        monkeypatch.delenv(name, raising=False)
    name = "doctor_online_app"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            import os

            from callkit import CallInterface
            from callkit.examples import support_agent
            from callkit.stt.deepgram import DeepgramSTT
            from callkit.tts.cartesia import CartesiaTTS

            def voice(provider, number):
                return CallInterface(
                    agent=support_agent, provider=provider, phone_number=number, pipeline="cascading",
                    webhook_path=f"/call/{{provider}}", stream_path=f"/stream/{{provider}}",
                    stt=DeepgramSTT(base_url=os.environ["DEEPGRAM_URL"]),
                    tts=CartesiaTTS(voice_id={VOICE!r}, base_url=os.environ["CARTESIA_URL"]),
                )

            interfaces = [voice("twilio", {TWILIO_NUMBER!r}), voice("plivo", {PLIVO_NUMBER!r})]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(__import__("sys").modules, name, raising=False)
    return f"{name}:interfaces"


def run(spec: str, *, timeout: float = 10.0) -> tuple[int, str]:
    out = io.StringIO()
    code = doctor(spec, public_url=PUBLIC_URL, online=True, timeout=timeout, out=out)
    text = out.getvalue()
    for secret in (*SECRETS, WRONG):
        assert secret not in text
    return code, text


def lines(text: str, status: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(f"{status} ")]


def test_every_credential_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fakes: Fakes) -> None:
    code, text = run(app(tmp_path, monkeypatch, fakes))
    assert code == 0, text
    assert "online checks (read-only calls, 10 s at most):" in text
    ok = lines(text, "ok")
    assert len(ok) == 7, text  # two accounts, two numbers, OpenAI, Deepgram, Cartesia
    assert "ok          Twilio account: account …1111 accepts the auth token" in ok
    assert (
        "ok          Twilio number of the twilio cascading interface (/call/twilio): "
        "calls go to our webhook https://abcd.ngrok.app/call/twilio" in ok
    )
    assert (
        "ok          Plivo number of the plivo cascading interface (/call/plivo): "
        "calls go to our webhook https://abcd.ngrok.app/call/plivo" in ok
    )
    assert "ok          OpenAI models: the key is accepted and 'gpt-4o-mini' is available" in ok
    assert "ok          Deepgram projects: the key …cdef is accepted" in ok
    assert f"ok          Cartesia voice: the key is accepted and voice {VOICE!r} (Calm Lady) exists" in ok
    assert "every credential works" in text
    assert TWILIO_NUMBER not in text and PLIVO_NUMBER not in text


TWILIO_CHECKS = ["Twilio account", "Twilio number of the twilio cascading interface (/call/twilio)"]
PLIVO_CHECKS = ["Plivo account", "Plivo number of the plivo cascading interface (/call/plivo)"]


@pytest.mark.parametrize(
    ("variable", "checks", "fix"),
    [
        ("TWILIO_AUTH_TOKEN", TWILIO_CHECKS, "set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"),
        ("PLIVO_AUTH_TOKEN", PLIVO_CHECKS, "set PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN"),
        ("OPENAI_API_KEY", ["OpenAI models"], "export OPENAI_API_KEY=sk-…"),
        ("DEEPGRAM_API_KEY", ["Deepgram projects"], "export DEEPGRAM_API_KEY=…"),
        ("CARTESIA_API_KEY", ["Cartesia voice"], "export CARTESIA_API_KEY=…"),
    ],
)
def test_a_wrong_key_is_refused_with_its_fix(
    variable: str, checks: list[str], fix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fakes: Fakes
) -> None:
    code, text = run(app(tmp_path, monkeypatch, fakes, **{variable: WRONG}))
    assert code == 1, text
    assert lines(text, "refused") == [
        f"refused     {check}: HTTP 401: …zzzz was refused" for check in checks
    ], text
    assert text.count(f"fix: {fix}") == len(checks), text
    assert len(lines(text, "ok")) == 7 - len(checks), text
    assert f"{len(checks)} online check{'s' * (len(checks) != 1)} failed" in text


def test_unreachable_services_are_reported_within_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fakes: Fakes
) -> None:
    spec = app(
        tmp_path,
        monkeypatch,
        fakes,
        OPENAI_BASE_URL=f"http://127.0.0.1:{closed_port()}/v1",
        DEEPGRAM_URL=f"ws://127.0.0.1:{fakes.silent_port}/v1/listen",
    )
    started = time.monotonic()
    code, text = run(spec, timeout=1.0)
    elapsed = time.monotonic() - started
    assert code == 1, text
    assert elapsed < 3.0, elapsed
    unreachable = lines(text, "unreachable")
    assert len(unreachable) == 2, text
    assert unreachable[0].startswith("unreachable OpenAI models: cannot connect to http://127.0.0.1:")
    assert unreachable[1] == "unreachable Deepgram projects: no answer within 1 s"
    assert text.count("fix: check the network, a proxy (HTTPS_PROXY) or the base URL (127.0.0.1:") == 2
    assert len(lines(text, "ok")) == 5, text


def test_a_number_that_calls_elsewhere_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    numbers: dict[str, str | None] = {
        TWILIO_NUMBER: "https://user:secret@old.example.com/voice?x=1",
        PLIVO_NUMBER: None,
    }
    with Fakes(numbers) as elsewhere:
        code, text = run(app(tmp_path, monkeypatch, elsewhere))
    assert code == 0, text  # a warning is not a failure: the credentials work
    warnings = lines(text, "warning")
    assert warnings == [
        "warning     Twilio number of the twilio cascading interface (/call/twilio): calls go to "
        "https://old.example.com/voice, not to our webhook https://abcd.ngrok.app/call/twilio",
        "warning     Plivo number of the plivo cascading interface (/call/plivo): "
        "the number has no application: its calls reach no answer URL",
    ], text
    assert "secret" not in text
    assert (
        'fix: Twilio Console → Phone Numbers → the number → Voice configuration → "A call comes in": '
        "Webhook https://abcd.ngrok.app/call/twilio (HTTP POST)" in text
    )
    assert (
        "fix: Plivo Console → Phone Numbers → the number → Application: choose an application whose "
        "Answer URL is https://abcd.ngrok.app/call/plivo (POST)" in text
    )


def test_a_number_not_in_the_account_and_a_model_not_offered_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Fakes({}, openai_models=("gpt-4.1",)) as empty:
        code, text = run(app(tmp_path, monkeypatch, empty))
    assert code == 1, text
    missing = lines(text, "missing")
    assert [line.split(":", 1)[1].strip() for line in missing] == [
        "the number is not in account …1111",
        "the number is not in account …0001",
        "the key is accepted, but the agent's model 'gpt-4o-mini' is not in its list",
    ], text
    assert "3 online checks failed" in text
