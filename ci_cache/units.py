"""Durations and sizes as people write them (30s, 10m, 2d; 500MB, 10GiB): the one parser of each."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from ci_cache.schema import Parse

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE_UNITS = {
    "": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}


def _any_case(units: Mapping[str, object]) -> str:
    """An alternation of the unit words in any letter case, longest first (`ms` before `m`), written
    without inline flags so that the JSON schema's (ECMAScript) regexes read it the same way."""
    words = sorted((u for u in units if u), key=len, reverse=True)
    return "|".join("".join(f"[{c}{c.upper()}]" for c in word) for word in words)


# A number, then an optional unit; the JSON schema offers the same patterns to editors. Compiled (and cached
# by `re`) at first use: most jobs write no duration.
DURATION_PATTERN = rf"^\s*(\d+(?:\.\d+)?)\s*({_any_case(_DURATION_UNITS)})?\s*$"
SIZE_PATTERN = rf"^\s*(\d+(?:\.\d+)?)\s*({_any_case(_SIZE_UNITS)})?\s*$"


def parse_duration(value: object) -> float:
    """'90s', '10m', '1.5h', '2d' or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration, like 30s, 10m or 2h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = re.fullmatch(DURATION_PATTERN, str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; use a number with s, m, h or d, like 30s or 10m")
        seconds = float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "s").lower()]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_size(value: object) -> int:
    """'500MB', '10GiB', '1.5g' or a number of bytes."""
    if isinstance(value, bool):
        raise ValueError("a size, like 500MB or 10GiB")
    if isinstance(value, int):
        size = value
    else:
        match = re.fullmatch(SIZE_PATTERN, str(value))
        if not match:
            raise ValueError(f"{value!r} is not a size; use a number with KB, MB, GB, MiB or GiB, like 10GB")
        size = int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "").lower()])
    if size < 0:
        raise ValueError("a size cannot be negative")
    return size


# The settings' types: what is written goes through the parser; the JSON schema says what may be written.
Duration = Annotated[float, Parse(parse_duration, json={"anyOf": [
    {"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}]})]
Size = Annotated[int, Parse(parse_size, json={"anyOf": [
    {"type": "integer", "minimum": 0}, {"type": "string", "pattern": SIZE_PATTERN}]})]
