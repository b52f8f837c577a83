"""What a Lambda SnapStart restore must renew in a callkit function (docs/aws.md §9).

With SnapStart, Lambda imports the handler module once, when a version is published, and resumes
every new execution environment of that version from the same memory snapshot: whatever the module
made at import is the same in all of them. For callkit's functions that is what we want (modules,
the app, botocore clients) except for one thing: the state of the ``random`` module's generator,
seeded once when the interpreter started. botocore's retry jitter (standard mode) and callkit's
model-client backoff draw from it, so every restored environment would back off on the same
schedule, the retry storm jitter exists to prevent. ``reseed_after_restore`` registers a runtime
hook that reseeds it from the operating system after each restore. Credentials, connections and
secret values need no hook: docs/aws.md §9 says why.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from typing import cast

__all__ = ["reseed_after_restore"]

#: ``snapshot_restore_py.register_after_restore``: takes a callable to run after each restore.
Register = Callable[[Callable[[], object]], object]


def reseed_after_restore(register: Register | None = None) -> bool:
    """Reseed ``random`` after every SnapStart restore of this process.

    ``register`` defaults to ``snapshot_restore_py.register_after_restore``, which the Lambda
    Python runtimes include (not bundled: the layer does not ship it). Where that library is
    missing (tests, local runs) there is no snapshot to restore from: nothing is registered and
    the result is False. Call it at import, from the handler module (hooks registered later, in
    the handler, never run).
    """
    if register is None:
        try:
            hooks = importlib.import_module("snapshot_restore_py")
        except ImportError:
            return False
        register = cast("Register", hooks.register_after_restore)
    # random.seed() with no argument seeds from os.urandom, which reads the kernel's generator at
    # each call and keeps no state in this process.
    register(random.seed)
    return True
