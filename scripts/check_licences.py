#!/usr/bin/env python3
"""Check the licences of Moorage's run-time dependencies against an allow-list.

Usage: ``python scripts/check_licences.py [--allow SPDX ...] [--json]``

Each distribution in the run-time closure (``runtime_deps.py``) is given the licences its
metadata declares: the PEP 639 ``License-Expression``, else the ``License :: OSI
Approved`` classifiers, else a short ``License`` field. Every licence must be on the
allow-list (an expression's ``OR`` needs one allowed choice, ``AND``/``WITH`` all of
its parts); a distribution whose metadata names none must be listed in ``REVIEWED`` with
the licence a person read in its sources. Exit 1 names each offender.

The allow-list holds permissive licences and weak copyleft used as an unmodified
library (MPL-2.0 file-level, LGPL dynamic linking: psycopg is LGPL-3.0), compatible with
distributing Moorage under Apache-2.0. Strong copyleft (GPL, AGPL) is refused.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from runtime_deps import project_requirements, runtime_closure

ALLOWED = frozenset(
    {
        "Apache-2.0",
        "MIT",
        "MIT-0",
        "MIT-CMU",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "ISC",
        "PSF-2.0",
        "Python-2.0",
        "Unlicense",
        "0BSD",
        "Zlib",
        "MPL-2.0",
        "LGPL-3.0-only",
        "LGPL-3.0-or-later",
        "LGPL-2.1-or-later",
    }
)
CLASSIFIERS = {
    "Apache Software License": "Apache-2.0",
    "MIT License": "MIT",
    "BSD License": "BSD-3-Clause",
    "ISC License (ISCL)": "ISC",
    "Python Software Foundation License": "PSF-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "The Unlicense (Unlicense)": "Unlicense",
}
LICENSE_FIELD = {
    "mit": "MIT",
    "mit license": "MIT",
    "apache 2.0": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "bsd": "BSD-3-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "bsd license": "BSD-3-Clause",
    "3-clause bsd license": "BSD-3-Clause",
    "isc": "ISC",
    "mpl-2.0": "MPL-2.0",
    "psf": "PSF-2.0",
}
#: Distributions whose metadata states no usable licence, with the licence read in their
#: sources (name: SPDX expression). Keep this short and say why each is here.
REVIEWED: dict[str, str] = {}

#: A licence field that is an SPDX expression: identifiers joined by AND, OR or WITH.
_SPDX_EXPRESSION = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9.+-]*(?:\s+(?:AND|OR|WITH)\s+[A-Za-z0-9][A-Za-z0-9.+-]*)*"
)


def declared(distribution: object) -> str | None:
    """The SPDX expression the distribution's metadata declares, if any."""
    meta = distribution.metadata  # type: ignore[attr-defined]
    expression = meta.get("License-Expression")
    if expression:
        return str(expression).strip()
    found = [
        CLASSIFIERS.get(classifier.rsplit(" :: ", 1)[1], classifier)
        for classifier in meta.get_all("Classifier") or []
        if classifier.startswith("License :: OSI Approved :: ")
    ]
    if found:
        return " OR ".join(sorted(set(found)))
    # NOTE: some distributions put the whole licence text in this field: its first line
    # ("MIT License") names it.
    # A known free-text name wins over the expression form: "BSD" (ply) is a word, not an
    # SPDX identifier.
    raw = (meta.get("License") or "").strip()
    text = raw.lower()
    named = LICENSE_FIELD.get(text) or LICENSE_FIELD.get(text.partition("\n")[0].strip())
    if named:
        return named
    if _SPDX_EXPRESSION.fullmatch(raw):
        return raw  # the field holds an SPDX expression (``Apache-2.0 AND MIT``)
    return None


def allowed(expression: str, allow: frozenset[str]) -> bool:
    """Whether an SPDX expression is acceptable under ``allow``.

    Parentheses are read as grouping one level deep, enough for the expressions seen in
    practice (``Apache-2.0 OR BSD-3-Clause``, ``(MIT AND Zlib) OR Apache-2.0``).
    """
    text = expression.replace("(", " ").replace(")", " ")
    for choice in re.split(r"\s+OR\s+", text):
        parts = re.split(r"\s+(?:AND|WITH)\s+", choice.strip())
        if all(part.strip() in allow or part.strip().endswith("-exception") for part in parts):
            return True
    return False


def check(allow: frozenset[str]) -> tuple[list[dict[str, str]], list[str]]:
    """The rows (name, version, licence) and the problems."""
    rows, problems = [], []
    for name, distribution in sorted(runtime_closure(project_requirements()).items()):
        licence = REVIEWED.get(name) or declared(distribution)
        rows.append({"name": name, "version": distribution.version, "licence": licence or "?"})
        if licence is None:
            problems.append(f"{name} {distribution.version}: no licence in its metadata")
        elif not allowed(licence, allow):
            problems.append(f"{name} {distribution.version}: {licence} is not allowed")
    return rows, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allow", nargs="+", help="Replace the allow-list (SPDX ids).")
    parser.add_argument("--json", action="store_true", help="Print the rows as JSON.")
    args = parser.parse_args()
    rows, problems = check(frozenset(args.allow) if args.allow else ALLOWED)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['name']:<32} {row['version']:<14} {row['licence']}")
    for problem in problems:
        print(f"NOT ALLOWED: {problem}", file=sys.stderr)
    print(f"{len(rows)} run-time dependencies, {len(problems)} licence problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
