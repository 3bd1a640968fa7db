"""The code a Node team writes instead of mediasvc: the same five WebP variants with sharp.

sharp (from the npm registry, with its own prebuilt libvips and libwebp inside) is
installed by the bench itself, with npm, into a scratch directory under the user's cache
(`~/.cache/mediasvc/bench-node/sharp-<version>`, `XDG_CACHE_HOME` respected), never
globally, and kept there for the next run. `node` and `npm` come from `make install`.

Both baselines (`bench/sharp_worker.mjs`) make what the pipeline makes for a still image
at the service's quality and effort, in one long-lived Node process with one libvips thread
and one libuv thread, timed inside that process (`process.cpuUsage` for CPU):

- `naive`: five `sharp(input).rotate().resize(s, s, {fit: 'inside', withoutEnlargement:
  true}).webp({quality, effort})` per upload under `Promise.all`, as Node teams write it.
- `tuned`: one decode to the largest size as raw pixels, each smaller variant derived from
  the raw pixels of the next larger one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.procs import Stoppable
from bench.timing import Sample
from mediasvc.imaging.variants import VARIANTS

SHARP_VERSION = "0.35.5"
WORKER = Path(__file__).resolve().with_name("sharp_worker.mjs")
_INSTALL_TIMEOUT_S = 300


class SharpUnavailable(Exception):
    """sharp could not be installed or started; the message says why."""


def cache_dir() -> Path:
    """Where installs are kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mediasvc" / "bench-node"


def install(cache: Path | None = None) -> Path:
    """The directory whose `node_modules` holds sharp at `SHARP_VERSION`, installed if needed."""
    return npm_install(f"sharp-{SHARP_VERSION}", [f"sharp@{SHARP_VERSION}"], cache)


def npm_install(entry: str, packages: Sequence[str], cache: Path | None = None) -> Path:
    """The cache entry `entry` whose `node_modules` holds `packages` (`name@version`), installed
    with npm if any is missing.

    npm installs into a scratch directory beside the cache entry, which is renamed into
    place only once complete, so an interrupted install is never mistaken for a good one.
    """
    cache = cache_dir() if cache is None else cache
    target = cache / entry
    names = [spec.rsplit("@", 1)[0] for spec in packages]
    if all((target / "node_modules" / name / "package.json").is_file() for name in names):
        return target
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise SharpUnavailable("node and npm are not on PATH (`make install` installs them)")
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="installing-", dir=cache))
    try:
        (scratch / "package.json").write_text('{"private": true}\n')
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *packages],
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=_INSTALL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise SharpUnavailable(f"npm install {' '.join(packages)} failed: {done.stderr[-500:]}")
        try:
            scratch.rename(target)
        except OSError:  # another run installed it meanwhile
            if not target.is_dir():
                raise
    except subprocess.TimeoutExpired:
        raise SharpUnavailable(f"npm install took over {_INSTALL_TIMEOUT_S} s") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


class Sharp(Stoppable):
    """One long-lived sharp worker process; `call` runs one baseline there and waits."""

    def __init__(self, installed: Path) -> None:
        node = shutil.which("node")
        if node is None:
            raise SharpUnavailable("node is not on PATH")
        env = dict(os.environ, SHARP_DIR=str(installed), UV_THREADPOOL_SIZE="1")
        self._process = subprocess.Popen(
            [node, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.versions: dict[str, str] = self._ask({"mode": "versions"})["versions"]

    def __enter__(self) -> Sharp:
        return self

    def _ask(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(json.dumps(job) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise SharpUnavailable(f"the sharp worker exited ({self._process.poll()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise SharpUnavailable(f"sharp failed: {answer['error']}")
        return answer

    def call(
        self, mode: str, source: str, out_dir: str, quality: int, effort: int
    ) -> tuple[dict[str, int], Sample]:
        """Run the `naive` or `tuned` baseline once; bytes per variant and the time taken."""
        answer = self._ask(
            {
                "mode": mode,
                "source": source,
                "out_dir": out_dir,
                "variants": [[spec.name, spec.size] for spec in VARIANTS],
                "quality": quality,
                "effort": effort,
            }
        )
        return answer["bytes"], Sample(answer["wall_s"], answer["cpu_s"])

    def close(self) -> None:
        """End the worker (it ends when its stdin closes)."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def start() -> tuple[Sharp | None, str]:
    """A started sharp worker, or None and the reason it is not there."""
    try:
        return Sharp(install()), ""
    except (SharpUnavailable, OSError) as exc:
        return None, str(exc)
