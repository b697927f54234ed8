"""One severity per finding: the data source's own rating first, then CVSS v4, v3, v2.

Bands for CVSS v3/v4 scores: None 0.0, Low 0.1-3.9, Medium 4.0-6.9, High 7.0-8.9,
Critical 9.0-10.0 (v2 has no Critical: 7.0 and above is High). Names follow the Harbor
report: Unknown, Negligible, Low, Medium, High, Critical.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cvss import CVSS2, CVSS3, CVSS4


class Severity(StrEnum):
    UNKNOWN = "Unknown"
    NEGLIGIBLE = "Negligible"
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"
    CRITICAL = "Critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


_WORDS = {
    "unimportant": Severity.NEGLIGIBLE,
    "negligible": Severity.NEGLIGIBLE,
    "low": Severity.LOW,
    "moderate": Severity.MEDIUM,
    "medium": Severity.MEDIUM,
    "important": Severity.HIGH,
    "high": Severity.HIGH,
    "critical": Severity.CRITICAL,
}


@dataclass(frozen=True)
class Rating:
    severity: Severity
    source: str
    score: float | None = None
    vector: str | None = None


def band(score: float, v2: bool = False) -> Severity:
    if score <= 0:
        return Severity.NEGLIGIBLE
    if score < 4.0:  # noqa: PLR2004 - CVSS bands
        return Severity.LOW
    if score < 7.0:  # noqa: PLR2004
        return Severity.MEDIUM
    if score < 9.0 or v2:  # noqa: PLR2004
        return Severity.HIGH
    return Severity.CRITICAL


def _cvss(entries: list[Any]) -> Rating | None:
    by_type = {
        e.get("type"): str(e.get("score", ""))
        for e in entries
        if isinstance(e, dict) and e.get("score")
    }
    for kind in ("CVSS_V4", "CVSS_V3", "CVSS_V2"):
        vector = by_type.get(kind)
        if not vector:
            continue
        try:
            if kind == "CVSS_V4":
                score = float(CVSS4(vector).base_score)
            elif kind == "CVSS_V3":
                score = float(CVSS3(vector).base_score)
            else:
                score = float(CVSS2(vector).scores()[0])
        except Exception:  # noqa: BLE001, S112 - a malformed vector rates nothing
            continue
        return Rating(band(score, v2=kind == "CVSS_V2"), kind, score, vector)
    return None


def _source_word(document: dict[str, Any], affected: dict[str, Any]) -> Rating | None:
    candidates = [
        ("ecosystem_specific.severity", (affected.get("ecosystem_specific") or {}).get("severity")),
        ("ecosystem_specific.urgency", (affected.get("ecosystem_specific") or {}).get("urgency")),
        ("database_specific.severity", (affected.get("database_specific") or {}).get("severity")),
        ("database_specific.severity", (document.get("database_specific") or {}).get("severity")),
    ]
    candidates += [
        ("Ubuntu", e.get("score"))
        for e in [*(affected.get("severity") or []), *(document.get("severity") or [])]
        if isinstance(e, dict) and e.get("type") == "Ubuntu"
    ]
    for source, word in candidates:
        if isinstance(word, str) and word.strip().lower() in _WORDS:
            return Rating(_WORDS[word.strip().lower()], source)
    return None


def rate(document: dict[str, Any], affected: dict[str, Any]) -> Rating:
    """The preferred rating of a record for one affected package.

    Keeps the CVSS score and vector alongside a source rating when both exist.
    """
    cvss = _cvss([*(affected.get("severity") or []), *(document.get("severity") or [])])
    own = _source_word(document, affected)
    if own is not None:
        return Rating(
            own.severity, own.source, cvss.score if cvss else None, cvss.vector if cvss else None
        )
    return cvss or Rating(Severity.UNKNOWN, "none")
