"""ci_cache.tools.uv.pointers: uv's pointer files, as uv 0.13.8 writes them and as older uv did."""

from __future__ import annotations

import contextlib
import random

import pytest

from ci_cache.tools.uv.pointers import (
    PointerError,
    RevisionPointer,
    WheelPointer,
    http_header,
    revision_pointer,
    unpack_msgpack,
    wheel_pointer,
)
from tests.unit.uvremote import http_file, pack, sha

# Bytes uv 0.13.8 wrote, from a cache it built from the local index.
WHEEL_HTTP = bytes.fromhex(
    "95b044717a466132536738476345576556389181a6536861323536d940343931613132343766326638303064613666376264"
    "61616635326134383264396536373033653962336633656634303464323664653165643266306665396666d92164656d6f5f"
    "616c7068612d312e302e302d7079332d6e6f6e652d616e792e77686c00cd0d8e0000000000000000000000005a4e6b6d4a39"
    "4547586d7537785a664e687474703a2f2f3132372e302e302e313a33343939332f66696c65732f64656d6f5f616c7068612d"
    "312e302e302d7079332d6e6f6e652d616e792e77686c00000000000000000000be000000b8ffffff00000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000093520d6b"
    "00000000c8000000000000004075c11500000000000000000000000000000000000000000000000000000000000700000000"
    "0000000000000000000093520d6b00000000000000000000000092520d6b000000000a000000000000000000000000000000"
    "000000000000000093520d6b0000000040ffffff00000000932534018400000000000000")
REVISION_HTTP = bytes.fromhex(
    "93b07a5030657164707631715a55455141519181a6536861323536d940313534323134373038666137323039636666663166"
    "66383764313137663161396532656234323561323662616538353334646665393732633738323036313639cd138d546b4832"
    "6a6b77593962626a2d365f6c687474703a2f2f3132372e302e302e313a33343939332f66696c65732f64656d6f5f6574612d"
    "312e302e302e7461722e677a0000000000000000000000000000b2000000c0ffffff00000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000093520d6b00000000c800"
    "0000000000004075c11500000000000000000000000000000000000000000000000000000000000700000000000000000000"
    "0000000093520d6b00000000000000000000000092520d6b000000000a000000000000000000000000000000000000000000"
    "000093520d6b000000003cffffff000000001fceb6bd6000000000000000")
WHEEL_REV = bytes.fromhex(
    "9292ce6b0d5292ce3048d55d95b034383930344e4e327a634e694864464190d92164656d6f5f64656c74612d322e302e302d"
    "7079332d6e6f6e652d616e792e77686c00c0")
REVISION_REV = bytes.fromhex("929592ce6b0d5292ce30cf46fcc0c0808093b047526c633958446953584133574e726290c0")
ALPHA_SHA = "491a1247f2f800da6f7bdaaf52a482d9e6703e9b3f3ef404d26de1ed2f0fe9ff"


def test_a_wheel_http_of_uv_0_13_8() -> None:
    assert len(http_header(WHEEL_HTTP)) == 132
    assert wheel_pointer("1.0.0-py3-none-any.http", WHEEL_HTTP) == WheelPointer(
        archive="DqzFa2Sg8GcEWeV8", sha256=ALPHA_SHA, filename="demo_alpha-1.0.0-py3-none-any.whl",
        archive_version=0, size=3470)


def test_a_revision_http_of_uv_0_13_8() -> None:
    assert revision_pointer("revision.http", REVISION_HTTP) == RevisionPointer(
        revision="zP0eqdpv1qZUEQAQ", sha256="154214708fa7209cfff1ff87d117f1a9e2eb425a26bae8534dfe972c78206169",
        size=5005)


def test_local_files_rev_pointers_carry_no_hash() -> None:
    assert wheel_pointer("2.0.0-py3-none-any.rev", WHEEL_REV) == WheelPointer(
        archive="48904NN2zcNiHdFA", sha256=None, filename="demo_delta-2.0.0-py3-none-any.whl", archive_version=0,
        size=None)
    assert revision_pointer("revision.rev", REVISION_REV) == RevisionPointer("GRlc9XDiSXA3WNrb", None, None)


@pytest.mark.parametrize("hashes", [
    [{"Sha256": ALPHA_SHA}],
    [{"algorithm": "sha256", "digest": ALPHA_SHA}],
    [f"sha256:{ALPHA_SHA}"],
    [{"md5": "0" * 32}, {"sha256": ALPHA_SHA.upper()}],
])
def test_the_older_map_form_and_other_hash_shapes(hashes: list[object]) -> None:
    header = {"id": "DqzFa2Sg8GcEWeV8", "hashes": hashes, "filename": "demo_alpha-1.0.0-py3-none-any.whl"}
    found = wheel_pointer("k.http", http_file(header))
    assert (found.archive, found.sha256, found.archive_version, found.size) == ("DqzFa2Sg8GcEWeV8", ALPHA_SHA, 0, None)


def test_an_array_without_the_later_fields() -> None:
    found = wheel_pointer("k.http", http_file(["DqzFa2Sg8GcEWeV8", [], "demo_alpha-1.0.0-py3-none-any.whl"]))
    assert found.sha256 is None and found.size is None


@pytest.mark.parametrize("cut", [0, 1, 8, 9, 20, 100, 131, 300, 435])
def test_a_truncated_pointer_is_an_error(cut: int) -> None:
    with pytest.raises(PointerError):
        wheel_pointer("k.http", WHEEL_HTTP[:cut])


@pytest.mark.parametrize("header", [
    ["tooshort!", [], "x.whl", 0, 1],  # an id of the wrong shape ("!")
    ["DqzFa2Sg8GcEWeV8", [], "not-a-wheel.tar.gz", 0, 1],
    "just a string",
    [1],
])
def test_headers_of_the_wrong_shape(header: object) -> None:
    with pytest.raises(PointerError):
        wheel_pointer("k.http", http_file(header))


def test_a_length_that_does_not_fit_and_trailing_bytes() -> None:
    with pytest.raises(PointerError, match="does not fit"):
        http_header(WHEEL_HTTP[:-8] + (10_000).to_bytes(8, "little"))
    with pytest.raises(PointerError, match="after the msgpack value"):
        unpack_msgpack(pack([1, 2]) + b"\x00")
    with pytest.raises(PointerError, match="not a wheel pointer"):
        wheel_pointer("k.msgpack", WHEEL_HTTP)


def test_garbage_never_raises_anything_but_pointer_error() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        for parse in (lambda d: wheel_pointer("k.http", d), lambda d: wheel_pointer("k.rev", d),
                      lambda d: revision_pointer("revision.http", d), lambda d: revision_pointer("revision.rev", d)):
            with contextlib.suppress(PointerError):
                parse(data)
    # Flipped bytes in a real pointer, too.
    for i in range(len(WHEEL_HTTP)):
        damaged = bytearray(WHEEL_HTTP)
        damaged[i] ^= 0xFF
        with contextlib.suppress(PointerError):
            wheel_pointer("k.http", bytes(damaged))


def test_msgpack_types_uv_does_not_use_and_deep_nesting() -> None:
    assert unpack_msgpack(b"\xcb" + b"\x3f\xf0" + b"\0" * 6) == 1.0
    assert unpack_msgpack(b"\xd0\xff") == -1
    with pytest.raises(PointerError, match="not used"):
        unpack_msgpack(b"\xc7\x01\x00\x00")  # ext 8
    with pytest.raises(PointerError, match="deeply"):
        unpack_msgpack(b"\x91" * 40 + b"\xc0")
    with pytest.raises(PointerError, match="not UTF-8"):
        unpack_msgpack(b"\xa2\xff\xfe")
    with pytest.raises(PointerError, match="container key"):
        unpack_msgpack(b"\x81\x90\x01")
    assert sha("x") != sha("y")


def test_requires_dist_plain_and_http_framed() -> None:
    from ci_cache.tools.uv.pointers import requires_dist

    fields = ["demo-alpha", "1.0.0", ["demo-beta>=1.1", "pytest ; extra == 'test'"], None, ["test"], False]
    assert requires_dist(pack(fields)) == ["demo-beta>=1.1", "pytest ; extra == 'test'"]
    assert requires_dist(http_file(fields)) == ["demo-beta>=1.1", "pytest ; extra == 'test'"]
    assert requires_dist(pack({"requires_dist": ["x"]})) == ["x"]
    with pytest.raises(PointerError):
        requires_dist(pack("nope"))
