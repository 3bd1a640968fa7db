"""`python -m bench.profile`: where the service spends an upload, sampled with py-spy.

Starts the stack as `make bench` does, keeps N clients uploading the 12 MP photo, and
records the app and its image workers with py-spy (`pip install py-spy` into the venv;
not a project dependency). Prints, per part of the stack, the functions that hold most of
its samples, and keeps py-spy's raw stacks for a flame graph.

Samples include idle ones (`--idle`), so shares are of wall time: libvips computes in its
own threads while the worker's Python thread waits for it, and without idle samples py-spy
would hide that wait, and with it nearly all of the decoding and encoding.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench import procs
from bench.inputs import photo_jpeg
from bench.service import Stack, multipart_body

_LINE = re.compile(r":\d+\)$")
_RATE = 200  # samples per second per thread


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    return found


def _role(frames: list[str]) -> str:
    # With --subprocesses, every stack starts with the chain of processes it belongs to.
    process_frames = [f for f in frames if f.startswith("process ")]
    if any("resource_tracker" in f for f in frames):
        return "idle"
    if any("multiprocessing" in f for f in process_frames):  # spawn_main or forkserver
        return "image workers"
    if any("run_app" in f for f in frames):
        return "app: event loop"
    return "app: thread pool"


def _idle(frames: list[str]) -> bool:
    """Whether the sample is a thread waiting for work (not for I/O it started)."""
    return bool(_IDLE.search(frames[-1])) or any(_WAIT_FOR_JOB.search(f) for f in frames)


# Leaves of threads with nothing to do: the event loop's poll, an idle pool thread, the
# process pool's manager thread, a worker waiting for its next job.
_IDLE = re.compile(
    r"^(EpollSelector\.select|_worker \(concurrent/futures/thread|Condition\.wait"
    r"|wait \(multiprocessing/connection|_PollLikeSelector\.select)"
)
_WAIT_FOR_JOB = re.compile(r"^Queue\.get \(multiprocessing/queues")
# Frames every sample of a role passes through: they say nothing.
_WRAPPER = re.compile(
    r"\((threading|<frozen runpy>|<string>|multiprocessing/(spawn|process)|asyncio/base_events"
    r"|concurrent/futures/(thread|process)|mediasvc/(__main__|cli))\.?p?y?\)$"
)


def summarise(raw: Path, uploads: int, rate: int, top: int) -> str:
    """Wall milliseconds per upload in the busiest functions of each part of the stack."""
    busy: Counter[str] = Counter()
    functions: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        # The -c code of a worker process holds "; ", so split on frame boundaries only.
        frames = re.split(r";(?=\S)", stack)
        role = _role(frames)
        frames = [f for f in frames if not f.startswith("process ")]
        # No Python frame at all: a thread caught starting or ending (a handful of samples).
        if role == "idle" or not frames or _idle(frames):
            continue
        busy[role] += int(count)
        for name in {_LINE.sub(")", f) for f in frames if " (" in f}:
            if not _WRAPPER.search(name):
                functions.setdefault(role, Counter())[name] += int(count)

    def per_upload(samples: int) -> float:
        return samples / rate * 1000 / max(1, uploads)

    lines = []
    for role, samples in busy.most_common():
        lines.append(f"\n{role}: {per_upload(samples):.1f} ms per upload, busy (wall, all threads)")
        for name, hits in functions.get(role, Counter()).most_common(top):
            lines.append(f"  {per_upload(hits):7.1f}  {name}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--top", type=int, default=25, help="functions listed per part")
    parser.add_argument("--raw", type=Path, default=Path("py-spy-raw.txt"))
    args = parser.parse_args(argv)
    spy = _py_spy()
    with tempfile.TemporaryDirectory(prefix="mediasvc-profile-") as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o755)
        photo = scratch / "photo.jpg"
        photo.write_bytes(photo_jpeg(4000, 2880))
        body, content_type = multipart_body(photo, "image/jpeg")
        with Stack(scratch, workers=args.clients) as stack:
            stack.upload(body, content_type, args.clients, 2 * args.clients)  # warm up
            [serve] = stack.parts()["app"]
            recorder = subprocess.Popen(
                [
                    *(
                        spy,
                        "record",
                        "--pid",
                        str(serve),
                        "--subprocesses",
                        "--idle",
                        "--nonblocking",
                    ),
                    *("--rate", str(_RATE), "--duration", str(args.seconds)),
                    *("--format", "raw", "--output", str(args.raw)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            stop = threading.Event()

            def wait_for_recorder() -> None:
                recorder.wait()
                stop.set()

            threading.Thread(target=wait_for_recorder, daemon=True).start()
            uploads = 0
            while not stop.is_set():
                uploads += len(stack.upload(body, content_type, args.clients, args.clients).ok)
            app_rss = max((procs.peak_rss_mb(p) for p in stack.parts()["app"]), default=0.0)
    print(f"{uploads} uploads, {args.clients} clients, {args.seconds} s; app RSS {app_rss:.0f} MB")
    print(summarise(args.raw, uploads, _RATE, args.top))
    print(f"\nraw stacks: {args.raw} (flame graph: any collapsed-stack viewer, e.g. speedscope)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
