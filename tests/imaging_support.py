"""Helpers shared by the imaging tests: a job made from factory bytes under the
production rules of each kind, run in the test's own process or in a fresh interpreter, and
the tolerances and colour helpers that more than one test module checks with."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import images

from mediasvc.config import Settings
from mediasvc.imaging import pipeline
from mediasvc.imaging.job import Facts, Job
from mediasvc.kinds import kind_rules

# The repository root: subprocesses run there so `import mediasvc` finds this checkout.
ROOT = Path(__file__).resolve().parents[1]
# GIF quantisation plus lossy WebP re-encoding of flat animation frames.
FRAME_TOLERANCE = 20

# The production rules of each kind, so only the limit under test is ever tight.
KIND_RULES = kind_rules(Settings(database_url="", url_signing_secret=""))


def run_python(script: str, *args: str) -> list[str]:
    """Run `script` in a fresh interpreter at the repository root; its stdout lines."""
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def make_job(
    tmp_path: Path, data: bytes, mime: str, kind: str = "post", **rule_overrides: Any
) -> Job:
    """Write `data` to a fresh directory under `tmp_path` and describe a job for it."""
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    source = work / "source"
    source.write_bytes(data)
    out_dir = work / "out"
    out_dir.mkdir()
    rules = replace(KIND_RULES[kind].image, **rule_overrides)
    return Job(source=str(source), out_dir=str(out_dir), mime=mime, rules=rules)


def run(tmp_path: Path, data: bytes, mime: str, kind: str = "post", **rule_overrides: Any) -> Facts:
    """Run the pipeline in this process on `data` declared as `mime`."""
    return pipeline.process(make_job(tmp_path, data, mime, kind, **rule_overrides))


def colour_delta(a: images.RGB, b: images.RGB) -> int:
    """The largest per-channel difference between two colours."""
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def grey_png(bits: int, *, alpha: bool = False) -> bytes:
    """A greyscale PNG of the reference pattern (optionally with its alpha plane)."""
    grey = images.reference_pattern(64, 48).colourspace("b-w")
    if alpha:
        grey = grey.bandjoin(images.alpha_plane(64, 48))
    if bits == 16:
        grey = (grey.cast("ushort") * 257).cast("ushort").copy(interpretation="grey16")
    data: bytes = grey.pngsave_buffer(bitdepth=bits)
    return data


ANIMATION_FRAMES = 6  # the factory default


def truncated(data: bytes) -> bytes:
    """The first half of `data`."""
    return data[: len(data) // 2]
