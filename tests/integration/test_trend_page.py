"""The trend page renders in a real browser: ``meshgate trend`` on a history of runs with
an injected regression, the page screenshotted by headless Chromium (Debian's package),
and the picture checked for its charts' lines and the regression flagged."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, child_env
from tests.unit.test_trend import write_history

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed: install Debian's package "
    "(apt-get install --no-install-recommends chromium) to render the trend page")
MEDIAN_BLUE = (0x25, 0x63, 0xC9)
FAILED_RED = (0xD1, 0x35, 0x2B)


def _count(image: object, colour: tuple[int, int, int], tolerance: int = 24) -> int:
    pixels = image.convert("RGB").tobytes()  # type: ignore[attr-defined]
    rgb = [pixels[i:i + 3] for i in range(0, len(pixels), 3)]
    return sum(1 for p in rgb if all(abs(a - b) <= tolerance for a, b in zip(p, colour,
                                                                                strict=True)))


@needs_chromium
def test_the_trend_page_renders_its_charts_and_flags_the_regression(tmp_path: Path) -> None:
    from PIL import Image

    history = write_history(tmp_path / "history", [0.2, 0.22, 0.19, 0.21, 0.2, 0.6])
    bad = history / "03.json"
    bad.write_text(bad.read_text().replace('"failed": 0', '"failed": 2'))
    done = subprocess.run([sys.executable, "-m", "meshgate", "trend", str(history)], cwd=REPO,
                          env=child_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr  # the latest run regressed
    assert "regression: routes: median 0.600s" in done.stderr
    page = history / "trend.html"
    text = page.read_text()
    assert "Regressions in the latest run" in text and text.count("<svg") == 1
    shot = tmp_path / "trend.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=900,700",
                    f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    image = Image.open(shot)
    assert image.size == (900, 700)
    assert _count(image, MEDIAN_BLUE) > 200, "no median line was drawn"
    assert _count(image, FAILED_RED) > 20, "the failed run is not marked"
