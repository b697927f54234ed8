"""Settings of the Harbor Pluggable Scanner API, served and used (``core.scanner_api``)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class DelegateSettings(BaseModel):
    """An external scanner that speaks the Pluggable Scanner API (v1.1/v1.2).

    When ``url`` is set, scans of the selected projects are handed to it instead of the
    built-in analyzer, unless a scanner registration (``core.scanners``: the project's
    selected one, or the default) takes them first: the scan workflow asks it to scan the
    artifact, giving it a short-lived pull-only token for that repository, and stores its
    report as the artifact's own (pull policy, allowlists and promotion gates read it as usual).

    Attributes:
        url: Base URL of the scanner (the part before ``/api/v1``).
        token: Sent as ``Authorization: Bearer`` (unset: no authorization).
        projects: Projects whose scans go to it (empty: every project).
        registry_url: The URL the scanner pulls from (default: ``public_url``, then
            ``replication.local_url``).
        poll_seconds: Least wait between two report polls (the scanner's
            ``Refresh-After`` counts when longer, up to ``max_poll_seconds``).
        timeout_seconds: Longest wait for one report before the scan fails.
    """

    url: str | None = None
    token: SecretStr | None = None
    projects: list[str] = Field(default_factory=list)
    registry_url: str | None = None
    poll_seconds: float = Field(default=1.0, gt=0)
    max_poll_seconds: float = Field(default=10.0, gt=0)
    timeout_seconds: float = Field(default=1800.0, gt=0)

    def selects(self, project: str) -> bool:
        """Whether scans of ``project`` go to the external scanner."""
        return self.url is not None and (not self.projects or project in self.projects)


class ScannerApiSettings(BaseModel):
    """The scanner adapter Moorage serves, and the external scanner it may use.

    Attributes:
        tokens: Bearer tokens (or ``X-ScannerAdapter-API-Key`` values) that may call the
            adapter under ``/scanner-adapter/api/v1``; none: the adapter answers 401.
        keep_seconds: How long a served scan's report stays readable.
        max_blob_bytes: Largest blob pulled from a registry for one served scan.
        delegate: The external scanner this installation's own scans use.
    """

    tokens: list[SecretStr] = Field(default_factory=list)
    keep_seconds: int = Field(default=24 * 3600, ge=60)
    max_blob_bytes: int = Field(default=4 * 1024 * 1024 * 1024, ge=1)
    delegate: DelegateSettings = DelegateSettings()
