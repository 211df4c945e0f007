"""verify_image (how user images are checked) never allocates the pixel buffer, so an image that
claims a huge size costs no more than its bytes; and the user-image pixel budget."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from adapter.media.decoding import DEFAULT_MAX_PIXELS, USER_IMAGE_MAX_PIXELS, ImageError, verify_image

SIDE = 7999  # 64 Mpx: 64 MB as one 8-bit band once decoded, 256 MB as RGBA

_PROBE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from adapter.media.decoding import load_image, verify_image

    def peak_mb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024

    data = Path(sys.argv[1]).read_bytes()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak so far becomes the current RSS
    before = peak_mb()
    img = verify_image(data, max_pixels=10**9)
    verified = peak_mb() - before
    if sys.argv[2] == "control":
        load_image(data, max_pixels=10**9)  # a real decode does show up
    print(img.size[0], img.size[1], round(verified, 1), round(peak_mb() - before, 1))
    """
)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_verify_allocates_no_pixels(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / f"huge.{fmt.lower()}"
    Image.new("L", (SIDE, SIDE), 0).save(path, fmt, **({"quality": 10} if fmt in ("JPEG", "WEBP") else {}))
    out = subprocess.run(
        # no control decode for WebP: Pillow's decode of 64 Mpx WebP takes ~1 GB
        [sys.executable, "-c", _PROBE, str(path), "none" if fmt == "WEBP" else "control"], capture_output=True, text=True, timeout=90, cwd=Path(__file__).parents[2]
    )
    assert out.returncode == 0, out.stderr
    width, height, verified, loaded = out.stdout.split()
    assert (int(width), int(height)) == (SIDE, SIDE)
    # a decode of 64 Mpx takes >= 60 MB; verify stays within library noise
    assert fmt == "WEBP" or float(loaded) >= 55, out.stdout
    assert float(verified) < 12, out.stdout


def test_user_budget_sits_between_photos_and_bombs() -> None:
    assert 6000 * 4000 <= 5712 * 4284 <= USER_IMAGE_MAX_PIXELS < DEFAULT_MAX_PIXELS


def test_verify_refuses_beyond_the_budget_from_the_header() -> None:
    buf = io.BytesIO()
    Image.new("1", (5001, 5000)).save(buf, "PNG")
    with pytest.raises(ImageError) as err:
        verify_image(buf.getvalue(), max_pixels=USER_IMAGE_MAX_PIXELS)
    assert err.value.code == "too_large"
    buf = io.BytesIO()
    Image.new("1", (5000, 5000)).save(buf, "PNG")
    assert verify_image(buf.getvalue(), max_pixels=USER_IMAGE_MAX_PIXELS).size == (5000, 5000)
