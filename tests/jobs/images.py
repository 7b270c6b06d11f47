"""Real image files for the tests, made with Pillow."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
ORIENTATION = 0x0112


def halves(width: int, height: int) -> Image.Image:
    """Left half red, right half blue: where each half ends up shows how it was turned."""
    im = Image.new("RGB", (width, height), RED)
    im.paste(BLUE, (width // 2, 0, width, height))
    return im


def jpeg(path: Path, width: int = 400, height: int = 200, orientation: int | None = None,
         quality: int = 90, make: str | None = None) -> Path:  # fmt: skip
    """A JPEG of `halves`, with an EXIF Orientation tag (and camera make) if given."""
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    if make is not None:
        exif[0x010F] = make
    path.parent.mkdir(parents=True, exist_ok=True)
    halves(width, height).save(path, "JPEG", quality=quality, exif=exif.tobytes())
    return path


def png_with_alpha(path: Path, width: int = 300, height: int = 200) -> Path:
    """Half transparent (alpha 0 on the left), half opaque green."""
    im = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    im.paste((0, 255, 0, 255), (width // 2, 0, width, height))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "PNG")
    return path


def truncated_jpeg(path: Path) -> Path:
    """A JPEG whose header is fine and whose data stops half-way: it fails on decode."""
    full = path.with_suffix(".full.jpg")
    jpeg(full, 800, 600)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def near(pixel: tuple[int, ...], color: tuple[int, int, int], tolerance: int = 60) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], color, strict=True))
