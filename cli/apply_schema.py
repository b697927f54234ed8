"""Write the published JSON Schema of configuration files (``schemas/``).

``python -m cli.apply_schema`` regenerates ``schemas/moorage-config.v1.schema.json`` from
the document models (``core.ascode_models``); a test fails while the checked-in file
differs from what the models generate.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.ascode_models import json_schema

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "moorage-config.v1.schema.json"


def render() -> str:
    """The schema file's exact text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH
    target.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
