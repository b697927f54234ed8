"""Parsing ``--listen HOST:PORT``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Listen:
    """A TCP address to serve on."""

    host: str
    port: int

    @classmethod
    def parse(cls, value: str) -> Listen:
        """Parse ``HOST:PORT`` (``[V6ADDR]:PORT`` for IPv6 hosts)."""
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:  # noqa: PLR2004
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        return cls(host.removeprefix("[").removesuffix("]"), int(port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, scheme: str = "http") -> str:
        """The URL clients use to reach this address."""
        return f"{scheme}://{self}"
