"""What a worker does as it starts (`mediasvc.imaging.worker.init_worker`): the libvips
loader lock-down, tried in fresh interpreters, since `init_worker` changes process-wide
libvips state (and confines the process for good); and what a worker loads: nothing of the
app."""

from __future__ import annotations

import textwrap
from pathlib import Path

import images
from imaging_support import make_job, run_python

LOADER_PROBE = textwrap.dedent(
    """
    import sys

    import pyvips

    from mediasvc.imaging import worker

    if sys.argv[1] == "harden":
        worker.init_worker()
    for path in sys.argv[2:]:
        try:
            pyvips.Image.thumbnail(path, 10).avg()
        except pyvips.Error:
            print(f"{path}: blocked")
        else:
            print(f"{path}: loaded")
    """
)

PIPELINE_PROBE = textwrap.dedent(
    """
    import sys

    from mediasvc.imaging import pipeline, worker
    from mediasvc.imaging.job import ImageRejected, Job

    worker.init_worker()
    for arg in sys.argv[1:]:
        mime, source, out_dir = arg.split("|")
        job = Job(source=source, out_dir=out_dir, mime=mime)
        try:
            facts = pipeline.process(job)
        except ImageRejected as exc:
            print(f"{mime}: rejected {exc.code} {exc.reason!r}")
        else:
            print(f"{mime}: {len(facts.variants)} variants, {facts.frames} frames")
    """
)


def test_hardened_worker_loads_jpeg_but_not_svg_or_tiff(tmp_path: Path) -> None:
    """After init_worker, libvips refuses SVG and TIFF files that it loads otherwise."""
    svg = tmp_path / "image.svg"
    svg.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30">'
        '<rect width="40" height="30" fill="red"/></svg>'
    )
    tiff = tmp_path / "image.tif"
    images.reference_pattern(40, 30).tiffsave(str(tiff))
    jpeg = tmp_path / "image.jpg"
    jpeg.write_bytes(images.make_jpeg(width=40, height=30))
    paths = [str(svg), str(tiff), str(jpeg)]

    # Control: this libvips build can load all three, so "blocked" below is init_worker's doing.
    assert run_python(LOADER_PROBE, "plain", *paths) == [f"{p}: loaded" for p in paths]
    assert run_python(LOADER_PROBE, "harden", *paths) == [
        f"{svg}: blocked",
        f"{tiff}: blocked",
        f"{jpeg}: loaded",
    ]


def test_hardened_worker_still_processes_every_accepted_format(tmp_path: Path) -> None:
    """The loader allow-list in init_worker admits every accepted format, animations too."""
    sources = {mime: factory() for mime, factory in images.STILL_FACTORIES.items()}
    sources["image/gif;animated"] = images.make_animated_gif()
    sources["image/webp;animated"] = images.make_animated_webp()
    args = []
    for label, data in sources.items():
        job = make_job(tmp_path, data, label.split(";")[0])
        args.append(f"{job.mime}|{job.source}|{job.out_dir}")

    lines = run_python(PIPELINE_PROBE, *args)

    assert lines == [
        f"{label.split(';')[0]}: 5 variants, {6 if 'animated' in label else 1} frames"
        for label in sources
    ]


IMPORT_PROBE = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    import mediasvc.imaging

    for found in pkgutil.iter_modules(mediasvc.imaging.__path__):
        importlib.import_module(f"mediasvc.imaging.{found.name}")
    for name in sorted(sys.modules):
        print(name)
    """
)
# What the app side is built on: none of it may reach a process that decodes uploads.
APP_LIBRARIES = ("aiohttp", "asyncpg", "aiobotocore", "botocore", "jwt", "structlog")


def test_imaging_loads_nothing_of_the_app() -> None:
    """Every module of `mediasvc.imaging` together loads no other part of mediasvc (but the
    problem-code registry, a standard-library leaf) and none of the app's libraries:
    workers hold no code that knows a setting, the database or HTTP."""
    loaded = run_python(IMPORT_PROBE)

    ours = {name for name in loaded if name == "mediasvc" or name.startswith("mediasvc.")}
    registry = {"mediasvc", "mediasvc.contract", "mediasvc.contract.codes"}
    assert ours - registry == {name for name in ours if name.startswith("mediasvc.imaging")}
    assert "mediasvc.imaging.worker" in ours
    assert [name for name in loaded if name.split(".")[0] in APP_LIBRARIES] == []
