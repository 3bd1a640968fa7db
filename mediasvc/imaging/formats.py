"""Which inputs are accepted (by magic bytes) and which loader and encoder each uses.

Imports neither pyvips nor the app, so the upload handler can sniff cheaply.
"""

import struct
from dataclasses import dataclass
from importlib.util import find_spec

import magic

# How many leading bytes libmagic needs to tell our formats apart (ISO-BMFF brands included).
SNIFF_BYTES = 4096

# HEIC/HEIF is decoded by pillow-heif (libheif with libde265), the optional extra
# `mediasvc[heic]`: the pyvips-binary build of libheif has no HEVC decoder. Without the
# extra the types are not on the allow-list, and a HEIC upload is refused as 415 with
# `MISSING_DECODERS`' hint rather than failing later.
HEIF_DECODER = "pillow-heif"  # not a libvips loader: `imaging.heif` decodes these
HEIF_TYPES = ("image/heic", "image/heif")
HEIF_AVAILABLE = find_spec("pillow_heif") is not None  # found, not imported: sniffing stays cheap

# The allow-list: sniffed MIME type -> the one decoder we call for it, a libvips loader
# but for HEIF.
LOADERS: dict[str, str] = {
    "image/jpeg": "jpegload",
    "image/png": "pngload",
    "image/webp": "webpload",
    "image/gif": "gifload",
    "image/avif": "heifload",
    **(dict.fromkeys(HEIF_TYPES, HEIF_DECODER) if HEIF_AVAILABLE else {}),
}
# The libvips loaders a worker leaves callable (`worker.init_worker`).
VIPS_LOADERS = frozenset(loader for loader in LOADERS.values() if loader != HEIF_DECODER)
# Loaders that can return several frames of one animation.
ANIMATED_LOADERS = frozenset({"gifload", "webpload"})
# Types this build could take with an optional extra installed: the 415 says how.
_ENABLE_HEIF = "HEIC/HEIF needs the optional decoder: pip install 'mediasvc[heic]'."
MISSING_DECODERS: dict[str, str] = {} if HEIF_AVAILABLE else dict.fromkeys(HEIF_TYPES, _ENABLE_HEIF)

# ISO-BMFF `ftyp` brands (major or compatible) that name the codec of the images inside.
# libmagic reports `mif1`/`msf1` files as image/heif whatever they hold, AVIFs included,
# and HEVC sequences as image/heic-sequence; these brands decide instead.
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_AV1_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_STRUCTURAL_BRANDS = frozenset({b"mif1", b"msf1"})
_ISOBMFF_TYPES = frozenset(
    {"image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence", "image/avif"}
)


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """An encoder the variants can be written with."""

    name: str
    mime: str
    extension: str
    animated: bool
    alpha: bool

    def filename(self, variant: str) -> str:
        """The file name of a variant written in this format (the last part of its key)."""
        return f"{variant}{self.extension}"


OUTPUT_FORMATS: dict[str, OutputFormat] = {
    "webp": OutputFormat("webp", "image/webp", ".webp", animated=True, alpha=True),
    "jpeg": OutputFormat("jpeg", "image/jpeg", ".jpg", animated=False, alpha=False),
    "avif": OutputFormat("avif", "image/avif", ".avif", animated=False, alpha=True),
}


def sniff(head: bytes) -> str:
    """The MIME type libmagic reads from the first bytes of a file; for HEIF, its brands'.

    A HEIF file is image/heic when its brands name HEVC, else image/avif when they name
    AV1 (an AVIF with major brand `mif1` goes to libvips like any AVIF), else image/heif
    (`mif1`/`msf1` alone: libheif finds out what is inside). Both codecs listed is HEVC:
    no real encoder writes that, and pillow-heif refuses an AV1 image inside as damaged.
    """
    mime = str(magic.from_buffer(head[:SNIFF_BYTES], mime=True))
    if mime not in _ISOBMFF_TYPES:
        return mime
    brands = ftyp_brands(head)
    if brands & _HEVC_BRANDS:
        return "image/heic"
    if brands & _AV1_BRANDS:
        return "image/avif"
    if brands & _HEIF_STRUCTURAL_BRANDS:
        return "image/heif"
    return mime


def ftyp_brands(head: bytes) -> frozenset[bytes]:
    """The major and compatible brands of the `ftyp` box `head` starts with (none if it
    does not start with one that fits)."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return frozenset()
    (size,) = struct.unpack_from(">I", head)
    if not 16 <= size <= len(head):
        return frozenset()
    # major_brand, minor_version, then compatible brands to the end of the box.
    brands = [head[8:12]] + [head[at : at + 4] for at in range(16, size - 3, 4)]
    return frozenset(brands)
