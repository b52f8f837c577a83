"""``OpenAIChatModel`` retries inside the turn's first-token budget, against ``FlakyChatServer``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from callkit.conversation import APOLOGY, Speech, TurnCompleted, run_turn
from callkit.errors import ServiceError
from callkit.examples import support_agent
from callkit.llm import ChatEvent, ModelError, OpenAIChatModel, TextDelta, UserMessage
from callkit.net import ConnectError, HTTPClient, ProxyConfig, RetryPolicy
from callkit.testing.flaky_chat import FlakyChatServer, Refusal, Reset

API_KEY = "sk-test-0123456789abcdefghij"
#: What a provider's error message may quote: the caller's own words.
CALLER_WORDS = "my card number is 4111 1111 1111 1111"
FAST = RetryPolicy(max_attempts=4, deadline=3.0, attempt_allowance=0.2, backoff_base=0.05, backoff_max=0.2)


def run[T](main: Callable[[], Awaitable[T]]) -> T:
    async def wrapper() -> T:
        return await main()

    return asyncio.run(wrapper())


def model_for(server: FlakyChatServer, retry: RetryPolicy | None = FAST) -> OpenAIChatModel:
    client = HTTPClient(proxies=ProxyConfig())
    return OpenAIChatModel("m", base_url=server.base_url, api_key=API_KEY, client=client, retry=retry)


async def text_of(model: OpenAIChatModel) -> str:
    events: list[ChatEvent] = [e async for e in model.stream([UserMessage("Hi")], [])]
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_429_with_retry_after_then_the_completion() -> None:
    async def main() -> None:
        async with FlakyChatServer([Refusal(429, retry_after="0.1")], text="Back again.") as server:
            started = time.monotonic()
            assert await text_of(model_for(server, retry=None)) == "Back again."  # the default policy
            elapsed = time.monotonic() - started
            assert server.requests == 2
            assert 0.1 <= server.arrivals[1] - server.arrivals[0] < 0.5  # Retry-After honoured
            assert elapsed < 1.0

    run(main)


def test_a_turn_gets_its_answer_after_a_429() -> None:
    async def main() -> None:
        async with FlakyChatServer([Refusal(429, retry_after="0.1")], text="Happy to help.") as server:
            model = model_for(server, retry=None)
            events = [e async for e in run_turn(support_agent, model, [], "Hello", first_token_timeout=2.0)]
        done = events[-1]
        assert isinstance(done, TurnCompleted)
        assert done.error is None
        assert [e.text for e in events if isinstance(e, Speech)] == ["Happy", " to", " help."]

    run(main)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(status: int) -> None:
    async def main() -> None:
        async with FlakyChatServer([Refusal(status), Refusal(status)], text="Fine now.") as server:
            assert await text_of(model_for(server)) == "Fine now."
            assert server.requests == 3

    run(main)


def test_a_server_that_stays_down_ends_in_a_retryable_service_error() -> None:
    async def main() -> None:
        async with FlakyChatServer(always=Refusal(503, message=CALLER_WORDS)) as server:
            started = time.monotonic()
            with pytest.raises(ServiceError) as caught:
                await text_of(model_for(server))
            elapsed = time.monotonic() - started
            assert server.requests == FAST.max_attempts
        assert elapsed < FAST.deadline
        assert caught.value.retryable
        assert "503" in str(caught.value)
        assert isinstance(caught.value.__cause__, ModelError)
        assert caught.value.__cause__.status == 503

    run(main)


def test_no_retry_that_would_miss_the_deadline() -> None:
    # Each Retry-After of 1 s plus the 0.5 s an attempt needs: only one retry fits in 2 s.
    policy = RetryPolicy(max_attempts=10, deadline=2.0, attempt_allowance=0.5)

    async def main() -> None:
        async with FlakyChatServer(always=Refusal(429, retry_after="1")) as server:
            started = time.monotonic()
            with pytest.raises(ServiceError):
                await text_of(model_for(server, retry=policy))
            assert server.requests == 2
            assert time.monotonic() - started < 2.0

    run(main)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_not_retried(status: int) -> None:
    async def main() -> None:
        async with FlakyChatServer([Refusal(status, type="invalid_request_error")]) as server:
            with pytest.raises(ModelError) as caught:
                await text_of(model_for(server))
            assert server.requests == 1
        assert caught.value.status == status
        assert not caught.value.retryable

    run(main)


def test_quota_exhausted_is_not_retried() -> None:
    async def main() -> None:
        async with FlakyChatServer([Refusal(429, code="insufficient_quota")]) as server:
            with pytest.raises(ModelError) as caught:
                await text_of(model_for(server))
            assert server.requests == 1
        assert caught.value.code == "insufficient_quota"

    run(main)


def test_connection_reset_before_the_answer_is_retried() -> None:
    async def main() -> None:
        async with FlakyChatServer([Reset(), Reset()], text="Made it.") as server:
            assert await text_of(model_for(server)) == "Made it."
            assert server.requests == 3

    run(main)


def test_connection_refused_is_retried_then_a_service_error() -> None:
    async def main() -> None:
        client = HTTPClient(proxies=ProxyConfig())
        model = OpenAIChatModel("m", base_url="http://127.0.0.1:9/v1", client=client, retry=FAST)
        with pytest.raises(ServiceError) as caught:
            await text_of(model)
        assert caught.value.retryable
        assert isinstance(caught.value.__cause__, ConnectError)

    run(main)


def test_logs_and_errors_carry_status_and_code_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        failures = [
            Refusal(429, retry_after="0", message=CALLER_WORDS, code="rate_limit_exceeded"),
            Refusal(401, message=f"{CALLER_WORDS} {API_KEY}", code="invalid_api_key"),
        ]
        async with FlakyChatServer(failures) as server:
            with pytest.raises(ModelError) as caught:
                await text_of(model_for(server))
        assert str(caught.value) == "model API answered 401 (server_error, invalid_api_key)"

    run(main)
    assert "429 rate_limit_exceeded" in caplog.text
    assert "4111" not in caplog.text
    assert API_KEY not in caplog.text


def test_apology_after_the_retries_are_spent() -> None:
    async def main() -> None:
        async with FlakyChatServer(always=Refusal(500)) as server:
            events = [e async for e in run_turn(support_agent, model_for(server), [], "Hello")]
        done = events[-1]
        assert isinstance(done, TurnCompleted)
        assert done.error == "ServiceError"
        assert done.assistant_text == APOLOGY

    run(main)
