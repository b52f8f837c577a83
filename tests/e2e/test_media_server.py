"""The media server container's process: readiness, draining on SIGTERM (with a call that had bad
frames too), refusing new calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest
from moto.server import ThreadedMotoServer

from callkit import AgentRuntime, CallInterface
from callkit.aws_clients import AwsClients
from callkit.carriers._types import PlayAudio
from callkit.examples import support_agent
from callkit.llm.openai_chat import OpenAIChatModel
from callkit.settings import Settings
from callkit.store import DynamoDBCallStore, create_table
from callkit.stt.deepgram import DeepgramSTT
from callkit.testing import SimulatedCarrier
from callkit.testing.carrier_api import FakeCarrierApi
from callkit.testing.cartesia import FakeCartesia
from callkit.testing.deepgram import TEST_DEEPGRAM_API_KEY, FakeDeepgram
from callkit.testing.openai_chat import ScriptedChatServer, support_script
from callkit.testing.stream_client import SimulatedMediaStream, silence
from callkit.tts.cartesia import CartesiaTTS
from media_server.scaling import DEFAULT_DRAIN_MARGIN_SECONDS

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "AC" + "0" * 32  # media_env's TWILIO_ACCOUNT_SID
PHONE = "+15550007001"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def media_env(port: int) -> dict[str, str]:
    """A cascading deployment's media task: everything its calls need (keys are never used here)."""
    return {
        **os.environ,
        "PORT": str(port),
        "PYTHONPATH": str(ROOT / "functions"),
        "CALLKIT_PIPELINE": "cascading",
        "CALLKIT_PUBLIC_URL": "https://voice.example.com",
        "CALLKIT_MEDIA_URL": f"ws://127.0.0.1:{port}",
        "CALLKIT_TABLE": "",
        "CALLKIT_TOKEN_KEY": "k" * 64,
        "TWILIO_AUTH_TOKEN": "t",
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "OPENAI_API_KEY": "sk-test",
        "DEEPGRAM_API_KEY": "dg-test",
        "CARTESIA_API_KEY": "ca-test",
        "CARTESIA_VOICE_ID": "voice-1",
        "CALLKIT_DRAIN_MARGIN_SECONDS": "1",
    }


def test_the_media_server_refuses_to_start_without_its_keys() -> None:
    env = {
        k: v for k, v in media_env(free_port()).items() if k not in ("DEEPGRAM_API_KEY", "CARTESIA_VOICE_ID")
    }
    result = subprocess.run(
        [sys.executable, "-m", "media_server"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "callkit cannot take calls yet (2 problems)" in result.stderr
    assert "DEEPGRAM_API_KEY" in result.stderr and "voice_id" in result.stderr


def test_sigterm_drains_and_exits() -> None:
    port = free_port()
    env = media_env(port)
    process = subprocess.Popen(
        [sys.executable, "-m", "media_server"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if get(f"http://127.0.0.1:{port}/readyz") == 200:
                    break
            except OSError:
                time.sleep(0.1)
        assert get(f"http://127.0.0.1:{port}/healthz") == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        output, _ = process.communicate(timeout=10)
    assert "drained: 0 call(s)" in output, output


def test_sigterm_with_a_call_that_had_bad_frames_exits_within_the_stop_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: a live call gets bad frames (wrong sizes, nesting, binary, a 5,000-key DTMF), then
    SIGTERM while the carrier still holds the call: the server drains for the stop timeout (minus
    the margin; media_server/scaling.py), closes the call and exits before the stop timeout
    (template.yaml's StopTimeout, scaled down here) would kill it, and logs nothing unhandled."""
    # template.yaml's StopTimeout is 120 s; scaled down here, the drain's margin is scaling.py's
    # default (15 s), so the drain waits 5 s for the call before the server closes it.
    stop_timeout, margin = 20.0, DEFAULT_DRAIN_MARGIN_SECONDS
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, moto_port = moto.get_host_and_port()
    aws = {
        "AWS_ENDPOINT_URL": f"http://{host}:{moto_port}",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    urllib.request.urlopen(
        urllib.request.Request(f"{aws['AWS_ENDPOINT_URL']}/moto-api/reset", method="POST"), timeout=5
    ).close()
    table = AwsClients().client("dynamodb")
    create_table(table, "calls")
    log_path = tmp_path / "media.log"

    async def scenario() -> tuple[float, str]:
        async with (
            ScriptedChatServer(support_script) as llm,
            FakeDeepgram(["Where is my order 1001?"]) as deepgram,
            FakeCartesia() as cartesia,
            FakeCarrierApi({ACCOUNT: "t"}) as api,
        ):
            env = {
                **media_env(port),
                **aws,
                "PYTHONPATH": os.pathsep.join(
                    [str(ROOT / "functions"), str(ROOT / "tests" / "e2e" / "apps")]
                ),
                "CALLKIT_APP": "fake_providers_app:interfaces",
                "CALLKIT_PHONE_NUMBER": PHONE,
                "CALLKIT_TABLE": "calls",
                "CALLKIT_TWILIO_API_URL": api.base_url,
                "FAKE_DEEPGRAM_URL": deepgram.base_url,
                "FAKE_CARTESIA_URL": cartesia.base_url,
                "DEEPGRAM_API_KEY": TEST_DEEPGRAM_API_KEY,
                "OPENAI_BASE_URL": llm.base_url,
                "CALLKIT_STOP_TIMEOUT_SECONDS": str(stop_timeout),
            }
            with log_path.open("w") as log:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "media_server", env=env, stdout=log, stderr=subprocess.STDOUT
                )
            try:
                async with httpx.AsyncClient(timeout=5) as http:
                    for _ in range(300):
                        with contextlib.suppress(httpx.TransportError):
                            if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                                break
                        await asyncio.sleep(0.1)
                    interface = CallInterface(
                        provider="twilio",
                        phone_number=PHONE,
                        account_sid=ACCOUNT,
                        auth_token="t",
                        pipeline="cascading",
                        stt=DeepgramSTT(api_key="unused"),
                        tts=CartesiaTTS(api_key="unused", voice_id="voice-1"),
                    )
                    settings = Settings(
                        table="calls", media_url=f"ws://127.0.0.1:{port}", token_key=env["CALLKIT_TOKEN_KEY"]
                    )
                    store = DynamoDBCallStore("calls", table)
                    async with AgentRuntime(
                        support_agent,
                        [interface],
                        port=0,
                        settings=settings,
                        store=store,
                        model=OpenAIChatModel("gpt-4o-mini", base_url=llm.base_url, api_key="test"),  # unused
                    ) as webhook:
                        carrier = SimulatedCarrier(
                            "twilio", base_url=webhook.url, auth_token="t", account_id=ACCOUNT, client=http
                        )
                        request = carrier.incoming_call(to=PHONE)
                        call_id = request.form["CallSid"][0]
                        answer = (await carrier.send(request)).answer
                        assert answer is not None and answer.kind == "stream"
                        stream = SimulatedMediaStream(
                            answer, provider="twilio", call_id=call_id, account_id=ACCOUNT, auth_token="t"
                        )
                        await stream.connect()
                        for _ in range(500):  # the greeting, played
                            if (
                                any(isinstance(c, PlayAudio) for c in stream.received)
                                and not stream.queued_ms
                            ):
                                break
                            await asyncio.sleep(0.02)
                        assert any(isinstance(c, PlayAudio) for c in stream.received), "no greeting"
                        for frame in (
                            stream.media_frame(b"\xff" * 320),
                            stream.media_frame(b"\xff" * 80),
                            stream.media_frame(b""),
                            stream.media_frame(b"\xff" * 161),
                            '{"event":"start","start":' + '{"a":' * 2000 + "1" + "}" * 2000 + "}",
                            b"\x00\x01binary",
                            json.dumps(
                                {
                                    "event": "dtmf",
                                    "streamSid": stream.stream_id,
                                    "dtmf": {"digit": "5" * 5000},
                                }
                            ),
                        ):
                            await stream.send_raw(frame)
                        await stream.say(silence(200), realtime=False)
                        assert not stream.closed.is_set()
                        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).json()[
                            "active_calls"
                        ] == 1
                        process.send_signal(signal.SIGTERM)
                        started = time.perf_counter()
                        code = await asyncio.wait_for(process.wait(), stop_timeout + 5)
                        exited = time.perf_counter() - started
                        assert code == 0
                        await asyncio.wait_for(stream.closed.wait(), 5)  # the server closed the call
                        await stream.hang_up()
                        return exited, answer.token
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()

    try:
        exited, token = asyncio.run(scenario())
    finally:
        moto.stop()
    output = log_path.read_text()
    assert stop_timeout - margin - 0.5 < exited < stop_timeout, (
        f"exited {exited:.1f} s after SIGTERM\n{output}"
    )
    assert "drained: 1 call(s)" in output, output
    for unhandled in ("Traceback", "Exception in ASGI application", "never retrieved", '"level":"ERROR"'):
        assert unhandled not in output, output
    # No digit, no number, no token, no key.
    for secret in ("5" * 20, PHONE[2:], token, TEST_DEEPGRAM_API_KEY, "k" * 64):
        assert secret not in output, secret
