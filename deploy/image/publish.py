"""What the image build does after it built the layout: push, sign, scan, attach the SBOMs.

Every step after the push names the image by the digest the registry stored, never by the
moving tag. The registry password goes into one private auth file (Docker's
``config.json`` format) that skopeo, oras and cosign all read, never onto a command line.

1. ``skopeo copy`` pushes the layout.
2. With a cosign key, ``cosign sign`` signs the image offline (``--tlog-upload=false``; the
   key's password in ``COSIGN_PASSWORD``), in cosign's tag scheme beside the image.
3. Unless told not to, Moorage scans it (``moorage scan run --wait``): the build fails when
   the report is not ``succeeded``, prints its summary line, then waits for the CycloneDX
   and SPDX referrers Moorage's scan attaches (the packages it found in the image).
4. The build's own CycloneDX SBOM (the locked runtime dependencies, also in the image) is
   attached last, as a referrer told apart by its description. Last, because Moorage does
   not attach a document type the image already has: attached before the scan, it would
   take the place of Moorage's CycloneDX document.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[2]
CYCLONEDX: Final = "application/vnd.cyclonedx+json"
SPDX: Final = "application/spdx+json"
DESCRIPTION: Final = "org.opencontainers.image.description"
#: The description of the build's own SBOM referrer (Moorage's say "made by Moorage").
BUILD_SBOM: Final = "CycloneDX SBOM of the locked runtime dependencies (image build)"
POLL_SECONDS: Final = 1.0


class BuildError(Exception):
    """A step after the push failed; the message says which and why."""


def progress(message: str) -> None:
    print(f"[image {time.strftime('%H:%M:%S')}] {message}", flush=True)


def tool(name: str) -> str:
    return shutil.which(name) or str(Path.home() / ".cache" / "moorage-tools" / "bin" / name)


@dataclass(frozen=True)
class Target:
    """Where ``--push`` sends the image, how to log in, and what to do there afterwards."""

    reference: str
    creds: str | None
    insecure: bool
    scan: bool
    cosign_key: Path | None
    #: Seconds the scan and Moorage's SBOMs may take together.
    scan_timeout: float
    #: The private directory of the auth file (``config.json``) of every client.
    auth_dir: Path

    @property
    def host(self) -> str:
        return self.reference.partition("/")[0]

    @property
    def repository(self) -> str:
        """``project/name``: the reference without its registry host, tag or digest."""
        path = self.reference.partition("/")[2].split("@", 1)[0]
        return path.rsplit(":", 1)[0] if ":" in path else path

    @property
    def url(self) -> str:
        """The registry's base URL (Moorage's management API answers under it)."""
        return f"{'http' if self.insecure else 'https'}://{self.host}"

    def at(self, digest: str) -> str:
        return f"{self.host}/{self.repository}@{digest}"

    def write_auth(self) -> Path:
        """The auth file holding the credentials (an empty one without credentials)."""
        auths: dict[str, Any] = {}
        if self.creds:
            auths[self.host] = {"auth": base64.b64encode(self.creds.encode()).decode()}
        config = self.auth_dir / "config.json"
        config.touch(mode=0o600)
        config.write_text(json.dumps({"auths": auths}))
        return config


def push(output: Path, tag: str, target: Target, work: Path) -> str:
    """Copy the image to the target (skopeo); the digest of the manifest the registry stored."""
    progress(f"pushing to {target.reference}")
    digest_file = work / "pushed.digest"
    command = [tool("skopeo"), "copy", "--quiet", f"--digestfile={digest_file}",
               f"--dest-authfile={target.write_auth()}"]  # fmt: skip
    if target.insecure:
        command.append("--dest-tls-verify=false")
    subprocess.run([*command, f"oci:{output}:{tag}", f"docker://{target.reference}"], check=True)
    return digest_file.read_text().strip()


def _oras(target: Target, *args: str) -> list[str]:
    command = [tool("oras"), *args, "--registry-config", str(target.auth_dir / "config.json")]
    return [*command, "--plain-http"] if target.insecure else command


def referrers(target: Target, digest: str) -> list[dict[str, Any]]:
    """The image's referrers (the OCI referrers API, through ``oras discover``)."""
    found = subprocess.run(
        [*_oras(target, "discover", "--format", "json"), target.at(digest)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if found.returncode != 0:
        raise BuildError(f"oras discover failed: {found.stderr.strip()}")
    listed: list[dict[str, Any]] = json.loads(found.stdout).get("referrers") or []
    return listed


def _is_build_sbom(referrer: dict[str, Any]) -> bool:
    return (referrer.get("annotations") or {}).get(DESCRIPTION) == BUILD_SBOM


def attach_sbom(target: Target, digest: str, sbom: Path, created: str) -> None:
    """Attach the build's SBOM as a referrer of the image, unless it is attached already."""
    if any(_is_build_sbom(r) for r in referrers(target, digest)):
        progress("the build's SBOM is attached already")
        return
    progress("attaching the build's SBOM (CycloneDX) as a referrer of the image")
    attach = _oras(target, "attach", "--artifact-type", CYCLONEDX,
                   "--annotation", f"{DESCRIPTION}={BUILD_SBOM}",
                   "--annotation", f"org.opencontainers.image.created={created}")  # fmt: skip
    # a relative name: the layer's title
    attach += [target.at(digest), f"{sbom.name}:{CYCLONEDX}"]
    subprocess.run(attach, check=True, cwd=sbom.parent, stdout=subprocess.DEVNULL)


def sign(target: Target, digest: str, key: Path) -> None:
    """Sign the image by digest with cosign and the operator's key (no transparency log).

    cosign reads the key's password from ``COSIGN_PASSWORD``; the signature goes into the
    registry beside the image (``sha256-<hex>.sig``), where ``cosign verify`` with the
    public key, and a Moorage trust policy naming that key, check it.
    """
    progress(f"signing {target.at(digest)} with cosign ({key.name})")
    command = [tool("cosign"), "sign", "--key", str(key.resolve()),
               "--tlog-upload=false", "--yes"]  # fmt: skip
    if target.insecure:
        command.append("--allow-insecure-registry")
    env = os.environ | {"DOCKER_CONFIG": str(target.auth_dir)}
    result = subprocess.run(
        [*command, target.at(digest)], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BuildError(f"cosign sign failed: {result.stderr.strip()}")


def _moorage(target: Target, timeout: float, *args: str) -> subprocess.CompletedProcess[str]:
    """``moorage ARGS`` against the target registry, logged in by environment variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
    env["MOORAGE_URL"] = target.url
    if target.creds:
        user, _, password = target.creds.partition(":")
        env |= {"MOORAGE_USERNAME": user, "MOORAGE_PASSWORD": password}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False,
            timeout=max(timeout, 1.0),
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise BuildError(
            f"`moorage {' '.join(args[:2])}` took over {timeout:.0f} s "
            "(does the Moorage run a worker?)"
        ) from exc


def scan(target: Target, digest: str, deadline: float) -> None:
    """Have Moorage scan the image, wait for the report; fail unless it ``succeeded``."""
    project, repository = target.repository.partition("/")[0], target.repository
    progress(f"Moorage scans {repository}@{digest} (waiting for the report)")
    started = _moorage(
        target, deadline - time.monotonic(), "scan", "run", "--project", project,
        "--repository", repository, "--digest", digest, "--wait",
    )  # fmt: skip
    if started.returncode != 0:
        raise BuildError(f"the scan did not run: {started.stderr.strip()}")
    listed = _moorage(
        target, 60, "scan", "status", "--project", project, "--repository", repository, "--json"
    )
    if listed.returncode != 0:
        raise BuildError(f"no scan status: {listed.stderr.strip()}")
    found = [r for r in json.loads(listed.stdout) if r["digest"] == digest]
    if not found or found[0]["status"] != "succeeded":
        why = found[0]["reason"] if found else "no report"
        raise BuildError(f"the scan did not succeed: {why}")
    report = _moorage(target, 60, "scan", "report", "--project", project, digest)
    if report.returncode != 0:
        raise BuildError(f"no scan report: {report.stderr.strip()}")
    progress(f"scan: {report.stdout.splitlines()[0]}")
    progress(f"findings: moorage scan report --project {project} {digest}")


def moorage_sboms(target: Target, digest: str, deadline: float) -> dict[str, str]:
    """Wait for the SBOM referrers Moorage's scan attaches; their digests by type."""
    while True:
        found = {
            r["artifactType"]: r["digest"]
            for r in referrers(target, digest)
            if r.get("artifactType") in (CYCLONEDX, SPDX) and not _is_build_sbom(r)
        }
        if len(found) == 2:  # noqa: PLR2004 - CycloneDX and SPDX
            for media_type, referrer in sorted(found.items()):
                progress(f"Moorage's SBOM {media_type}: {referrer}")
            return found
        if time.monotonic() > deadline:
            raise BuildError(f"Moorage attached no SBOMs in time (found {sorted(found)})")
        time.sleep(POLL_SECONDS)


def publish(output: Path, tag: str, target: Target, sbom: Path, created: str, work: Path) -> int:
    """Push, sign, scan and attach; the build's exit status (1: a step after the push failed)."""
    pushed = push(output, tag, target, work)
    deadline = time.monotonic() + target.scan_timeout
    failed: BuildError | None = None
    try:
        if target.cosign_key is not None:
            sign(target, pushed, target.cosign_key)
        if target.scan:
            scan(target, pushed, deadline)
            moorage_sboms(target, pushed, deadline)
    except BuildError as exc:
        failed = exc
    attach_sbom(target, pushed, sbom, created)
    if failed is not None:
        progress(f"failed: {failed}")
        return 1
    return 0
