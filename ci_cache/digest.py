"""The sha256 of a short text (job keys, provider ids), without loading OpenSSL for it.

`hashlib` loads OpenSSL's libcrypto on import: 2-3 ms of CPU in every process, for one hash of a few bytes.
CPython also builds its own sha256 as a small module (`_sha2` from 3.12, `_sha256` before), which loads in
a tenth of that and gives the same digest. Big data (the fleet tier's blobs) still goes through hashlib.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_sha256: Callable[[bytes], Any] | None = None


def _constructor() -> Callable[[bytes], Any]:
    global _sha256
    if _sha256 is None:
        for module in ("_sha2", "_sha256", "hashlib"):  # hashlib where CPython's own is not built
            try:
                _sha256 = importlib.import_module(module).sha256
                break
            except (ImportError, AttributeError):
                continue
    assert _sha256 is not None
    return _sha256


def sha256_hex(text: str) -> str:
    """The hex sha256 of `text` as UTF-8 (lone surrogates kept, as a job id from the env may hold them)."""
    return str(_constructor()(text.encode("utf-8", "surrogatepass")).hexdigest())
