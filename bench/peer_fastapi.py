"""The Python upload service `make bench` runs beside mediasvc, as avatar guides write it.

    uvicorn bench.peer_fastapi:app --workers <cores>

FastAPI with an `UploadFile` (python-multipart spools it, in memory up to 1 MB, then to a
temp file), a magic-bytes check with python-magic, then Pillow in the request path: open,
`ImageOps.exif_transpose`, and for each of the five default-ladder sizes a `thumbnail` of a
copy saved as WebP at the service's quality. The variants go to `PEER_OUT_DIR/<id>/`. It is
deliberately the guides' code, blocking the event loop while Pillow works: one uvicorn
worker per core is what keeps the cores busy.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import magic
from fastapi import FastAPI, HTTPException, UploadFile
from PIL import Image, ImageOps

OUT_DIR = Path(os.environ.get("PEER_OUT_DIR", "."))
# [[name, size], ...], as mediasvc.imaging.variants.VARIANTS.
VARIANTS: list[tuple[str, int]] = [
    (name, size) for name, size in json.loads(os.environ.get("PEER_VARIANTS", "[]"))
]
QUALITY = int(os.environ.get("PEER_QUALITY", "80"))
# Pillow's `method` is libwebp's effort, as sharp's `effort` and the service's.
METHOD = int(os.environ.get("PEER_EFFORT", "4"))
ALLOWED = {"image/jpeg", "image/png", "image/webp", "image/gif"}

app = FastAPI()


@app.post("/v1/media", status_code=201)
async def upload(file: UploadFile) -> dict[str, str]:
    """Check the magic bytes, then write the five variants."""
    head = await file.read(2048)
    if magic.from_buffer(head, mime=True) not in ALLOWED:
        raise HTTPException(status_code=415, detail="unsupported image type")
    await file.seek(0)
    media_id = uuid.uuid4().hex
    folder = OUT_DIR / media_id
    folder.mkdir()
    with Image.open(file.file) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        for name, size in VARIANTS:
            variant = image.copy()
            variant.thumbnail((size, size))
            variant.save(folder / f"{name}.webp", "WEBP", quality=QUALITY, method=METHOD)
    return {"id": media_id}
