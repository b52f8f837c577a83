"""The README's Python examples construct what they say (the runtime itself is not started)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_there_are_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_constructs(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_API_KEY",
        "DEEPGRAM_API_KEY",
        "CARTESIA_API_KEY",
        "TWILIO_AUTH_TOKEN",
        "PLIVO_AUTH_TOKEN",
    ):
        monkeypatch.setenv(name, "test")
    shared = BLOCKS[1] if index > 1 and "@tool" in BLOCKS[1] else ""
    # The runtime would bind a port and serve forever: check its arguments, not the server.
    code = re.sub(
        r"asyncio\.run\(AgentRuntime\((.*)\)\.start\(\)\)",
        r"_runtime = (lambda *a, **k: (a, k))(\1)",
        shared + "\n" + BLOCKS[index],
    )
    namespace: dict[str, object] = {}
    exec(compile(code, f"README block {index}", "exec"), namespace)  # noqa: S102 - our own README
    assert "agent" in namespace or "call" in namespace
