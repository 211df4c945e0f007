"""Placeholder images: real PNG/WebP files with the right geometry, visibly labelled SIMULATED.

A grid is 2x2 quadrants of distinct colours, each showing its number (1-4), the prompt
(truncated) and what made it; singles are one such panel. Progress previews are the final grid
shrunk and blurred less as the job advances. All functions here are synchronous and CPU-bound:
callers run them through `asyncio.to_thread`.
"""

from __future__ import annotations

import colorsys
import functools
import io
import random
import re
import textwrap

from PIL import Image, ImageDraw, ImageFilter, ImageFont

RGB = tuple[int, int, int]

_AR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*$")
MAX_RATIO = 14.0  # Midjourney accepts up to about 1:14 / 14:1


def parse_ar(value: str | None) -> tuple[float, float]:
    """`--ar W:H` -> (W, H); raises ValueError for anything Midjourney would refuse."""
    if value is None or value == "":
        return (1.0, 1.0)
    m = _AR_RE.match(value)
    if not m:
        raise ValueError(f"`{value}` is not an aspect ratio like 16:9")
    w, h = float(m.group(1)), float(m.group(2))
    if w <= 0 or h <= 0:
        raise ValueError(f"aspect ratio `{value}` must be positive")
    if max(w / h, h / w) > MAX_RATIO:
        raise ValueError(f"aspect ratio `{value}` is too extreme")
    return (w, h)


def size_for(ratio: tuple[float, float], long_side: int) -> tuple[int, int]:
    """Pixel size with that ratio and that long side, both even (a grid halves evenly)."""
    w, h = ratio
    long_side -= long_side % 2
    short = max(2, 2 * round(long_side * min(w, h) / max(w, h) / 2))
    return (long_side, short) if w >= h else (short, long_side)


def palette(rng: random.Random, count: int = 4) -> list[RGB]:
    """`count` clearly different colours: hues spread evenly from a random start."""
    start = rng.random()
    colours: list[RGB] = []
    for i in range(count):
        hue = (start + i / count) % 1.0
        r, g, b = colorsys.hsv_to_rgb(hue, 0.55 + 0.2 * rng.random(), 0.75 + 0.2 * rng.random())
        colours.append((round(r * 255), round(g * 255), round(b * 255)))
    return colours


@functools.lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=max(size, 6))
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _ink(colour: RGB) -> RGB:
    r, g, b = colour
    return (20, 20, 20) if (0.299 * r + 0.587 * g + 0.114 * b) > 140 else (245, 245, 245)


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], colour: RGB, number: int | None, prompt: str, caption: str) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    draw.rectangle(box, fill=colour)
    # a lighter band so quadrants read as pictures, not flat fills
    light = tuple(min(255, c + 40) for c in colour)
    draw.rectangle((x0, y0 + h * 2 // 3, x1, y1), fill=light)
    border = max(1, min(w, h) // 128)
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=_ink(colour), width=border)
    ink = _ink(colour)
    unit = max(6, min(w, h) // 16)
    cx = x0 + w // 2
    y = y0 + unit
    draw.text((cx, y), "SIMULATED", fill=ink, font=_font(unit * 2), anchor="mt")
    y += unit * 3
    if number is not None:
        draw.text((cx, y), str(number), fill=ink, font=_font(unit * 4), anchor="mt")
        y += unit * 5
    chars = max(8, int(w / (unit * 0.6)))
    lines = textwrap.wrap(prompt, width=chars, max_lines=3, placeholder="…") or [""]
    for line in lines:
        draw.text((cx, y), line, fill=ink, font=_font(unit), anchor="mt")
        y += int(unit * 1.3)
    if caption:
        draw.text((cx, y1 - unit), caption, fill=ink, font=_font(unit), anchor="mb")


def render_grid(size: tuple[int, int], colours: list[RGB], prompt: str, caption: str = "") -> Image.Image:
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    hw, hh = width // 2, height // 2
    boxes = [(0, 0, hw, hh), (hw, 0, width, hh), (0, hh, hw, height), (hw, hh, width, height)]
    for i, box in enumerate(boxes):
        _panel(draw, box, colours[i % len(colours)], i + 1, prompt, caption)
    return image


def render_single(size: tuple[int, int], colour: RGB, prompt: str, caption: str = "", number: int | None = None) -> Image.Image:
    image = Image.new("RGB", size)
    _panel(ImageDraw.Draw(image), (0, 0, size[0], size[1]), colour, number, prompt, caption)
    return image


# -- photo-like pictures (SimulatorConfig.photo_images) -------------------------------------------
# Real Midjourney results are photographs or paintings: smooth colour fields, texture and fine
# grain, which PNG compresses only about 2:1 (a 2048x2048 grid is 5-8 MB). Flat placeholder panels
# compress 50:1 and so hide what splitting, storing and serving a real result costs. These are
# made of the same ingredients: large colour fields, medium texture and per-pixel grain, all drawn
# from `seed` (the same seed, the same picture). They keep a small "SIMULATED" label.


def _photo_texture(size: tuple[int, int], rng: random.Random, tint: RGB) -> Image.Image:
    w, h = size

    def field(cells: int) -> Image.Image:
        small = Image.frombytes("RGB", (cells, cells), rng.randbytes(cells * cells * 3))
        return small.resize(size, Image.Resampling.BICUBIC)

    picture = Image.blend(field(4), field(24), 0.35)
    picture = Image.blend(picture, Image.new("RGB", size, tint), 0.3)
    tw, th = max(1, w // 4), max(1, h // 4)
    texture = Image.frombytes("L", (tw, th), rng.randbytes(tw * th)).resize(size, Image.Resampling.BILINEAR).convert("RGB")
    picture = Image.blend(picture, texture, 0.25)
    grain = Image.frombytes("RGB", size, rng.randbytes(w * h * 3))
    return Image.blend(picture, grain, 0.03)


def _photo_label(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], number: int | None) -> None:
    x0, y0, x1, y1 = box
    unit = max(6, min(x1 - x0, y1 - y0) // 32)
    text = "SIMULATED" if number is None else f"SIMULATED {number}"
    draw.text((x0 + unit, y0 + unit), text, fill=(245, 245, 245), font=_font(unit), stroke_width=max(1, unit // 8), stroke_fill=(20, 20, 20))


def render_photo_grid(size: tuple[int, int], colours: list[RGB], seed: int) -> Image.Image:
    """A 2x2 grid of four photo-like pictures, deterministic from `seed`."""
    rng = random.Random(f"mj-sim-photo:{seed}")
    width, height = size
    hw, hh = width // 2, height // 2
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    boxes = [(0, 0, hw, hh), (hw, 0, width, hh), (0, hh, hw, height), (hw, hh, width, height)]
    for i, box in enumerate(boxes):
        image.paste(_photo_texture((box[2] - box[0], box[3] - box[1]), rng, colours[i % len(colours)]), box[:2])
        _photo_label(draw, box, i + 1)
    return image


def render_photo_single(size: tuple[int, int], colour: RGB, seed: int, number: int | None = None) -> Image.Image:
    image = _photo_texture(size, random.Random(f"mj-sim-photo:{seed}"), colour)
    _photo_label(ImageDraw.Draw(image), (0, 0, size[0], size[1]), number)
    return image


def encode_png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def downscale(image: Image.Image, long_side: int) -> Image.Image:
    """A copy whose longest side is `long_side` (never enlarged)."""
    if max(image.size) <= long_side:
        return image
    scale = long_side / max(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR)


def preview_webp(image: Image.Image, progress: int, long_side: int) -> bytes:
    """The picture as it looks at `progress` percent: small, and blurrier the earlier it is.
    Pass an already downscaled image (see `downscale`) to keep per-step work small."""
    small = downscale(image, long_side)
    radius = max(0.5, (100 - progress) / 100 * long_side / 24)
    small = small.filter(ImageFilter.GaussianBlur(radius))
    out = io.BytesIO()
    small.save(out, format="WEBP", quality=50, method=0)
    return out.getvalue()


def image_info(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) if `data` is an image Pillow can read, else None."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
            return (str(im.format), im.width, im.height)
    except Exception:
        return None


def dominant_colour(data: bytes) -> RGB | None:
    """The average colour of an uploaded image (used to tint blends), None if unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            px = im.convert("RGB").resize((1, 1)).getpixel((0, 0))
            return (int(px[0]), int(px[1]), int(px[2]))  # type: ignore[index]
    except Exception:
        return None
