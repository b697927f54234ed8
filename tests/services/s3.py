"""A real moto S3 server on the loopback address, for the S3 blob store's tests."""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from tests.services.http import answers
from tests.services.process import LOOPBACK, ManagedProcess, free_port, spawn

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

READY_TIMEOUT = 30.0
ACCESS_KEY_ID = "moorage-test"
SECRET_ACCESS_KEY = "moorage-test-secret"  # moto accepts any credentials


@dataclass
class S3Server:
    """A running moto S3 server; :meth:`stop` ends its process only."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    pid: int
    _process: ManagedProcess = field(repr=False)

    def stop(self) -> None:
        """Terminate the server's PID (kill it if it lingers) and wait for it."""
        self._process.stop()


def moto_executable() -> str:
    """The ``moto_server`` next to this interpreter, else the one on ``PATH``."""
    beside = Path(sys.executable).parent / "moto_server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("moto_server")
    if found is None:
        raise FileNotFoundError("moto_server not found; install moto[server]")
    return found


def start_moto(workdir: Path) -> S3Server:
    """Start ``moto_server`` on a free loopback port and wait until it answers HTTP.

    The server's output goes to ``workdir/moto.log``.
    """
    port = free_port()
    process = spawn(
        "moto_server",
        [moto_executable(), "-H", LOOPBACK, "-p", str(port)],
        log_path=workdir / "moto.log",
    )
    process.wait_until(
        lambda: answers(LOOPBACK, port, "/"), timeout=READY_TIMEOUT, what="answering HTTP"
    )
    return S3Server(
        endpoint_url=f"http://{LOOPBACK}:{port}",
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        pid=process.pid,
        _process=process,
    )


# A moto server that enforces IAM credentials and identity policies ------------------
@dataclass(frozen=True)
class S3Credentials:
    """An IAM user's access key on the enforcing server."""

    user: str
    access_key_id: str
    secret_access_key: str


@dataclass
class EnforcingS3Server:
    """A moto S3 server that checks every request's signature against IAM users.

    ``admin`` may do anything; :meth:`bucket_user` makes users whose only policy allows
    ``s3:*`` on one bucket and its objects. moto evaluates the users' *identity*
    policies per request (resource ``arn:aws:s3:::<bucket>[/<key>]``); it does not
    evaluate bucket policies, and authorizes a server-side copy by its target only.
    Every request is recorded (see :meth:`recorded_requests`).
    """

    server: S3Server
    admin: S3Credentials
    recording: Path

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    def client(self, credentials: S3Credentials) -> S3Client:
        """An S3 client signing with ``credentials``."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
        )

    def bucket_user(self, name: str, bucket: str) -> S3Credentials:
        """Create ``bucket`` and an IAM user allowed to use that bucket only."""
        self.client(self.admin).create_bucket(Bucket=bucket)
        return _iam_user(_iam(self.endpoint_url, self.admin), name, _bucket_policy(bucket))

    def recorded_requests(self) -> list[dict[str, Any]]:
        """Every request the server received since it started enforcing."""
        with urllib.request.urlopen(  # noqa: S310 - loopback test server
            f"{self.endpoint_url}/moto-api/recorder/download-recording", timeout=10
        ) as response:
            text = response.read().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def reset_recording(self) -> None:
        """Forget the requests recorded so far."""
        _post(f"{self.endpoint_url}/moto-api/recorder/reset-recording", b"")

    def signed_requests(self) -> list[SignedRequest]:
        """The recorded requests as (signing key, bucket, copy source bucket)."""
        return [_signed(entry) for entry in self.recorded_requests()]

    def stop(self) -> None:
        self.server.stop()


@dataclass(frozen=True)
class SignedRequest:
    """Who signed a recorded request, and which buckets it touched."""

    method: str
    access_key_id: str
    bucket: str
    copy_source_bucket: str | None


def _signed(entry: dict[str, Any]) -> SignedRequest:
    headers = {name.lower(): value for name, value in entry["headers"].items()}
    credential = headers.get("authorization", "").partition("Credential=")[2]
    path = urllib.parse.urlsplit(entry["url"]).path
    source = headers.get("x-amz-copy-source")
    return SignedRequest(
        method=entry["method"],
        access_key_id=credential.partition("/")[0],
        bucket=urllib.parse.unquote(path).lstrip("/").partition("/")[0],
        copy_source_bucket=None
        if source is None
        else urllib.parse.unquote(source).lstrip("/").partition("/")[0],
    )


def start_enforcing_moto(workdir: Path) -> EnforcingS3Server:
    """Start moto on a free loopback port, create an admin user, then enforce IAM.

    Until the ``reset-auth`` call moto accepts any request (that is how the admin is
    made); afterwards every request must be signed by an IAM user whose policies
    allow the action on the resource, else moto answers ``AccessDenied`` (or
    ``InvalidAccessKeyId`` / ``SignatureDoesNotMatch``).
    """
    recording = workdir / "requests.jsonl"
    env = {**os.environ, "MOTO_RECORDER_FILEPATH": str(recording)}
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    port = free_port()
    process = spawn(
        "moto_server (IAM enforced)",
        [moto_executable(), "-H", LOOPBACK, "-p", str(port)],
        log_path=workdir / "moto.log",
        env=env,
    )
    process.wait_until(
        lambda: answers(LOOPBACK, port, "/"), timeout=READY_TIMEOUT, what="answering HTTP"
    )
    endpoint = f"http://{LOOPBACK}:{port}"
    try:
        admin = _enforce(endpoint)
    except BaseException:
        process.stop()
        raise
    server = S3Server(
        endpoint_url=endpoint,
        access_key_id=admin.access_key_id,
        secret_access_key=admin.secret_access_key,
        pid=process.pid,
        _process=process,
    )
    return EnforcingS3Server(server, admin, recording)


def _enforce(endpoint: str) -> S3Credentials:
    """Make the admin user, then switch IAM enforcement and request recording on."""
    anyone = S3Credentials("anyone", ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    admin = _iam_user(_iam(endpoint, anyone), "moorage-admin", _ALLOW_ALL)
    _post(f"{endpoint}/moto-api/reset-auth", b"0")
    _post(f"{endpoint}/moto-api/recorder/start-recording", b"")
    return admin


_ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def _iam(endpoint: str, credentials: S3Credentials) -> Any:
    """An IAM client (untyped: the IAM stubs are not installed)."""
    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        region_name="us-east-1",
    )
    return session.client("iam", endpoint_url=endpoint)


def _bucket_policy(bucket: str) -> dict[str, Any]:
    resources = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": resources}],
    }


def _iam_user(iam: Any, name: str, policy: dict[str, Any]) -> S3Credentials:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-only", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return S3Credentials(name, key["AccessKeyId"], key["SecretAccessKey"])


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(  # noqa: S310
        url, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
