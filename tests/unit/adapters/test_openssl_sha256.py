"""libcrypto's SHA-256 through ctypes: hashlib's digests, and states another process continues."""

from __future__ import annotations

import ctypes.util
import hashlib
import logging
import os
import struct
import sys

import pytest

from adapters import openssl_sha256
from adapters.openssl_sha256 import OpenSslSha256, resumable_hashing
from core.resumable_hash import LocalHashing

#: Where ``Nl`` (the low word of the bit count) and ``h[0]`` sit in an exported state.
_TAG_SIZE = len(openssl_sha256._TAG)
_NL_AT = _TAG_SIZE + 32
_H0_AT = _TAG_SIZE


@pytest.fixture(scope="module")
def hashing() -> OpenSslSha256:
    loaded = OpenSslSha256.load()
    assert loaded is not None, "libcrypto with SHA256_* is part of the test machine"
    return loaded


@pytest.mark.parametrize("cuts", [(), (1,), (63, 64, 65), (100, 5000, 5001, 70_000)])
def test_digests_equal_hashlibs_however_the_bytes_are_split(
    hashing: OpenSslSha256, cuts: tuple[int, ...]
) -> None:
    data = os.urandom(100_000)
    hasher = hashing.new()
    start = 0
    for cut in (*cuts, len(data)):
        hasher.update(data[start:cut])
        start = cut
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    hasher.update(b"more")  # a digest does not end the hash
    assert hasher.hexdigest() == hashlib.sha256(data + b"more").hexdigest()


def test_a_state_is_continued_by_another_loaded_library(hashing: OpenSslSha256) -> None:
    """Chunks hashed by three "processes" in turn give the whole blob's digest."""
    chunks = [os.urandom(size) for size in (1_000_003, 77, 64, 250_001)]
    others = [OpenSslSha256.load(), OpenSslSha256.load()]
    state, length = None, 0
    for number, chunk in enumerate(chunks):
        current = [hashing, *others][number % 3]
        assert current is not None
        hasher = current.new() if state is None else current.resume(state, length)
        assert hasher is not None
        hasher.update(chunk)
        state, length = hasher.export(), length + len(chunk)
    resumed = hashing.resume(state or b"", length)
    assert resumed is not None
    assert resumed.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()


def test_buffers_other_than_bytes_are_hashed(hashing: OpenSslSha256) -> None:
    hasher = hashing.new()
    hasher.update(memoryview(b"abc"))
    hasher.update(bytearray(b"def"))
    assert hasher.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


def test_a_copy_is_independent(hashing: OpenSslSha256) -> None:
    hasher = hashing.new()
    hasher.update(b"shared")
    copy = hasher.copy()
    copy.update(b"-copy")
    assert hasher.hexdigest() == hashlib.sha256(b"shared").hexdigest()
    assert copy.hexdigest() == hashlib.sha256(b"shared-copy").hexdigest()


def _state_after(hashing: OpenSslSha256, data: bytes) -> bytes:
    hasher = hashing.new()
    hasher.update(data)
    state = hasher.export()
    assert state is not None
    return state


def _with_word(state: bytes, at: int, value: int) -> bytes:
    return state[:at] + struct.pack("=I", value) + state[at + 4 :]


def test_a_state_is_refused_for_any_other_length(hashing: OpenSslSha256) -> None:
    state = _state_after(hashing, os.urandom(1000))
    assert hashing.resume(state, 1000) is not None
    for length in (0, 999, 1001, 1000 + 64, 1000 + 2**32):
        assert hashing.resume(state, length) is None


def test_a_damaged_or_foreign_state_is_refused(hashing: OpenSslSha256) -> None:
    state = _state_after(hashing, os.urandom(1000))
    other_order = "big" if sys.byteorder == "little" else "little"
    refused = [
        state[:-1],
        state + b"\0",
        b"x" + state[1:],
        state.replace(f"-{sys.byteorder}:".encode(), f"-{other_order}:".encode()),
        _with_word(state, _NL_AT, 8 * 999),
    ]
    for damaged in refused:
        assert damaged != state
        assert hashing.resume(damaged, 1000) is None


def test_a_state_of_other_bytes_of_the_same_length_gives_their_digest(
    hashing: OpenSslSha256,
) -> None:
    """Why callers compare with the client's digest: a state only proves its length."""
    state = _state_after(hashing, b"a" * 100)
    forged = _with_word(state, _H0_AT, 0)
    resumed = hashing.resume(forged, 100)
    assert resumed is not None
    assert resumed.hexdigest() != hashlib.sha256(b"a" * 100).hexdigest()


def test_no_libcrypto_means_in_process_hashing_and_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(openssl_sha256, "library_names", list)
    with caplog.at_level(logging.WARNING, logger=openssl_sha256.__name__):
        hashing = resumable_hashing()
    assert isinstance(hashing, LocalHashing)
    assert not hashing.resumable
    assert "re-reads" in caplog.text
    hasher = hashing.new()
    hasher.update(b"abc")
    assert hasher.export() is None
    assert hasher.hexdigest() == hashlib.sha256(b"abc").hexdigest()


def test_a_library_without_the_functions_is_not_loaded() -> None:
    assert OpenSslSha256.load(["libc.so.6", "/nonexistent/libcrypto.so"]) is None


def test_libcrypto_is_found_without_find_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slim images have no ``ldconfig``: the usual sonames are tried after it."""
    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: None)
    assert OpenSslSha256.load() is not None
