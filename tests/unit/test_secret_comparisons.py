"""Static check: secrets are compared in constant time, never with ``==``, ``!=`` or ``in``.

Every first-party module is parsed with :mod:`ast`. A comparison is a finding when one
operand's name or attribute suggests a secret (password, token, signature, MAC, nonce,
OIDC ``state``, PKCE verifier, private key, credential hash ...) and the other side is
not a literal. ``hmac.compare_digest``/``secrets.compare_digest`` are the way to
compare such values. Exceptions are listed in :data:`ALLOWED`, each with its reason.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "core", "storage", "activities", "workflows", "cli", "bench")
#: Generated schema migrations hold no logic.
SKIPPED_DIRS = ("storage/db/migrations",)

#: Words that on their own name a secret (matched against the words of an identifier).
SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "token",
        "tokens",
        "signature",
        "sig",
        "mac",
        "hmac",
        "nonce",
        "state",
        "verifier",
        "pkce",
        "otp",
        "credential",
        "credentials",
        "apikey",
        "jti",
    }
)
#: Words that name a secret only next to a word from :data:`QUALIFIERS`
#: (``password_hash``, ``private_key``, ``signing_key``; not an OCI ``digest`` or a dict ``key``).
QUALIFIED_WORDS = frozenset({"hash", "digest", "key", "pem", "code"})
QUALIFIERS = frozenset(
    {
        "private",
        "signing",
        "secret",
        "password",
        "token",
        "api",
        "access",
        "auth",
        "session",
        "hmac",
        "mac",
        "credential",
        "pem",
        "verifier",
        "challenge",
        "authorization",
    }
)
#: Words that make an identifier about a secret but not the secret itself.
HARMLESS_WORDS = frozenset(
    {
        "kind",
        "type",
        "prefix",
        "name",
        "names",
        "scope",
        "scopes",
        "url",
        "ttl",
        "count",
        "len",
        "length",
        "id",
        "ids",
        "owner",
        "expires",
        "at",
        "method",
        "status",
        "revoked",
        "kid",
    }
)

#: ``(path, operand as written)`` -> why the comparison is not a secret comparison.
ALLOWED: dict[tuple[str, str], str] = {
    ("core/preheat.py", "events.SIGNATURE_VERIFIED"): (
        "an event's kind against the public name of the signature.verified event, not a "
        "signature's bytes"
    ),
    ("storage/db/repos/identity.py", "LOGIN.c.state"): (
        "SQL lookup of a pending browser login by the SHA-256 of its state; the database "
        "compares hashes the caller cannot steer byte by byte"
    ),
    ("storage/db/repos/users.py", "USER.c.password_hash"): (
        "compare-and-set of a rehash in SQL: the stored hash is matched against the hash "
        "the same login just read, never against anything a caller sends"
    ),
    ("core/notation_signing.py", "NOTARY_SIGNATURE"): (
        "a referrer's artifactType against the public media type of notation signatures, "
        "not a signature's bytes"
    ),
    ("core/signatures_fulcio.py", "ExtendedKeyUsageOID.CODE_SIGNING"): (
        "membership of the public codeSigning OID in a certificate's extended key usages"
    ),
    ("core/signatures_rekor.py", "recorded.signature"): (
        "a bundle's signature against the one its transparency-log entry records: both are "
        "published values, nothing secret to leak through timing"
    ),
    ("bench/memory.py", "side.state"): (
        "the benchmark's per-registry scratch dictionary (which blobs a case already "
        "pushed); membership of a blob key, no secret involved"
    ),
}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    operand: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.operand} compared without compare_digest"


def _words(identifier: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", identifier)
    return [word for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if word]


def looks_secret(identifier: str) -> bool:
    """True when the words of ``identifier`` name a secret value."""
    words = _words(identifier)
    if not words or words[-1] in HARMLESS_WORDS:
        return False
    if any(word in SECRET_WORDS for word in words):
        return True
    return any(word in QUALIFIED_WORDS for word in words) and any(
        word in QUALIFIERS for word in words
    )


def _operand_name(node: ast.expr) -> str | None:
    """The identifier an operand is known by: ``x``, ``a.b.x``, ``d["x"]``, ``d.get("x")``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        return str(node.args[0].value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr if node.func.attr not in {"encode", "decode", "strip"} else None
    return None


def _is_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_literal(element) for element in node.elts)
    if isinstance(node, ast.Dict):
        return all(key is not None and _is_literal(key) for key in node.keys)
    return False


def _is_constant_name(node: ast.expr) -> bool:
    """A module constant by convention (``PENDING``, ``_OPEN``): a fixed, public value."""
    return isinstance(node, ast.Name) and node.id.lstrip("_").isupper()


_CHECKED_OPS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def find_secret_comparisons(source: str, path: str) -> list[Finding]:
    """Comparisons in ``source`` whose operand looks like a secret, minus :data:`ALLOWED`."""
    findings: list[Finding] = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for index, op in enumerate(node.ops):
            if not isinstance(op, _CHECKED_OPS):
                continue
            pair = (operands[index], operands[index + 1])
            if isinstance(op, (ast.In, ast.NotIn)) and _is_constant_name(pair[1]):
                continue  # membership in a named constant set, e.g. ``state in _OPEN``
            if any(_is_literal(side) for side in pair) or any(
                (path, ast.unparse(side)) in ALLOWED for side in pair
            ):
                continue
            for side in pair:
                name = _operand_name(side)
                if name is None or not looks_secret(name):
                    continue
                findings.append(Finding(path, node.lineno, ast.unparse(side)))
                break
    return findings


def first_party_modules() -> list[Path]:
    modules: list[Path] = []
    for package in PACKAGES:
        for module in sorted((ROOT / package).rglob("*.py")):
            relative = module.relative_to(ROOT).as_posix()
            if not relative.startswith(SKIPPED_DIRS):
                modules.append(module)
    return modules


def test_the_check_sees_every_package() -> None:
    modules = {module.relative_to(ROOT).parts[0] for module in first_party_modules()}
    assert modules >= {"api", "core", "storage", "activities", "workflows", "cli"}


def test_no_secret_is_compared_with_equality() -> None:
    findings = [
        finding
        for module in first_party_modules()
        for finding in find_secret_comparisons(
            module.read_text(encoding="utf-8"), module.relative_to(ROOT).as_posix()
        )
    ]
    assert not findings, "use hmac.compare_digest:\n" + "\n".join(map(str, findings))


def test_every_allowlist_entry_still_matches_code() -> None:
    unused = []
    for path, operand in ALLOWED:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        seen = {
            ast.unparse(side)
            for node in ast.walk(tree)
            if isinstance(node, ast.Compare)
            for side in (node.left, *node.comparators)
        }
        if operand not in seen:
            unused.append((path, operand))
    assert not unused, f"stale allowlist entries: {unused}"


@pytest.mark.parametrize(
    "snippet",
    [
        "if secret == given:\n    pass\n",
        "ok = request.headers['x-signature'] != expected\n",
        "ok = stored.password_hash == hash_password(given)\n",
        "ok = params.get('state') == session_state\n",
        "ok = code_verifier in accepted\n",
        "ok = robot.secret_hash == candidate\n",
        "ok = private_key == other\n",
        "ok = given_token == ADMIN_TOKEN\n",
    ],
)
def test_the_check_flags_equality_on_secrets(snippet: str) -> None:
    findings = find_secret_comparisons(snippet, "example.py")
    assert len(findings) == 1, findings


@pytest.mark.parametrize(
    "snippet",
    [
        "ok = hmac.compare_digest(secret.encode(), given.encode())\n",
        "ok = secrets.compare_digest(token, expected)\n",
        "ok = manifest.digest == blob.digest\n",
        "ok = key == other_key\n",
        "ok = token == ''\n",
        "ok = scheme in ('bearer', 'basic')\n",
        "ok = token_type == 'Bearer'\n",
        "ok = token.kid == header_kid\n",
        "ok = state is None\n",
        "ok = run['state'] in PENDING\n",
    ],
)
def test_the_check_leaves_other_comparisons_alone(snippet: str) -> None:
    assert find_secret_comparisons(snippet, "example.py") == []
