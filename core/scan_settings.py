"""Settings of image scanning: the bounds every analysis of untrusted layers stays within."""

from __future__ import annotations

from pydantic import BaseModel, Field

_MIB = 1024 * 1024


class VulnDbSettings(BaseModel):
    """Where the offline vulnerability data (OSV exports) comes from.

    ``sources`` maps an OSV ecosystem (``Debian``, ``Alpine``, ``PyPI``, ``npm``, ``Go``,
    ``Maven``, ...) to a location: a directory (or ``file://`` URL) holding ``all.zip``
    and ``modified_id.csv``, the path of a zip, or an ``https://`` prefix such as
    ``https://osv-vulnerabilities.storage.googleapis.com/Debian``.
    """

    sources: dict[str, str] = Field(default_factory=dict)
    #: Largest OSV record accepted, and the most records one export may hold.
    max_record_bytes: int = Field(default=16 * _MIB, ge=1)
    max_records: int = Field(default=2_000_000, ge=1)
    #: Largest export file downloaded.
    max_download_bytes: int = Field(default=4 * 1024 * _MIB, ge=1)
    #: Longest one export download may take (seconds), and records written per transaction.
    download_timeout_seconds: float = Field(default=600.0, gt=0)
    import_batch_size: int = Field(default=500, ge=1)
    #: Seconds between scheduled imports of every source (0: no schedule).
    import_every_seconds: int = Field(default=6 * 3600, ge=0)


class ScanSettings(BaseModel):
    """Limits of one image analysis (per platform manifest).

    Every bound ends the analysis with a failure naming the limit that was hit; nothing
    stored is touched and the process keeps running.
    """

    #: Most bytes decompressed from all layers of one image together (gzip bombs).
    max_uncompressed_bytes: int = Field(default=16 * 1024 * _MIB, ge=1)
    #: Most tar entries in all layers of one image together.
    max_entries: int = Field(default=2_000_000, ge=1)
    #: Most bytes read from one file the analyzers inspect (a binary, a database, a jar).
    max_file_bytes: int = Field(default=512 * _MIB, ge=1)
    #: Most bytes of package metadata kept in memory for one image (status files, JSON).
    max_kept_bytes: int = Field(default=256 * _MIB, ge=1)
    #: Deepest nesting of a JSON document (package.json, lockfiles).
    max_json_depth: int = Field(default=64, ge=1)
    #: Deepest nesting of archives inside archives (jars in jars).
    max_archive_depth: int = Field(default=4, ge=1)
    #: Most entries of one archive (zip) and most bytes one archive expands to.
    max_archive_entries: int = Field(default=100_000, ge=1)
    max_archive_bytes: int = Field(default=1024 * _MIB, ge=1)
    #: Largest decompressed / compressed ratio of one archive entry (zip bombs).
    max_archive_ratio: int = Field(default=200, ge=1)
    #: Most symbolic links followed while resolving one path (loops end there).
    max_symlink_hops: int = Field(default=40, ge=1)
    #: Longest one image analysis may take, in seconds.
    max_seconds: float = Field(default=900.0, gt=0)
    #: Bytes of a file kept in memory before it spills to a temporary file.
    spool_bytes: int = Field(default=8 * _MIB, ge=0)
    #: The offline vulnerability data.
    vulndb: VulnDbSettings = VulnDbSettings()
    #: How long the API trusts its copy of the projects' pull policies (seconds): a
    #: changed policy applies to pulls at most this long after the change.
    policy_cache_seconds: float = Field(default=5.0, ge=0)
    #: How long the API reuses one image's pull decision (seconds; 0: decide every pull),
    #: and how many decisions it keeps: a finished scan, a new finding or an allowlist
    #: change made through another API process applies at most this long after it.
    verdict_cache_seconds: float = Field(default=5.0, ge=0)
    verdict_cache_entries: int = Field(default=10_000, ge=0)
    #: Artifact scans run at once by one on-demand scan of a project or of everything.
    concurrency: int = Field(default=4, ge=1, le=64)
