"""Open a plan run's report.html in a real headless Chromium and fail on any script or console error.

    python experiments/check_report.py runs/demo/report.html [--screenshot shot.png]

The page's first script writes every error, failed load and console.error into the page's
`data-errors` attribute and its grid script records how many grids it decoded and painted; this
loads the page (with `?paint=all`, so every grid is painted, not only those in view), dumps the
DOM and reads them back. Name resolution is switched off, so a page that tried to fetch anything
from a network would fail too. Prints what it saw; exit 0 when the page is clean, 1 when it is not,
2 when there is no report or no browser. Needs a Chromium (`apt-get install -y chromium`); nothing else.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND")


class RootAndGrids(HTMLParser):
    """The <html> element's attributes, and how many grids (elements with data-g) the page holds."""

    def __init__(self) -> None:
        super().__init__()
        self.root: dict[str, str | None] = {}
        self.grids = 0

    def handle_starttag(self, tag, attrs):
        if tag == "html" and not self.root:
            self.root = dict(attrs)
        if any(name == "data-g" for name, _ in attrs):
            self.grids += 1


def parse(html: str) -> RootAndGrids:
    parser = RootAndGrids()
    parser.feed(html)
    return parser


def find_browser(given: str | None) -> str | None:
    if given:
        return shutil.which(given) or (given if Path(given).is_file() else None)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def run_browser(browser: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="check-report-") as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def console_errors(stderr: str) -> list[str]:
    """Lines of Chromium's log that report a page's console error or uncaught exception."""
    return [line.strip() for line in stderr.splitlines()
            if "CONSOLE" in line and ("Uncaught" in line or ":ERROR:" in line or "error" in line.lower())]


def check(report: Path, browser: str, *, timeout: float, screenshot: Path | None, window: str) -> int:
    size = report.stat().st_size
    in_file = parse(report.read_text(encoding="utf-8")).grids
    url = report.resolve().as_uri() + "?paint=all"
    done = run_browser(browser, ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000",
                                 "--dump-dom", url], timeout)
    dom = parse(done.stdout)
    errors = [e for e in (dom.root.get("data-errors") or "").split(" | ") if e]
    errors += [line for line in console_errors(done.stderr) if not any(e in line for e in errors)]  # once each
    decoded, painted = dom.root.get("data-grids"), dom.root.get("data-painted")
    print(f"{report}: {size:,} bytes ({size / 2**20:.2f} MiB), {in_file} grids in the file")
    print(f"  browser: {Path(browser).name}, exit code {done.returncode}")
    print(f"  grids decoded by the page: {decoded if decoded is not None else 'none (the grid script did not finish)'}")
    print(f"  grids painted: {painted if painted is not None else 'none'}")
    print(f"  script or console errors: {len(errors)}")
    for error in errors[:20]:
        print(f"    {error}")
    problems = list(errors)
    if done.returncode != 0 or not done.stdout.strip():
        problems.append(f"the browser failed (exit code {done.returncode}): {done.stderr.strip()[-500:]}")
    if decoded != str(in_file) or painted != str(in_file):
        problems.append(f"{in_file} grids in the file, {decoded} decoded and {painted} painted")
    if screenshot is not None:
        shot = run_browser(browser, [f"--screenshot={screenshot.resolve()}", f"--window-size={window}",
                                     "--hide-scrollbars", "--virtual-time-budget=5000", report.resolve().as_uri()],
                           timeout)
        print(f"  screenshot: {screenshot}" if screenshot.is_file() else
              f"  screenshot failed (exit code {shot.returncode})")
    print("OK" if not problems else "FAILED: " + "; ".join(problems[-2:] if not errors else ["see the errors above"]))
    return 0 if not problems else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="a report.html")
    parser.add_argument("--browser", help=f"the Chromium to run (default: the first of {', '.join(BROWSERS)} found)")
    parser.add_argument("--screenshot", type=Path, help="also save a screenshot of the page's top here (PNG)")
    parser.add_argument("--window-size", default="1280,2000", help="the screenshot's WIDTH,HEIGHT (default 1280,2000)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds the browser may take (default 300)")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"error: {args.report}: no such file; expected a report.html", file=sys.stderr)
        return 2
    browser = find_browser(args.browser)
    if browser is None:
        print(f"error: no Chromium found (looked for {', '.join([args.browser] if args.browser else BROWSERS)}); "
              "install one, e.g. apt-get install -y chromium", file=sys.stderr)
        return 2
    try:
        return check(args.report, browser, timeout=args.timeout, screenshot=args.screenshot, window=args.window_size)
    except subprocess.TimeoutExpired:
        print(f"FAILED: the browser took longer than {args.timeout:g} s", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
