"""ansible-core's tools as the tests run them, with no download site but the package index.

``ansible-test`` bootstraps pip in each of its virtual environments with a script it
fetches from a site this machine cannot reach; it reads that script from its cache first.
:func:`ansible_home` fills that cache with a small script of our own that installs pip
from a pip wheel downloaded from the package index, so ``ansible-test`` runs unchanged.
The home directory is kept in the tools cache, so its virtual environments are reused.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.services.tools import tools_dir

PIP_VERSION = "24.2"

_BOOTSTRAP = '''"""Install pip into this interpreter from the pip wheel beside this script."""
import glob
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, sorted(glob.glob(os.path.join(here, "pip-{version}-*.whl")))[0])
from pip._internal.cli.main import main  # noqa: E402

options = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", *options]))
'''


def ansible_home() -> Path:
    """A HOME for ``ansible-test`` whose pip bootstrap works offline from the index."""
    home = tools_dir() / "ansible-test-home"
    cache = home / ".ansible" / "test" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    if not list(cache.glob(f"pip-{PIP_VERSION}-*.whl")):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             f"pip=={PIP_VERSION}", "-d", str(cache)],
            check=True,
        )  # fmt: skip
    script = cache / f"get_pip_{PIP_VERSION.replace('.', '_')}.py"
    text = _BOOTSTRAP.format(version=PIP_VERSION)
    if not script.exists() or script.read_text() != text:
        script.write_text(text)
    return home
