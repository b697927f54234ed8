"""The ``moorage`` command line: its surface and the pieces ``moorage dev`` is built of."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from cli.dev_settings import dev_overrides, with_admin_password, with_dev_temporal_address
from cli.listen import Listen
from cli.main import app
from cli.password import PASSWORD_FILE, ensure_admin_password
from cli.temporal_dev import DevServerLayout, dev_server_command, find_temporal_binary
from core.settings import Settings, StorageBackend

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("api", "worker", "migrate", "dev"):
        assert command in result.output


def test_dev_help_shows_its_options() -> None:
    result = runner.invoke(app, ["dev", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--data-dir", "--listen", "--temporal-port", "--temporal-ui-port"):
        assert option in result.output


def test_bad_listen_is_a_usage_error() -> None:
    result = runner.invoke(app, ["api", "--listen", "nonsense"])
    assert result.exit_code == 2


def test_password_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    first = ensure_admin_password(tmp_path)
    assert first.created
    assert first.path == tmp_path / PASSWORD_FILE
    assert len(first.value) >= 32
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    assert first.path.read_text(encoding="utf-8").strip() == first.value

    second = ensure_admin_password(tmp_path)
    assert not second.created
    assert second.value == first.value
    assert sorted(p.name for p in tmp_path.iterdir()) == [PASSWORD_FILE]


def test_passwords_differ_between_data_dirs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = ensure_admin_password(tmp_path / "a")
    other = ensure_admin_password(tmp_path / "b")
    assert one.value != other.value


def test_loose_password_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / PASSWORD_FILE
    path.write_text("s3cret-enough\n", encoding="utf-8")
    path.chmod(0o644)
    stored = ensure_admin_password(tmp_path)
    assert stored.value == "s3cret-enough"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_empty_password_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / PASSWORD_FILE).write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        ensure_admin_password(tmp_path)


def test_dev_prints_a_new_password_once_then_only_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(**dev_overrides(tmp_path, None, None))
    settings = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"admin_password": None})}
    )
    first = with_admin_password(settings)
    shown = capsys.readouterr().out
    assert first.auth.admin_password is not None
    password = first.auth.admin_password.get_secret_value()
    assert password in shown

    again = with_admin_password(settings)
    shown_again = capsys.readouterr().out
    assert again.auth.admin_password == first.auth.admin_password
    assert password not in shown_again
    assert str(tmp_path / PASSWORD_FILE) in shown_again


def test_configured_password_wins_and_no_file_is_written(tmp_path: Path) -> None:
    settings = Settings(**dev_overrides(tmp_path, None, None))
    settings = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"admin_password": SecretStr("given")})}
    )
    assert with_admin_password(settings).auth.admin_password == SecretStr("given")
    assert not (tmp_path / PASSWORD_FILE).exists()


def test_dev_forces_local_storage_under_the_data_dir(tmp_path: Path) -> None:
    settings = with_dev_temporal_address(Settings(**dev_overrides(tmp_path, 17233, 18233)))
    assert settings.data_dir == tmp_path.resolve()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'moorage.db'}"
    assert settings.storage is StorageBackend.FILESYSTEM
    assert settings.resolved_blob_root == tmp_path.resolve() / "blobs"
    assert settings.auth.create_project_on_push
    assert settings.temporal.dev_port == 17233
    assert settings.temporal.dev_ui_port == 18233
    assert settings.temporal.address == "127.0.0.1:17233"


def test_dev_server_command_binds_loopback_and_persists(tmp_path: Path) -> None:
    settings = Settings(**dev_overrides(tmp_path, 17233, 18233))
    layout = DevServerLayout(tmp_path / "temporal")
    command = dev_server_command(Path("/bin/temporal"), settings, layout)
    joined = " ".join(command)
    assert command[:3] == ["/bin/temporal", "server", "start-dev"]
    assert "--ip 127.0.0.1" in joined
    assert "--port 17233" in joined
    assert "--ui-port 18233" in joined
    assert f"--db-filename {layout.database}" in joined
    assert "--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal" in joined
    assert "--namespace default" in joined
    assert "--http-port" not in joined


def test_the_temporal_binary_is_found() -> None:
    assert find_temporal_binary().is_file()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000", Listen("127.0.0.1", 5000)),
        ("0.0.0.0:80", Listen("0.0.0.0", 80)),  # noqa: S104 - parsing only
        ("[::1]:5000", Listen("::1", 5000)),
    ],
)
def test_listen_parses(text: str, expected: Listen) -> None:
    assert Listen.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize("text", ["5000", ":5000", "host:", "host:http", "host:70000"])
def test_listen_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        Listen.parse(text)


#: What no command needs before it runs: each command imports its own (the web and
#: database stacks, Temporal, the configuration-as-code models and planner, the SBOM
#: libraries). ``moorage --help``, every CLI command and the start of ``moorage api`` and
#: ``moorage worker`` load the ``moorage`` module first.
LOADED_BY_THEIR_COMMANDS = (
    "core.ascode_models",
    "core.ascode_plan",
    "cli.apply_execute",
    "httpx",
    "litestar",
    "temporalio",
    "sqlalchemy",
    "spdx_tools",
    "cyclonedx",
    "boto3",
    "psycopg",
    "granian",
)


def _loaded_after(imports: str, watched: tuple[str, ...]) -> str:
    """Which of ``watched`` a fresh interpreter has loaded after ``import <imports>``."""
    probe = f"import sys, {imports}; print(','.join(m for m in {watched!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
        timeout=120,
    )
    return done.stdout.strip()


def test_the_moorage_module_loads_no_commands_dependencies() -> None:
    assert _loaded_after("cli.main", LOADED_BY_THEIR_COMMANDS) == ""


def test_api_and_worker_load_the_sbom_libraries_only_to_make_a_document() -> None:
    """The servers' start-up leaves the CycloneDX and SPDX libraries to the first SBOM."""
    assert _loaded_after("cli.api, api.app, cli.worker_process", ("cyclonedx", "spdx_tools")) == ""
