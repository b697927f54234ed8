"""The one error an analysis ends with when its input is unsafe, corrupt or too large."""

from __future__ import annotations


class ScanFailedError(Exception):
    """The analysis stopped; ``reason`` says why in words a person can act on.

    Raised for unsafe paths, symlink loops, archive or decompression bombs, corrupt layers,
    digest mismatches and every configured bound. Nothing outside the analysis is changed.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
