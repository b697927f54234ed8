"""Starting a file's write-back early, so its bytes go to disk while more of them arrive.

Linux's ``sync_file_range`` with ``SYNC_FILE_RANGE_WRITE`` queues the dirty pages of a
range of a file for writing and returns without waiting for them and without touching
the file's metadata. An ``fsync`` that follows then waits only for what is still on its
way (and writes the metadata), instead of writing every byte of the range itself once
the last one arrived. Where the call does not exist (another system, a C library
without it), :func:`start_writeback` does nothing and the ``fsync`` writes everything,
as it always did.

It is a hint for speed, never a step towards durability: nothing is durable before an
``fsync`` or ``fdatasync`` returned. Its errors are not raised: the kernel keeps a
failed write-back for the next ``fsync`` of the file to report, with or without this
call.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable
from typing import Final

#: ``SYNC_FILE_RANGE_WRITE``: start writing the range's dirty pages; do not wait.
_WRITE: Final = 2


def _load() -> Callable[[int, int, int, int], int] | None:
    """The C library's ``sync_file_range``, where there is one."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    found: Callable[[int, int, int, int], int] = function
    return found


_SYNC_FILE_RANGE: Final = _load()


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Queue ``length`` bytes of ``fd`` from ``offset`` for writing to disk; do not wait.

    Returns whether the kernel took the request (``False`` where the call is missing, for
    an empty range, or when the kernel refused it, e.g. for a pipe). Called from a
    worker thread: ``ctypes`` releases the GIL for the call, which may wait while the
    device's queue is full.
    """
    if _SYNC_FILE_RANGE is None or length <= 0 or offset < 0:
        return False
    return _SYNC_FILE_RANGE(fd, offset, length, _WRITE) == 0
