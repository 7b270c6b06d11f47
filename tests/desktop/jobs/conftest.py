"""The window's job dialogs and drops against real kinds: the network tests' servers and
keyrings (tests/net/conftest.py) for the dialogs that upload, plus photos made here."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.net.conftest import (  # noqa: F401  (fixtures, used by name)
    aws_env,
    bucket,
    dav,
    dav_root,
    files,
    keyring_file,
    moto,
    no_keyring,
    proxy,
    s3,
)


def photo(path: Path, size: tuple[int, int]) -> Path:
    """A real JPEG of `size` (a gradient, so it is not trivially compressible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    im = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    im.save(path, "JPEG", quality=90)
    return path


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, Path]:
    """The 4000×3000 and 800×600 fixtures of ux Q-23, and a small one."""
    return {
        "big": photo(tmp_path / "in" / "big.jpg", (4000, 3000)),
        "small": photo(tmp_path / "in" / "small.jpg", (800, 600)),
    }
