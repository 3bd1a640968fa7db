"""The graphics set, drawn in code: what products upload besides photos.

A UI screenshot with text, a logo in flat colours on a transparent background, a chart and
a piece of pixel art. They are drawn as SVG and rasterised by libvips (librsvg and pango, in
the bench process only: the service's workers never load SVG), then stored as PNG, or as a
GIF for the pixel art. The bench runs the pipeline on them twice, as it is and lossy only,
to report how many bytes content-aware encoding saves (`graphics_bytes_ratio`).
"""

from __future__ import annotations

import random
from pathlib import Path

import pyvips

from bench.inputs import Input

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


def write_graphics(directory: Path) -> dict[str, Input]:
    """Draw the graphics set into `directory`."""
    made = {
        "ui_screenshot": (screenshot_svg(), ".png", "1280x800 UI screenshot with text"),
        "logo": (logo_svg(), ".png", "800x800 logo, flat colours, transparent background"),
        "chart": (chart_svg(), ".png", "1200x750 bar and line chart with labels"),
    }
    inputs = {}
    for name, (svg, suffix, note) in made.items():
        image = pyvips.Image.svgload_buffer(svg.encode())
        if name != "logo":
            image = image.flatten(background=[255, 255, 255])
        path = directory / f"{name}{suffix}"
        image.cast("uchar").copy(interpretation="srgb").pngsave(str(path))
        inputs[name] = _input(name, path, "image/png", note)
    path = directory / "pixel_art.gif"
    pixel_art().gifsave(str(path))
    inputs["pixel_art"] = _input("pixel_art", path, "image/gif", "32x32 sprite at 12x, GIF")
    return inputs


def _input(name: str, path: Path, mime: str, note: str) -> Input:
    header = pyvips.Image.new_from_file(str(path))
    return Input(name, path, mime, header.width, header.height, path.stat().st_size, note)
