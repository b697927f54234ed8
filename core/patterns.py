"""Doublestar patterns, as Harbor's retention and immutability selectors use them.

``**`` matches anything (``/`` included), ``*`` anything within one path segment,
``?`` one character other than ``/``, ``{a,b}`` either alternative; everything else
matches itself. A pattern matches the whole text.
"""

from __future__ import annotations

import re
from functools import lru_cache


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "{":
            end = pattern.find("}", i)
            if end < 0:
                out.append(re.escape(char))
            else:
                options = pattern[i + 1 : end].split(",")
                out.append("(?:" + "|".join(_translate(option) for option in options) + ")")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(_translate(pattern), re.DOTALL)


def matches(pattern: str, text: str) -> bool:
    """Whether ``text`` matches the doublestar ``pattern`` as a whole."""
    return _compiled(pattern).fullmatch(text) is not None
