"""The monitoring files in ``deploy/``: alert rules and dashboard queries Prometheus accepts."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _promtool() -> str:
    found = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(found).is_file(), "Debian's prometheus package is needed (scripts/install-tools)"
    return found


def _check_rules(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_alert_rules_pass_promtool() -> None:
    checked = _check_rules(DEPLOY / "prometheus" / "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(("}]}]})
    )
    assert _check_rules(broken).returncode != 0


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "moorage-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert exprs
    rules = [{"record": f"dashboard:query{i}", "expr": expr} for i, expr in enumerate(exprs)]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = _check_rules(path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
