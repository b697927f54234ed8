"""Build Moorage's container image without a container engine, reproducibly.

    python deploy/image/build.py --output DIR [--tag TAG]
        [--push REF --push-creds U:P [--insecure] [--cosign-key KEY] [--no-scan]
         [--scan-timeout SECONDS]]

1. A minimal Debian root filesystem from Debian's packages (``mmdebstrap``, the
   ``essential`` variant plus ``python3``, ``ca-certificates`` and ``libstdc++6`` for
   gRPC), documentation and locales left out; ``bash`` and ``perl`` (and the packages
   that only pull them in) are purged afterwards, so the image has ``dash`` as
   ``/bin/sh``, no other interpreter than Python and no compiler.
2. The application and its runtime dependencies at exactly the versions installed in the
   build's virtualenv (the lock: ``requirements.lock`` in the image), installed with
   ``pip --target`` into ``/opt/moorage/lib``; Debian's Python runs it
   (``python3 -m cli.main``). The image's Python is 3.11, as the build's must be.
3. A non-root user ``moorage`` (10001:10001) owning ``/var/lib/moorage``.
4. One layer, written as a deterministic tar (sorted entries, every mtime set to
   ``SOURCE_DATE_EPOCH``, numeric owners, no ``/dev`` nodes) and gzip with no timestamp, and
   an OCI image layout with the OCI labels (source, version, revision, licences, created).

Same inputs (package versions, lock, source tree, ``SOURCE_DATE_EPOCH``) give the same
layer digest. The build also writes the CycloneDX SBOM of the shipped dependencies
(``scripts/build_sbom.py``) into the image as ``/opt/moorage/sbom.cdx.json``.

``--push`` then publishes the image (``deploy/image/publish.py``, all by the digest the
registry stored): ``skopeo`` copies the layout; ``--cosign-key KEY`` signs it with
``cosign`` and the operator's key (its password in ``COSIGN_PASSWORD``), offline
(``--tlog-upload=false``); Moorage scans it (``moorage scan run --wait``; ``--no-scan`` for a
registry that is not a Moorage) and the build prints the report's summary and waits for the
CycloneDX and SPDX SBOMs the scan attaches; last, ``oras`` attaches the build's own SBOM as
a referrer. A failed signature or scan, or a scan not done in ``--scan-timeout`` seconds,
ends the build with exit status 1 (the image stays pushed).

The build signs with the releaser's key rather than asking the registry to sign: the
signature says who built the image, holds wherever the image is copied, and is checked with
the public key the operator publishes (``cosign verify``, a Moorage trust policy naming
that key); registry signing (``moorage promote --sign``) states later that a promotion
passed its gates.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: its sibling module comes from the tree
    sys.path.insert(0, str(ROOT))

from deploy.image.publish import Target, progress, publish  # noqa: E402

UID = GID = 10001
SUITE = "bookworm"
PACKAGES = ("python3", "ca-certificates", "libstdc++6")
PURGE = (
    "bash",
    "perl-base",
    "perl",
    "perl-modules-5.36",
    "libperl5.36",
    "usrmerge",
    "libfile-find-rule-perl",
    "libnumber-compare-perl",
    "libtext-glob-perl",
)
EXCLUDED_TOP = {"dev", "proc", "sys", "run", "tmp"}
LIB = "/opt/moorage/lib"


def project_meta() -> tuple[str, str, str]:
    """Name, version and licence from ``pyproject.toml`` (the one place the version lives)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    licence = project.get("license", {})
    return project["name"], project["version"], str(licence.get("text", ""))


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def runtime_lock(name: str) -> list[str]:
    """``name==version`` for every runtime dependency of the project, as installed now."""
    seen: dict[str, str] = {}
    pending = [Requirement(r) for r in metadata.requires(name) or []]
    while pending:
        requirement = pending.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        key = requirement.name.lower().replace("_", "-")
        if key in seen:
            continue
        distribution = metadata.distribution(requirement.name)
        seen[key] = distribution.version
        for extra in requirement.extras:
            for text in distribution.requires or []:
                dependency = Requirement(text)
                if dependency.marker is not None and dependency.marker.evaluate({"extra": extra}):
                    dependency.marker = None
                    pending.append(dependency)
        pending.extend(Requirement(t) for t in distribution.requires or [])
    return sorted(f"{k}=={v}" for k, v in seen.items())


def debootstrap(rootfs: Path, epoch: int) -> None:
    progress(f"Debian {SUITE} root filesystem with {', '.join(PACKAGES)} (mmdebstrap)")
    purge = " ".join(PURGE)
    hook = (
        f'chroot "$1" dpkg --purge --force-depends --force-remove-essential {purge} >/dev/null 2>&1'
    )
    subprocess.run(
        [
            "mmdebstrap", "--mode=root", "--variant=essential", "--quiet",
            f"--include={','.join(PACKAGES)}",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--dpkgopt=path-exclude=/usr/share/info/*",
            f"--customize-hook={hook}",
            SUITE, str(rootfs),
        ],
        env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
        check=True,
    )  # fmt: skip


def install_application(rootfs: Path, lock: list[str], work: Path) -> None:
    progress(f"application and {len(lock)} locked dependencies into {LIB}")
    target = rootfs / LIB.lstrip("/")
    lock_file = work / "requirements.lock"
    lock_file.write_text("".join(f"{line}\n" for line in lock))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "--no-compile", "--no-deps", "--target", str(target), "-r", str(lock_file)],
        check=True,
    )
    build = work / "src"
    for relative in git("ls-files").splitlines():
        source = ROOT / relative
        if source.is_file():
            (build / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, build / relative)
    shutil.rmtree(target / "bin", ignore_errors=True)
    subprocess.run(
        [*pip, "--no-compile", "--no-deps", "--target", str(target), str(build)], check=True
    )
    shutil.rmtree(target / "bin", ignore_errors=True)
    share = rootfs / "opt" / "moorage"
    shutil.copy(lock_file, share / "requirements.lock")
    shutil.copy(ROOT / "LICENSE", share / "LICENSE")


def build_sbom(rootfs: Path, work: Path) -> Path:
    """The CycloneDX SBOM of what the image ships (``scripts/build_sbom.py``), also in it."""
    progress("SBOM of the shipped dependencies (CycloneDX)")
    sbom = work / "moorage.cdx.json"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_sbom.py"), "--output", str(sbom)],
        check=True,
    )
    shutil.copy(sbom, rootfs / "opt" / "moorage" / "sbom.cdx.json")
    return sbom


def add_user(rootfs: Path) -> None:
    progress(f"user moorage ({UID}:{GID}) and /var/lib/moorage")
    with (rootfs / "etc" / "passwd").open("a") as passwd:
        passwd.write(f"moorage:x:{UID}:{GID}:Moorage:/var/lib/moorage:/usr/sbin/nologin\n")
    with (rootfs / "etc" / "group").open("a") as group:
        group.write(f"moorage:x:{GID}:\n")
    data = rootfs / "var" / "lib" / "moorage"
    data.mkdir(parents=True, exist_ok=True)
    os.chown(data, UID, GID)
    for scratch in ("var/cache/apt", "var/lib/apt/lists", "var/log"):
        path = rootfs / scratch
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    (rootfs / "etc" / "machine-id").write_text("")


def _entries(rootfs: Path) -> Iterator[Path]:
    for top in sorted(rootfs.iterdir()):
        yield top
        if top.name in EXCLUDED_TOP or not top.is_dir() or top.is_symlink():
            continue
        for directory, dirnames, filenames in os.walk(top):
            dirnames.sort()
            base = Path(directory)
            for name in sorted([*dirnames, *filenames]):
                yield base / name


def write_layer(rootfs: Path, blobs: Path, epoch: int) -> tuple[str, str, int]:
    """The root filesystem as one gzip layer; its diff id, digest and size."""
    progress("layer (deterministic tar + gzip)")
    raw = blobs.parent / "layer.tar"
    with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in _entries(rootfs):
            relative = path.relative_to(rootfs).as_posix()
            info = tar.gettarinfo(str(path), arcname=relative)
            if info.ischr() or info.isblk() or info.isfifo():
                continue
            info.mtime = epoch
            info.uname = info.gname = ""
            info.pax_headers = {}
            if info.isreg():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    diff_id = _sha256(raw)
    compressed = blobs.parent / "layer.tar.gz"
    with (
        raw.open("rb") as source,
        compressed.open("wb") as sink,
        gzip.GzipFile(fileobj=sink, mode="wb", mtime=0, filename="") as zipped,
    ):
        shutil.copyfileobj(source, zipped, 1 << 20)
    raw.unlink()
    digest = _sha256(compressed)
    size = compressed.stat().st_size
    compressed.rename(blobs / digest.removeprefix("sha256:"))
    return diff_id, digest, size


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _blob(blobs: Path, document: Mapping[str, object]) -> tuple[str, int]:
    data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.removeprefix("sha256:")).write_bytes(data)
    return digest, len(data)


def write_layout(output: Path, layer: tuple[str, str, int], tag: str, epoch: int) -> str:
    """An OCI image layout with one image tagged ``tag``; returns the manifest digest."""
    name, version, licence = project_meta()
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    labels = {
        "org.opencontainers.image.title": name,
        "org.opencontainers.image.description": "An OCI container registry",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": git("rev-parse", "HEAD") or "unknown",
        "org.opencontainers.image.source": git("remote", "get-url", "origin") or "unknown",
        "org.opencontainers.image.licenses": licence,
        "org.opencontainers.image.created": created,
    }
    diff_id, digest, size = layer
    blobs = output / "blobs" / "sha256"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {
            "User": f"{UID}:{GID}",
            "Entrypoint": ["/usr/bin/python3", "-m", "cli.main"],
            "Cmd": ["api", "--listen", "0.0.0.0:5000"],
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                f"PYTHONPATH={LIB}",
                "PYTHONDONTWRITEBYTECODE=1",
                "PYTHONUNBUFFERED=1",
                "MOORAGE_DATA_DIR=/var/lib/moorage",
            ],
            "WorkingDir": "/var/lib/moorage",
            "ExposedPorts": {"5000/tcp": {}},
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "deploy/image/build.py"}],
    }
    config_digest, config_size = _blob(blobs, config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest,
                "size": size,
            }
        ],
        "annotations": labels,
    }
    manifest_digest, manifest_size = _blob(blobs, manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    (output / "index.json").write_text(json.dumps(index, indent=2))
    (output / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return manifest_digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--output", type=Path, required=True, help="OCI layout directory")
    parser.add_argument("--tag", default=None, help="tag in the layout (default: the version)")
    parser.add_argument("--push", default=None, help="also copy to docker://REF with skopeo")
    parser.add_argument("--push-creds", default=None, help="USER:PASSWORD for --push")
    parser.add_argument("--insecure", action="store_true", help="push over plain HTTP")
    parser.add_argument(
        "--no-scan", action="store_true", help="do not ask the registry (Moorage) for a scan"
    )
    parser.add_argument(
        "--cosign-key",
        type=Path,
        default=None,
        help="sign the pushed image with this cosign key (password in COSIGN_PASSWORD)",
    )
    parser.add_argument(
        "--scan-timeout",
        type=float,
        default=1800.0,
        help="seconds the scan and Moorage's SBOMs may take (default: 1800)",
    )
    args = parser.parse_args(argv)
    if args.cosign_key is not None and not args.push:
        parser.error("--cosign-key signs what --push pushes: give --push")
    if sys.version_info[:2] != (3, 11):
        parser.error("the image's Python is 3.11: build with a Python 3.11 virtualenv")
    started = time.monotonic()
    name, version, _ = project_meta()
    tag = args.tag or version
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct") or 0)
    output: Path = args.output
    if output.exists():
        shutil.rmtree(output)
    (output / "blobs" / "sha256").mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="moorage-image-") as scratch:
        work = Path(scratch)
        rootfs = work / "rootfs"
        debootstrap(rootfs, epoch)
        install_application(rootfs, runtime_lock(name), work)
        sbom = build_sbom(rootfs, work)
        add_user(rootfs)
        layer = write_layer(rootfs, output / "blobs" / "sha256", epoch)
        digest = write_layout(output, layer, tag, epoch)
        progress(f"{output}:{tag} = {digest} (layer {layer[2] / 1e6:.1f} MB)")
        if args.push:
            auth = work / "auth"
            auth.mkdir(mode=0o700)
            target = Target(
                args.push, args.push_creds, args.insecure, not args.no_scan, args.cosign_key,
                args.scan_timeout, auth,
            )  # fmt: skip
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
            if publish(output, tag, target, sbom, created, work) != 0:
                return 1
    progress(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
