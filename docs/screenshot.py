"""Make docs/report.png, the README's picture of ``mmscel report``, from the demo store.

Run after ``make demo``: ``.venv/bin/python docs/screenshot.py`` writes ``oof/demo/report.html`` and
screenshots its top in headless Chromium (Debian's /usr/bin/chromium, see .ci/ensure-chromium).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

import mmscel

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking"]
FLAGS += ["--disable-component-update", "--disable-sync"]


def main(data: Path = Path("data/demo"), oof: Path = Path("oof/demo"), out: Path = Path("docs")) -> Path:
    os.chdir(ROOT)  # the page names the folders as given: relative ones read better
    page = mmscel.report(data, oof_root=oof).path
    shot = out / "report.png"
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=FLAGS,
            viewport={"width": 1100, "height": 1100},
        )
        tab = context.new_page()
        tab.goto(page.resolve().as_uri(), wait_until="load")
        tab.screenshot(path=str(shot))
        context.close()
    image = Image.open(shot).convert("RGB")
    image = image.resize((image.width * 8 // 10, image.height * 8 // 10), Image.LANCZOS)
    image.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(shot, optimize=True)
    return shot


if __name__ == "__main__":
    path = main(*map(Path, sys.argv[1:]))
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
