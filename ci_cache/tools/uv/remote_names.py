"""How uv's cache entries are named on the remote: namespaces, keys, and what a key tells about a wheel.

    uv-<wheels-vN>-<archive-vM>/<name>/<version>   <wheel sha256>.<source>               a downloaded wheel
    uv-<sdists-vN>-<archive-vM>/<name>/<version>   <sdist sha256>.<source>.<build>       a wheel built from an sdist
    uv-<simple-vN>/<name>                          <source>.<YYYYMMDD>                   the index's listing

Namespaces carry uv's bucket versions, so agents with different uv versions never mix. `<source>` is
where uv keyed the file (`pypi`, `index-<hash of the index URL>`, `url-<hash>`): the same wheel from
another index is another entry, since uv looks for it elsewhere. `<build>` is a digest of what makes a
build differ (uv's config-settings folder and the built wheel's tags). One LIST of a name's prefix
shows every version, wheel and build there is, so a job that gives only names still finds them.
"""

from __future__ import annotations

import hashlib
import re
import sysconfig
from dataclasses import dataclass

from ci_cache.keyfiles import normalize

TOOL = "uv"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=-]{0,99}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SOURCES = ("pypi", "index", "url")


def wheels_root(wheels_bucket: str, archive_bucket: str) -> str:
    return f"{TOOL}-{wheels_bucket}-{archive_bucket}"


def builds_root(sdists_bucket: str, archive_bucket: str) -> str:
    return f"{TOOL}-{sdists_bucket}-{archive_bucket}"


def listings_root(simple_bucket: str) -> str:
    return f"{TOOL}-{simple_bucket}"


def segment_ok(text: str) -> bool:
    return bool(_SEGMENT.fullmatch(text))


def source_token(parts: list[str]) -> str | None:
    """`pypi`, `index-<hash>` or `url-<hash>` from the folders between a bucket and a package's name."""
    if not parts or parts[0] not in _SOURCES:
        return None
    token = "-".join(parts)
    return token if segment_ok(token) and ("/" not in token) else None


def source_parts(token: str) -> list[str]:
    """The folders a source token stands for: `index-ab12` -> [`index`, `ab12`]."""
    head, _, rest = token.partition("-")
    return [head, rest] if rest else [head]


@dataclass(frozen=True)
class WheelName:
    """A wheel filename's parts (PEP 427): name normalised, version, and the three tag sets."""

    name: str
    version: str
    python: str
    abi: str
    platform: str


def is_group_of(group: str, wheel: WheelName) -> bool:
    """Whether `group` can be uv's name for this wheel's group: `<version>-<python>-<abi>-<platform>`, or,
    when the tags are long (measured: manylinux wheels), `<version>-<16 hex digits>`."""
    tags = f"{wheel.python}-{wheel.abi}-{wheel.platform}"
    rest = group[len(wheel.version) + 1:] if group.startswith(wheel.version + "-") else None
    return rest is not None and (rest == tags or bool(re.fullmatch(r"[0-9a-f]{16}", rest)))


def parse_wheel(filename: str) -> WheelName | None:
    if not filename.endswith(".whl"):
        return None
    parts = filename[:-4].split("-")
    if len(parts) not in (5, 6):
        return None
    return WheelName(normalize(parts[0]), parts[1], parts[-3], parts[-2], parts[-1])


def this_platform() -> str:
    """This machine's platform as sysconfig names it: `linux-x86_64`, `win-amd64`, `macosx-11.0-arm64`."""
    return sysconfig.get_platform()


def platform_fits(platform_tags: str, machine: str | None = None) -> bool:
    """Whether a wheel with these platform tags can install on `machine` (its OS and CPU; the Python
    ABI is left to uv, which skips a wheel of another Python)."""
    machine = (machine or this_platform()).lower()
    os_name, _, rest = machine.partition("-")
    arch = rest.rsplit("-", 1)[-1] if rest else ""
    aliases = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "arm64", "aarch64": "aarch64"}
    arch = aliases.get(arch, arch)
    for tag in platform_tags.lower().split("."):
        if tag == "any":
            return True
        if os_name == "linux" and tag.startswith(("manylinux", "musllinux", "linux")) and tag.endswith("_" + arch):
            return True
        if os_name == "win32" and tag == "win32":
            return True
        if os_name == "win":
            wanted = {"x86_64": "win_amd64", "arm64": "win_arm64"}.get(arch)
            if tag == wanted:
                return True
        if os_name == "macosx" and tag.startswith("macosx_") and (
                tag.endswith(("_" + arch, "_universal2", "_universal"))):
            return True
    return False


def wheel_key(sha256: str, token: str) -> str:
    return f"{sha256}.{token}"


def build_key(sdist_sha256: str, token: str, shard: str, wheel_filename: str) -> str:
    variant = hashlib.sha256(f"{shard}/{wheel_filename}".encode()).hexdigest()[:8]
    return f"{sdist_sha256}.{token}.{variant}"


def listing_key(token: str, day: str) -> str:
    return f"{token}.{day}"


def key_sha256(key: str) -> str | None:
    """The sha256 a wheel or build key starts with."""
    head = key.split(".", 1)[0]
    return head if _SHA256.fullmatch(head) else None


def listing_parts(key: str) -> tuple[str, str]:
    """(source token, day) of a listing key."""
    token, _, day = key.rpartition(".")
    return token, day


_RELEASE = re.compile(r"^(\d+!)?(\d+(?:\.\d+)*)(.*)$")
_PRE = {"dev": 0, "a": 1, "alpha": 1, "b": 2, "beta": 2, "rc": 3, "c": 3}


def version_key(version: str) -> tuple[int, tuple[int, ...], int, int, str]:
    """A sort key for PEP 440 versions that orders releases, pre-releases before finals, and post
    releases after: enough to pick the newest version a remote has of a package."""
    match = _RELEASE.match(version.lower())
    if not match:
        return (-1, (), 0, 0, version)
    epoch = int(match.group(1)[:-1]) if match.group(1) else 0
    release = tuple(int(p) for p in match.group(2).split("."))
    while release and release[-1] == 0:
        release = release[:-1]
    rest = match.group(3).lstrip(".-_")
    phase, number = 4, 0  # a final release
    pre = re.match(r"^(dev|alpha|beta|a|b|rc|c)\.?(\d*)", rest)
    post = re.match(r"^(post|rev|r)\.?(\d*)", rest)
    if pre:
        phase, number = _PRE[pre.group(1)], int(pre.group(2) or 0)
    elif post:
        phase, number = 5, int(post.group(2) or 0)
    return (epoch, release, phase, number, rest)
