"""A flight that follows another process's download: its spool, its hold-back, its end."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.spool import FileFlightNotices, FileSpool, FileSpools, FileView
from core.proxy_flights import HOLD_BYTES, BlobFlight, FlightFailedError, Notice

MIB = 1024 * 1024


async def _read(chunks: AsyncIterator[bytes], want: int) -> bytes:
    body = bytearray()
    async for piece in chunks:
        body += piece
        if len(body) >= want:
            break
    return bytes(body)


async def _drain(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in chunks])


def test_followers_read_the_peer_spool_and_its_last_bytes_wait_for_verification(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        blob = os.urandom(3 * MIB)
        peer = FileSpool(tmp_path)
        notices = FileFlightNotices(tmp_path / "notices")
        own = FileSpool(tmp_path)
        flight = BlobFlight(own)
        early = flight.follow()  # NOTE: joined before the peer's download was found
        notice = Notice(peer.name(), len(blob), verified=False)
        notices.publish("p/d", notice)
        flight.redirect(FileView(peer.name()))
        assert flight.peer_spool == peer.name()
        assert not own.path.exists(), "the flight's own unused spool is removed"
        peer.write(blob)
        seen = notices.look("p/d")
        assert seen is not None
        assert seen.written == len(blob)
        await flight.peer_progress(seen)
        assert flight.readable == len(blob) - HOLD_BYTES
        late = flight.follow()
        first = await _read(early, len(blob) - HOLD_BYTES)
        assert first == blob[: len(blob) - HOLD_BYTES]
        await flight.peer_progress(Notice(peer.name(), len(blob), verified=True, written=0))
        peer.discard()  # NOTE: the peer finished and its file is gone ...
        await flight.finish()
        joined = flight.follow()  # NOTE: ... a pull that joins now still reads it
        rest = await _drain(early)
        assert first + rest == blob
        assert await _drain(late) == blob
        assert await _drain(joined) == blob
        assert flight.followers == 0
        flight.spool.discard()

    asyncio.run(scenario())


def test_a_peer_that_fails_fails_the_followers_without_the_held_bytes(tmp_path: Path) -> None:
    async def scenario() -> None:
        peer = FileSpool(tmp_path)
        flight = BlobFlight(FileSpool(tmp_path))
        chunks = flight.follow()
        flight.redirect(FileView(peer.name()))
        peer.write(b"x" * (2 * MIB))
        await flight.peer_progress(Notice(peer.name(), 2 * MIB, verified=False, written=2 * MIB))
        got = await _read(chunks, 2 * MIB - HOLD_BYTES)
        assert len(got) == 2 * MIB - HOLD_BYTES
        await flight.fail("the download in another API process failed")
        assert flight.failed  # no new pull joins it
        with pytest.raises(FlightFailedError, match="another API process"):
            await _drain(chunks)

    asyncio.run(scenario())


def test_a_started_flight_cannot_switch_spools_and_a_gone_spool_fails_its_follower(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        own = FileSpool(tmp_path)
        flight = BlobFlight(own)
        await flight.started(10)
        peer = FileView(FileSpool(tmp_path).name())
        with pytest.raises(ValueError, match="started"):
            flight.redirect(peer)
        assert not flight.follows_peer
        waiting = BlobFlight(FileSpool(tmp_path))
        waiting.redirect(peer)
        peer.discard()  # NOTE: the flight landed
        with pytest.raises(FlightFailedError, match="spool is gone"):
            await _read(waiting.follow(), 1)

    asyncio.run(scenario())


def test_notices_name_their_spool_and_length_and_ignore_other_keys_and_dead_processes(
    tmp_path: Path,
) -> None:
    notices = FileFlightNotices(tmp_path / "notices")
    spool = FileSpool(tmp_path)
    spool.write(b"abc")
    assert notices.look("p/sha256:1") is None
    notices.publish("p/sha256:1", Notice(spool.name(), 10, verified=False))
    assert notices.look("p/sha256:1") == Notice(spool.name(), 10, False, 3)
    assert notices.look("p/sha256:2") is None
    notices.publish("p/sha256:1", Notice(spool.name(), 10, verified=True))
    seen = notices.look("p/sha256:1")
    assert seen is not None
    assert seen.verified
    notices.withdraw("p/sha256:1")
    assert notices.look("p/sha256:1") is None
    notices.withdraw("p/sha256:1")  # NOTE: idempotent

    # a notice of a process that no longer exists is never followed
    notices.publish("p/sha256:3", Notice(spool.name(), 10, verified=False))
    path = next((tmp_path / "notices").glob("*.json"))
    path.write_text(path.read_text().replace(f'"pid": {os.getpid()}', '"pid": 999999999'))
    assert notices.look("p/sha256:3") is None
    # nor one whose spool is gone
    notices.publish("p/sha256:4", Notice(str(tmp_path / "gone.part"), 10, verified=False))
    assert notices.look("p/sha256:4") is None
    spool.discard()


def test_a_redirect_that_cannot_open_every_reader_keeps_the_old_ones_and_leaks_none(
    tmp_path: Path,
) -> None:
    opened: list[FileSpool] = []
    closed: list[int] = []

    class Counted:
        def __init__(self, number: int) -> None:
            self.number = number

        def read(self, offset: int, size: int) -> bytes:
            del offset, size
            return b""

        def close(self) -> None:
            closed.append(self.number)

    def open_second_fails() -> Counted:
        if len(opened) == 1:
            raise FileNotFoundError("gone")
        opened.append(FileSpool(tmp_path))
        return Counted(len(opened))

    class Peer(FileView):
        def reader(self) -> Counted:  # type: ignore[override]
            return open_second_fails()

    own = FileSpool(tmp_path)
    flight = BlobFlight(own)
    flight.follow()
    flight.follow()
    peer = Peer(own.name())
    with pytest.raises(FileNotFoundError):
        flight.redirect(peer)
    assert closed == [1], "the reader opened before the failure was not closed"
    assert not flight.follows_peer
    assert flight.spool is own, "the flight keeps its own spool"
    assert own.path.exists()
    peer.discard()


def test_an_adopted_upload_file_is_read_by_followers_after_it_is_moved_and_never_written(
    tmp_path: Path,
) -> None:
    """The cache's upload file as the spool: written once, readable after it lands."""

    async def scenario() -> None:
        blob = os.urandom(3 * MIB)
        scratch = FileSpool(tmp_path)
        flight = BlobFlight(scratch)
        early = flight.follow()  # NOTE: joined while the flight still had its scratch spool
        upload = tmp_path / "uploads" / "u1" / "data"
        upload.parent.mkdir(parents=True)
        upload.touch()
        view = FileSpools(tmp_path / "spools").over(str(upload))
        flight.adopt(view)
        assert flight.spool is view
        assert not scratch.path.exists(), "the unused scratch spool is removed"
        with pytest.raises(ValueError, match="its own writer"):
            view.write(b"x")
        await flight.started(len(blob))
        with upload.open("ab", buffering=0) as writer:  # NOTE: the upload's own writer
            writer.write(blob[: 2 * MIB])
            await flight.release(2 * MIB)
            assert await _read(early, 2 * MIB) == blob[: 2 * MIB]
            writer.write(blob[2 * MIB :])
        landed = tmp_path / "blobs" / "b1"
        landed.parent.mkdir()
        upload.replace(landed)  # NOTE: the finished upload becomes the blob
        await flight.finish()
        late = flight.follow()  # NOTE: a pull that joins the finished flight
        assert await _drain(early) == blob[2 * MIB :]
        assert await _drain(late) == blob
        view.discard()
        assert landed.read_bytes() == blob, "discarding the view leaves the file"
        with pytest.raises(FlightFailedError, match="spool is gone"):
            await _read(flight.follow(), 1)

    asyncio.run(scenario())


def test_a_started_flight_adopts_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        flight = BlobFlight(FileSpool(tmp_path))
        await flight.started(10)
        target = tmp_path / "data"
        target.touch()
        view = FileSpools(tmp_path / "spools").over(str(target))
        with pytest.raises(ValueError, match="started"):
            flight.adopt(view)
        view.discard()

    asyncio.run(scenario())
