"""callkit.snapstart: after a SnapStart restore, ``random`` no longer repeats the snapshot's sequence."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Callable, Iterator

import pytest

from callkit.snapstart import reseed_after_restore


@pytest.fixture(autouse=True)
def _keep_random_state() -> Iterator[None]:
    state = random.getstate()
    yield
    random.setstate(state)


def test_the_restore_hook_reseeds_random() -> None:
    hooks: list[Callable[[], object]] = []
    assert reseed_after_restore(hooks.append) is True
    assert hooks == [random.seed]
    random.seed(1234)  # the state a snapshot would hold
    snapshot = random.getstate()
    in_snapshot = [random.random() for _ in range(4)]
    random.setstate(snapshot)  # a restore: the same memory again
    for hook in hooks:
        hook()
    assert [random.random() for _ in range(4)] != in_snapshot


@pytest.mark.skipif(
    importlib.util.find_spec("snapshot_restore_py") is not None,
    reason="the Lambda runtime's hook library is installed",
)
def test_nothing_is_registered_off_lambda() -> None:
    assert reseed_after_restore() is False
