"""The media server container's process: readiness, draining on SIGTERM, refusing new calls."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
