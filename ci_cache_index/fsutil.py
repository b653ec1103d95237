"""Atomic file writes that leave an unchanged file (and its mtime) alone."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write via a temp file + rename unless ``path`` already holds ``data``; returns whether it wrote."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True
