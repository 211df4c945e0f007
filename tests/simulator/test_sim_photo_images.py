"""Photo-like pictures (SimulatorConfig.photo_images): deterministic, and as hard to compress as a
real Midjourney result (flat placeholder panels compress ~50:1, photos ~2:1)."""

from __future__ import annotations

import io

from PIL import Image

from adapter.simulator import images
from adapter.simulator.config import SimulatorConfig

COLOURS = [(200, 100, 50), (50, 100, 200), (100, 200, 50), (200, 200, 200)]


def test_photo_grid_is_deterministic_from_its_seed() -> None:
    a = images.render_photo_grid((256, 256), COLOURS, 7)
    b = images.render_photo_grid((256, 256), COLOURS, 7)
    c = images.render_photo_grid((256, 256), COLOURS, 8)
    assert a.size == (256, 256) and a.mode == "RGB"
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes()


def test_photo_grid_compresses_like_a_photo() -> None:
    photo = images.encode_png(images.render_photo_grid((256, 256), COLOURS, 1))
    flat = images.encode_png(images.render_grid((256, 256), COLOURS, "a cat"))
    raw = 256 * 256 * 3
    assert len(photo) > raw / 3  # ~2:1, like Midjourney's PNGs
    assert len(flat) < raw / 10
    with Image.open(io.BytesIO(photo)) as im:
        assert im.size == (256, 256)


def test_photo_single_keeps_its_size() -> None:
    single = images.render_photo_single((128, 96), COLOURS[0], 3, 2)
    assert single.size == (128, 96)


def test_photo_images_are_off_by_default() -> None:
    assert SimulatorConfig().photo_images is False
