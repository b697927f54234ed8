r"""Go binaries: the build information the Go linker embeds (Go 1.18 and later).

The ``.go.buildinfo`` data starts at a 16-byte aligned file offset with the 14-byte
magic ``\\xff Go buildinf:``, a pointer-size byte and a flags byte (bit 1: strings
inline), then two uvarint-prefixed strings: the Go version and the module information.
The file is read once, sequentially; a candidate is accepted only when both strings
decode, so the magic text appearing elsewhere in a binary is not mistaken for it.
Older binaries (strings behind pointers) are not read.
"""

from __future__ import annotations

from dataclasses import dataclass

from packageurl import PackageURL

from core.scan.layers import Reader
from core.scan.packages import Package, PackageType

MAGIC = b"\xff Go buildinf:"
ELF_MAGIC = b"\x7fELF"
_HEADER = 32
_ALIGN = 16
_CHUNK = 1024 * 1024
_TAIL = 1024 * 1024  # most bytes of version + module information we read past a magic
_FLAG_INLINE = 2


@dataclass(frozen=True, slots=True)
class BuildInfo:
    go_version: str
    main_path: str
    main_module: tuple[str, str] | None
    deps: tuple[tuple[str, str], ...]


def _uvarint(data: bytes, at: int) -> tuple[int, int] | None:
    value = shift = 0
    while at < len(data) and shift < 64:  # noqa: PLR2004 - a uvarint has at most 64 bits
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:  # noqa: PLR2004
            return value, at
        shift += 7
    return None


def decode_at(data: bytes) -> BuildInfo | None:
    """Decode build information from bytes starting at the magic."""
    if len(data) < _HEADER or not data.startswith(MAGIC):
        return None
    if data[14] not in {4, 8} or not data[15] & _FLAG_INLINE:
        return None
    strings = []
    at = _HEADER
    for _ in range(2):
        decoded = _uvarint(data, at)
        if decoded is None or decoded[1] + decoded[0] > len(data):
            return None
        length, at = decoded
        strings.append(data[at : at + length].decode("utf-8", "replace"))
        at += length
    version, modinfo = strings
    if not version.startswith("go"):
        return None
    return parse_modinfo(version, modinfo)


def parse_modinfo(version: str, modinfo: str) -> BuildInfo:
    min_sentinel = 33
    if len(modinfo) >= min_sentinel and modinfo[-17] == "\n":
        modinfo = modinfo[16:-16]
    main_path = ""
    main: tuple[str, str] | None = None
    deps: list[tuple[str, str]] = []
    for line in modinfo.splitlines():
        fields = line.split("\t")
        if fields[0] == "path" and len(fields) > 1:
            main_path = fields[1]
        elif fields[0] == "mod" and len(fields) > 2:  # noqa: PLR2004
            main = (fields[1], fields[2])
        elif fields[0] == "dep" and len(fields) > 2:  # noqa: PLR2004
            deps.append((fields[1], fields[2]))
        elif fields[0] == "=>" and len(fields) > 2 and deps:  # noqa: PLR2004
            deps[-1] = (fields[1], fields[2])
    return BuildInfo(version.split(maxsplit=1)[0], main_path, main, tuple(deps))


def find_build_info(reader: Reader) -> BuildInfo | None:
    """Scan a file sequentially for build information at 16-byte aligned offsets."""
    buffer = b""
    offset = 0  # file offset of buffer[0]
    while True:
        chunk = reader.read(_CHUNK)
        buffer += chunk
        at = 0
        while (found := buffer.find(MAGIC, at)) >= 0:
            if (offset + found) % _ALIGN == 0:
                window = buffer[found : found + _TAIL]
                while chunk and len(window) < _TAIL:
                    chunk = reader.read(_CHUNK)
                    buffer += chunk
                    window = buffer[found : found + _TAIL]
                info = decode_at(window)
                if info is not None:
                    return info
            at = found + 1
        if not chunk:
            return None
        keep = len(MAGIC) - 1
        offset += len(buffer) - keep
        buffer = buffer[-keep:]


def go_packages(info: BuildInfo, location: str) -> tuple[Package, ...]:
    """The main module, every dependency and ``stdlib`` at the toolchain's version."""
    found = []
    modules = [info.main_module] if info.main_module else []
    for module, version in [*modules, *info.deps]:
        namespace, _, name = module.rpartition("/")
        purl = PackageURL("golang", namespace or None, name, version).to_string()
        found.append(Package(PackageType.GOLANG, module, version, purl, location))
    stdlib_version = info.go_version.removeprefix("go")
    found.append(
        Package(
            PackageType.GOLANG,
            "stdlib",
            info.go_version,
            PackageURL("golang", None, "stdlib", stdlib_version).to_string(),
            location,
        )
    )
    return tuple(found)


def parse_go_binary(path: str, reader: Reader, size: int) -> tuple[Package, ...]:
    """Stream-time parser for ELF files: the Go packages, or nothing for other binaries."""
    del size
    info = find_build_info(reader)
    return go_packages(info, path) if info is not None else ()
