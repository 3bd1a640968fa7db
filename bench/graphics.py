"""The graphics sets, drawn in code: what products upload besides photos.

Two sets, as issue 31 asks, and one image in neither:

- **sparse** (`SPARSE`): an 800x800 logo in flat colours on transparency, a 1280x800 flat
  landing page (a few words, large flat areas, a flat illustration), a 768x512 sheet of 24
  two-colour icons on transparency, and a 32x32 sprite scaled 12x (a GIF);
- **dense** (`DENSE`): 1280x800 screenshots full of text: a settings page with cards and a
  table, a code editor in a dark theme, a page of documentation;
- a 1200x750 bar and line chart with labels, measured beside them.

They are drawn as SVG and rasterised by libvips (librsvg and pango, antialiased, in the bench
process only: the service's workers never load SVG), then stored as PNG, or as a GIF for the
sprite. The bench runs the pipeline on each twice, as it is and lossy only, and reports
each set's bytes over its lossy-only bytes (`graphics_sparse_bytes_ratio`,
`graphics_dense_bytes_ratio`; `graphics_bytes_ratio` is over issue 19's four, `ISSUE_19`),
the job time it costs, and SSIMULACRA2 of what each wrote (`score`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyvips

from bench.avif_sweep import Source, ssimulacra2, variants
from bench.inputs import Input
from mediasvc.imaging.formats import OUTPUT_FORMATS

SPARSE = ("logo", "flat_ui", "icon_set", "pixel_art")
DENSE = ("ui_screenshot", "code_screenshot", "docs_screenshot")
# The set `graphics_bytes_ratio` was first measured on (issue 19), kept for comparison.
ISSUE_19 = ("ui_screenshot", "logo", "chart", "pixel_art")
# The variants `score` rates in a quick run: the 256 px and smaller ones take 0.1 s in all.
QUICK_SCORED = ("medium", "small", "thumbnail")

_FONT = "DejaVu Sans, Verdana, sans-serif"
_WORDS = (
    "upload", "media", "variant", "owner", "collection", "private", "public", "ready",
    "report", "quota", "kind", "space", "session", "webhook", "storage", "bucket", "signed",
    "redirect", "preview", "thumbnail", "settings", "profile",
)  # fmt: skip


def _rng(seed: int) -> random.Random:
    """Seeded, so every run draws the same pictures."""
    return random.Random(seed)  # noqa: S311 - layout and colours, not secrets


def _text(x: float, y: float, words: str, size: int, fill: str, weight: str = "normal") -> str:
    return (
        f'<text x="{x}" y="{y}" font-family="{_FONT}" font-size="{size}" '
        f'font-weight="{weight}" fill="{fill}">{words}</text>'
    )


def _phrase(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(count))


def screenshot_svg(width: int = 1280, height: int = 800) -> str:
    """A settings page: sidebar, top bar, cards of text, a table and buttons."""
    rng = _rng(19)
    parts = [
        f'<rect width="{width}" height="{height}" fill="#f5f6f8"/>',
        f'<rect width="240" height="{height}" fill="#1f2937"/>',
        _text(24, 44, "mediasvc", 22, "#ffffff", "bold"),
        '<rect x="12" y="118" width="216" height="36" rx="6" fill="#374151"/>',
        f'<rect x="240" width="{width - 240}" height="64" fill="#ffffff"/>',
        f'<rect x="240" y="64" width="{width - 240}" height="1" fill="#e5e7eb"/>',
        _text(268, 40, "Settings / Media / Kinds", 18, "#111827", "bold"),
        f'<rect x="{width - 380}" y="16" width="260" height="32" rx="16" fill="#f3f4f6" '
        'stroke="#d1d5db"/>',
        _text(width - 362, 37, "Search media, owners, kinds", 13, "#6b7280"),
        f'<circle cx="{width - 60}" cy="32" r="18" fill="#2563eb"/>',
        _text(width - 70, 38, "AL", 14, "#ffffff", "bold"),
    ]
    for i, item in enumerate(("Overview", "Media", "Kinds", "Spaces", "Webhooks", "Quotas")):
        parts.append(_text(32, 100 + 40 * i, item, 15, "#f9fafb" if i == 1 else "#9ca3af"))
    for column in range(3):
        x = 268 + column * 330
        parts += [
            f'<rect x="{x}" y="92" width="310" height="200" rx="10" fill="#ffffff" '
            'stroke="#e5e7eb"/>',
            _text(x + 20, 126, _phrase(rng, 2).title(), 17, "#111827", "bold"),
        ]
        for line in range(4):
            parts.append(_text(x + 20, 156 + 20 * line, _phrase(rng, 5), 13, "#4b5563"))
        parts += [
            f'<rect x="{x + 20}" y="244" width="124" height="30" rx="6" fill="#2563eb"/>',
            _text(x + 36, 264, "Save changes", 13, "#ffffff", "bold"),
        ]
    top = 316
    parts.append(
        f'<rect x="268" y="{top}" width="{width - 300}" height="{height - top - 28}" rx="10" '
        'fill="#ffffff" stroke="#e5e7eb"/>'
    )
    for row in range(14):
        y = top + 36 + 30 * row
        if row:
            parts.append(
                f'<rect x="284" y="{y - 20}" width="{width - 332}" height="1" fill="#f3f4f6"/>'
            )
        for column, words in enumerate((2, 1, 3, 1)):
            weight = "bold" if row == 0 else "normal"
            colour = "#111827" if row == 0 else "#374151"
            parts.append(_text(292 + 240 * column, y, _phrase(rng, words), 13, colour, weight))
    return _svg(width, height, parts)


def logo_svg(side: int = 800) -> str:
    """A mark and a wordmark in three flat colours, antialiased, on transparency."""
    c = side / 2
    parts = [
        f'<circle cx="{c}" cy="{c * 0.8}" r="{side * 0.3}" fill="#e11d48"/>',
        f'<path d="M {c - side * 0.18} {c * 0.95} L {c} {c * 0.45} L {c + side * 0.18} '
        f'{c * 0.95} Z" fill="#fbbf24"/>',
        f'<circle cx="{c}" cy="{c * 0.8}" r="{side * 0.3}" fill="none" stroke="#111827" '
        f'stroke-width="{side * 0.02}"/>',
        _text(side * 0.2, side * 0.92, "acme", int(side * 0.16), "#111827", "bold"),
    ]
    return _svg(side, side, parts)


def chart_svg(width: int = 1200, height: int = 750) -> str:
    """A bar chart with a line over it: axes, grid, labels, a legend, a title."""
    rng = _rng(7)
    left, bottom, right, top = 90, height - 80, width - 40, 90
    parts = [
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        _text(left, 50, "Uploads per month, by kind", 24, "#111827", "bold"),
    ]
    for i in range(6):
        y = bottom - i * (bottom - top) / 5
        parts += [
            f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="#e5e7eb"/>',
            _text(left - 50, y + 5, f"{i * 200}", 14, "#6b7280"),
        ]
    step = (right - left) / 12
    points = []
    for month in range(12):
        x = left + month * step + 8
        posts, avatars = rng.randint(300, 950), rng.randint(60, 300)
        for offset, value, colour in ((0, posts, "#2563eb"), (step / 2 - 8, avatars, "#f59e0b")):
            bar = value / 1000 * (bottom - top)
            parts.append(
                f'<rect x="{x + offset}" y="{bottom - bar}" width="{step / 2 - 10}" '
                f'height="{bar}" fill="{colour}"/>'
            )
        points.append(
            f"{x + step / 2 - 8},{bottom - rng.randint(400, 900) / 1000 * (bottom - top)}"
        )
        parts.append(_text(x, bottom + 24, f"M{month + 1}", 14, "#374151"))
    parts += [
        f'<polyline points="{" ".join(points)}" fill="none" stroke="#10b981" stroke-width="3"/>',
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#111827" '
        'stroke-width="2"/>',
        f'<rect x="{right - 260}" y="{top - 40}" width="14" height="14" fill="#2563eb"/>',
        _text(right - 240, top - 28, "posts", 14, "#374151"),
        f'<rect x="{right - 170}" y="{top - 40}" width="14" height="14" fill="#f59e0b"/>',
        _text(right - 150, top - 28, "avatars", 14, "#374151"),
        f'<rect x="{right - 80}" y="{top - 40}" width="14" height="14" fill="#10b981"/>',
        _text(right - 60, top - 28, "total", 14, "#374151"),
    ]
    return _svg(width, height, parts)


def flat_ui_svg(width: int = 1280, height: int = 800) -> str:
    """A landing page in a flat style: a bar with a few links, a headline, two buttons and a
    flat illustration (sun, hills, clouds) taking half the page. Few words, large flat areas."""
    hills = (
        ("0,560 0,400 300,240 560,440 560,560", "#86efac"),
        ("120,560 380,330 560,470 560,560", "#22c55e"),
    )
    parts = [
        f'<rect width="{width}" height="{height}" fill="#fefce8"/>',
        f'<rect width="{width}" height="72" fill="#ffffff"/>',
        '<circle cx="48" cy="36" r="16" fill="#e11d48"/>',
        _text(76, 44, "acme", 22, "#111827", "bold"),
        f'<rect x="{width - 168}" y="18" width="136" height="36" rx="18" fill="#111827"/>',
        _text(width - 138, 42, "Sign up", 15, "#ffffff", "bold"),
        _text(96, 250, "Upload once,", 48, "#111827", "bold"),
        _text(96, 312, "serve every size.", 48, "#111827", "bold"),
        _text(96, 372, "Five clean variants of every image, served by nginx.", 19, "#4b5563"),
        '<rect x="96" y="420" width="180" height="52" rx="26" fill="#e11d48"/>',
        _text(132, 453, "Get started", 18, "#ffffff", "bold"),
        '<rect x="296" y="420" width="150" height="52" rx="26" fill="none" stroke="#111827" '
        'stroke-width="2"/>',
        _text(334, 453, "Read docs", 18, "#111827", "bold"),
        f'<g transform="translate({width - 620} 120)">',
        '<rect width="560" height="560" fill="#bae6fd"/>',
        '<circle cx="400" cy="150" r="70" fill="#fbbf24"/>',
        '<rect x="60" y="110" width="190" height="44" rx="22" fill="#ffffff"/>',
        '<rect x="110" y="80" width="100" height="60" rx="30" fill="#ffffff"/>',
        *(f'<polygon points="{points}" fill="{fill}"/>' for points, fill in hills),
        '<rect x="360" y="400" width="120" height="120" fill="#78350f"/>',
        '<polygon points="340,410 420,330 500,410" fill="#b91c1c"/>',
        '<rect x="400" y="450" width="40" height="70" fill="#fef3c7"/>',
        "</g>",
        f'<rect y="{height - 48}" width="{width}" height="48" fill="#111827"/>',
        _text(96, height - 18, "mediasvc", 14, "#9ca3af"),
    ]
    return _svg(width, height, parts)


# Icons drawn in a 64-unit box, in two colours: `{a}` the shape, `{b}` its detail.
_ICONS = (
    '<polygon points="8,30 32,8 56,30" fill="{a}"/><rect x="14" y="30" width="36" height="26" '
    'fill="{a}"/><rect x="27" y="38" width="10" height="18" fill="{b}"/>',
    '<rect x="6" y="14" width="52" height="36" rx="4" fill="{a}"/>'
    '<polyline points="6,16 32,36 58,16" fill="none" stroke="{b}" stroke-width="4"/>',
    '<path d="M32 56 L8 30 A12 12 0 0 1 32 16 A12 12 0 0 1 56 30 Z" fill="{a}"/>',
    '<polygon points="32,4 40,24 62,24 44,38 50,60 32,46 14,60 20,38 2,24 24,24" fill="{a}"/>',
    '<circle cx="32" cy="32" r="22" fill="{a}"/><circle cx="32" cy="32" r="9" fill="{b}"/>'
    '<rect x="28" y="2" width="8" height="12" fill="{a}"/><rect x="28" y="50" width="8" '
    'height="12" fill="{a}"/><rect x="2" y="28" width="12" height="8" fill="{a}"/>'
    '<rect x="50" y="28" width="12" height="8" fill="{a}"/>',
    '<path d="M14 46 L14 28 A18 18 0 0 1 50 28 L50 46 L56 52 L8 52 Z" fill="{a}"/>'
    '<circle cx="32" cy="56" r="6" fill="{b}"/>',
    '<circle cx="26" cy="26" r="17" fill="none" stroke="{a}" stroke-width="7"/>'
    '<line x1="38" y1="38" x2="58" y2="58" stroke="{b}" stroke-width="9"/>',
    '<circle cx="32" cy="20" r="13" fill="{a}"/><path d="M8 60 A24 22 0 0 1 56 60 Z" fill="{b}"/>',
    '<circle cx="32" cy="32" r="28" fill="{a}"/><polyline points="18,32 28,43 47,22" '
    'fill="none" stroke="{b}" stroke-width="7"/>',
    '<rect x="4" y="18" width="56" height="38" rx="6" fill="{a}"/><rect x="20" y="10" '
    'width="24" height="12" fill="{a}"/><circle cx="32" cy="37" r="12" fill="{b}"/>',
    '<rect x="12" y="18" width="40" height="42" rx="3" fill="{a}"/><rect x="6" y="8" '
    'width="52" height="8" fill="{b}"/><rect x="24" y="2" width="16" height="8" fill="{b}"/>',
    '<circle cx="22" cy="38" r="14" fill="{a}"/><circle cx="38" cy="28" r="18" fill="{a}"/>'
    '<rect x="22" y="36" width="32" height="16" fill="{a}"/>',
)
_ICON_COLOURS = (("#2563eb", "#bfdbfe"), ("#e11d48", "#fecdd3"), ("#059669", "#a7f3d0"))


def icon_set_svg(columns: int = 6, rows: int = 4, cell: int = 128) -> str:
    """A sheet of flat two-colour icons on transparency, as an icon set is exported."""
    parts = []
    for index in range(columns * rows):
        icon = _ICONS[index % len(_ICONS)]
        a, b = _ICON_COLOURS[index // len(_ICONS) + index % 2]
        x, y = (index % columns) * cell + cell // 8, (index // columns) * cell + cell // 8
        scale = cell * 0.75 / 64
        parts.append(f'<g transform="translate({x} {y}) scale({scale})">')
        parts += [icon.format(a=a, b=b), "</g>"]
    return _svg(columns * cell, rows * cell, parts)


_CODE = (
    ("kw", "from"), ("", " __future__ "), ("kw", "import"), ("", " annotations"), ("nl", ""),
    ("nl", ""),
    ("kw", "import"), ("", " asyncio"), ("nl", ""),
    ("kw", "from"), ("", " pathlib "), ("kw", "import"), ("", " Path"), ("nl", ""),
    ("nl", ""),
    ("kw", "async def"), ("fn", " spool"), ("", "(reader, target: Path, limit: "),
    ("ty", "int"), ("", ") -> "), ("ty", "int"), ("", ":"), ("nl", ""),
    ("st", '    """Write the upload to `target`, refusing more than `limit` bytes."""'),
    ("nl", ""),
    ("", "    written = "), ("nu", "0"), ("nl", ""),
    ("kw", "    with"), ("", " target.open("), ("st", '"wb"'), ("", ") "), ("kw", "as"),
    ("", " file:"), ("nl", ""),
    ("kw", "        while"), ("", " chunk := "), ("kw", "await"),
    ("", " reader.read_chunk("), ("nu", "1_048_576"), ("", "):"), ("nl", ""),
    ("", "            written += "), ("fn", "len"), ("", "(chunk)"), ("nl", ""),
    ("kw", "            if"), ("", " written > limit:"), ("nl", ""),
    ("kw", "                raise"), ("ty", " TooLarge"), ("", "(limit, written)"), ("nl", ""),
    ("kw", "            await"), ("", " asyncio.to_thread(file.write, chunk)"), ("nl", ""),
    ("kw", "    return"), ("", " written"), ("nl", ""),
)  # fmt: skip
_CODE_COLOURS = {
    "": "#d4d4d4", "kw": "#c586c0", "fn": "#dcdcaa", "ty": "#4ec9b0", "st": "#ce9178",
    "nu": "#b5cea8",
}  # fmt: skip


def code_screenshot_svg(width: int = 1280, height: int = 800) -> str:
    """An editor in a dark theme: a file tree, tabs, line numbers and highlighted code, the
    file repeated to fill the window."""
    mono = "DejaVu Sans Mono, monospace"
    parts = [
        f'<rect width="{width}" height="{height}" fill="#1e1e1e"/>',
        f'<rect width="220" height="{height}" fill="#252526"/>',
        '<rect x="220" width="1060" height="34" fill="#2d2d2d"/>',
        '<rect x="220" width="150" height="34" fill="#1e1e1e"/>',
        _text(236, 22, "spool.py", 13, "#ffffff"),
        _text(386, 22, "ingest.py", 13, "#969696"),
        f'<rect y="{height - 22}" width="{width}" height="22" fill="#007acc"/>',
        _text(12, height - 6, "main  Python 3.11  UTF-8  LF", 12, "#ffffff"),
    ]
    rng = _rng(11)
    for row in range(30):
        depth = rng.randint(0, 2)
        name = rng.choice(_WORDS) + rng.choice((".py", ".sql", ".md", "/"))
        parts.append(_text(16 + 14 * depth, 58 + 22 * row, name, 13, "#cccccc"))
    line, top, tspans = 1, 56, []
    for kind, words in _CODE * 3:
        y = top + 19 * (line - 1)
        if y > height - 30:
            break
        if kind == "nl":
            spans = "".join(tspans)
            parts += [
                f'<text x="236" y="{y}" font-family="{mono}" font-size="13" fill="#858585">'
                f"{line:>3}</text>",
                f'<text x="280" y="{y}" font-family="{mono}" font-size="13" '
                f'xml:space="preserve">{spans}</text>',
            ]
            line, tspans = line + 1, []
            continue
        tspans.append(f'<tspan fill="{_CODE_COLOURS[kind]}">{_escape(words)}</tspan>')
    return _svg(width, height, parts)


def docs_screenshot_svg(width: int = 1280, height: int = 800) -> str:
    """A page of documentation: a narrow sidebar, a heading and paragraphs of body text."""
    rng = _rng(23)
    parts = [
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<rect width="260" height="{height}" fill="#f9fafb"/>',
        f'<rect x="260" width="1" height="{height}" fill="#e5e7eb"/>',
        _text(300, 70, "Uploading from a browser", 30, "#111827", "bold"),
    ]
    for i in range(24):
        parts.append(_text(28, 60 + 28 * i, _phrase(rng, 2).capitalize(), 14, "#374151"))
    y = 112
    while y < height - 30:
        for _ in range(rng.randint(3, 6)):
            if y >= height - 30:
                break
            parts.append(_text(300, y, _phrase(rng, 12).capitalize(), 15, "#1f2937"))
            y += 24
        y += 16
    return _svg(width, height, parts)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _svg(width: int, height: int, parts: list[str]) -> str:
    body = "\n".join(parts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f"\n{body}\n</svg>"
    )


def pixel_art(cells: int = 32, scale: int = 12) -> pyvips.Image:
    """A 32x32 sprite in an eight-colour palette, scaled up by whole pixels (as shared)."""
    palette = [
        (34, 32, 52), (69, 40, 60), (102, 57, 49), (143, 86, 59),
        (223, 113, 38), (217, 160, 102), (238, 195, 154), (106, 190, 48),
    ]  # fmt: skip
    rng = _rng(3)
    pixels = bytearray()
    for y in range(cells):
        for x in range(cells):
            # A round body with a face and a ground line, over a two-tone sky.
            dx, dy = x - cells / 2 + 0.5, y - cells / 2 + 0.5
            if dx * dx + dy * dy < (cells * 0.32) ** 2:
                index = 4 if dy < 0 else 3
                if abs(dy + 3) < 1 and abs(abs(dx) - 4) < 1.5:
                    index = 0  # eyes
                elif dy > 4 and abs(dx) < 5 and abs(dy - 6) < 1:
                    index = 1  # mouth
            elif y > cells * 0.85:
                index = 7 if rng.random() > 0.2 else 2
            else:
                index = 6 if y < cells / 3 else 5
            pixels += bytes(palette[index])
    sprite = pyvips.Image.new_from_memory(bytes(pixels), cells, cells, 3, "uchar")
    return sprite.zoom(scale, scale).copy(interpretation="srgb")


# What each graphic is, in the order the bench runs them; the SVG each is drawn from.
NOTES = {
    "logo": "800x800 logo, flat colours, transparent background",
    "flat_ui": "1280x800 flat landing page, a few words",
    "icon_set": "768x512 sheet of 24 two-colour icons, transparent",
    "pixel_art": "32x32 sprite at 12x, GIF",
    "ui_screenshot": "1280x800 settings page: cards, a table, text",
    "code_screenshot": "1280x800 code editor, dark theme",
    "docs_screenshot": "1280x800 page of documentation text",
    "chart": "1200x750 bar and line chart with labels",
}
_SVGS: dict[str, Callable[[], str]] = {
    "logo": logo_svg,
    "flat_ui": flat_ui_svg,
    "icon_set": icon_set_svg,
    "ui_screenshot": screenshot_svg,
    "code_screenshot": code_screenshot_svg,
    "docs_screenshot": docs_screenshot_svg,
    "chart": chart_svg,
}
# Drawn on transparency; the others are flattened on white.
_TRANSPARENT = frozenset({"logo", "icon_set"})


def draw(name: str) -> tuple[bytes, str]:
    """One graphic as the file an upload carries, and its type: a PNG (the sprite a GIF)."""
    if name == "pixel_art":
        gif: bytes = pixel_art().gifsave_buffer()
        return gif, "image/gif"
    image = pyvips.Image.svgload_buffer(_SVGS[name]().encode())
    if name not in _TRANSPARENT:
        image = image.flatten(background=[255, 255, 255])
    png: bytes = image.cast("uchar").copy(interpretation="srgb").pngsave_buffer()
    return png, "image/png"


def write_graphics(directory: Path) -> dict[str, Input]:
    """Draw the graphics into `directory`: the sparse set, the dense set and the chart."""
    inputs = {}
    for name, note in NOTES.items():
        data, mime = draw(name)
        path = directory / f"{name}.{mime.removeprefix('image/')}"
        path.write_bytes(data)
        header = pyvips.Image.new_from_file(str(path))
        inputs[name] = Input(name, path, mime, header.width, header.height, len(data), note)
    return inputs


def set_of(name: str) -> str:
    """Which set a graphic belongs to: "sparse", "dense", or "" (the chart)."""
    return "sparse" if name in SPARSE else "dense" if name in DENSE else ""


def score(item: Input, written: str, lossy_only: str, sizes: tuple[str, ...]) -> dict[str, Any]:
    """SSIMULACRA2 of each variant in `sizes` the pipeline wrote into `written` (as it is)
    and into `lossy_only`, against the pixels it encoded them from (`avif_sweep.variants`):
    variant -> {"score", "lossy_only_score"}. Run in a scoring process (`init_scorer`)."""
    webp = OUTPUT_FORMATS["webp"]
    found: dict[str, Any] = {}
    for spec, image in variants(Source(item.name, str(item.path), item.mime, item.note)):
        if spec.name in sizes:
            found[spec.name] = {
                key: round(
                    ssimulacra2(image, (Path(out) / webp.filename(spec.name)).read_bytes()), 2
                )
                for key, out in (("score", written), ("lossy_only_score", lossy_only))
            }
    return found
