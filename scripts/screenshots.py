"""Full-page screenshots of HTML pages in headless Chromium at a given width (the docs' report.png and
compare.png). Uses the DevTools client of tests/test_report_html.py (Debian's chromium is needed).

    python scripts/screenshots.py --width 1400 runs/X/report/report.html=docs/report.png \\
        runs/compare-Y/compare.html=docs/compare.png

It prints, per page, the page's size and anything that scrolls sideways (which should be nothing).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pages", nargs="+", metavar="PAGE.html=OUT.png")
    p.add_argument("--width", type=int, default=1400)
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from test_report_html import Browser  # noqa: E402 - the tests' DevTools client

    with tempfile.TemporaryDirectory() as profile:
        b = Browser(Path(profile))
        try:
            for item in a.pages:
                page, _, out = item.partition("=")
                if not out:
                    p.error(f"{item}: give PAGE.html=OUT.png")
                b.set_width(a.width)
                b.open(Path(page))
                b.screenshot(Path(out), a.width)
                h = b.eval("document.documentElement.scrollHeight")
                print(f"{out}: {a.width} x {h} px; sideways scrolling: {b.overflow() or 'none'}; "
                      f"page problems: {b.problems() or 'none'}")
        finally:
            b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
