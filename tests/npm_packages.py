"""npm packages for tests: pinned, installed with npm into the checkout's `.cache/npm/`
(never globally), once: a later run finds them there and installs nothing."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "npm"


def installed(name: str, packages: Sequence[str]) -> Path:
    """The `node_modules` directory holding `packages` (`name@version`), under `name`;
    installed anew when the pins differ from the last install's."""
    prefix = CACHE / name
    stamp = prefix / "installed"
    pins = " ".join(packages)
    if not stamp.exists() or stamp.read_text() != pins:
        shutil.rmtree(prefix, ignore_errors=True)
        prefix.mkdir(parents=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", *packages],
            check=True,
            capture_output=True,
            timeout=300,
        )
        stamp.write_text(pins)
    return prefix / "node_modules"
