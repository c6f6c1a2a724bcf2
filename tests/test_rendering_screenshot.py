"""The digest HTML in a real browser (Chromium, headless) at phone and desktop widths.

Set MAILER_SCREENSHOT_DIR to keep the PNGs and look at them; skipped without Chromium.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from mailer.rendering import Renderer
from tests.helpers.golden import sample_digest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
@pytest.mark.parametrize("width", [375, 1280])
def test_digest_screenshot(tmp_path: Path, width: int) -> None:
    assert CHROMIUM is not None
    digest, links = sample_digest()
    page = tmp_path / "digest.html"
    page.write_text(Renderer().digest(digest, links, date_label="Sun 22 Nov 2026").html)
    shot = tmp_path / f"digest-{width}.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, f"--screenshot={shot}", f"--window-size={width},1400", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=60,
    )
    data = shot.read_bytes()
    assert png_size(data) == (width, 1400)
    assert len(data) > 20_000  # text was drawn: a blank page compresses to a few hundred bytes
    keep = os.environ.get("MAILER_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
