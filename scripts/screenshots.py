"""Screenshots of the console at a phone, a tablet and a laptop width.

    .venv/bin/python scripts/screenshots.py            # into docs/screenshots/
    .venv/bin/python scripts/screenshots.py --out /tmp/shots

Builds a throwaway SQLite database with the app's migrations (in a
temporary folder), runs the reference worker over demo/corpus against the
app served on a free loopback port, signs in with Debian's Chromium
(Playwright) and saves full-page PNGs of the failed jobs, one job, a search
and the audit log at 390, 768 and 1400 px: ``<page>-<width>.png``. The
tests never write into the work tree; this script is how the pictures in
the README and docs are made.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WIDTHS = (390, 768, 1400)
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "screenshot password"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="folder for the PNGs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from flask_migrate import upgrade
    from playwright.sync_api import sync_playwright

    from app import create_app
    from app.extensions import db
    from app.services import access, worker_tokens
    from app.worker.client import WorkerApiClient
    from app.worker.runner import run_worker
    from tests.integration.test_browser import CHROMIUM_ARGS
    from tests.live_server import serve

    with tempfile.TemporaryDirectory(prefix="clinical-screenshots-") as folder:
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/shots.sqlite3", "RATELIMIT_ENABLED": False})
        with app.app_context():
            upgrade()
            access.create_user("demo-admin", PASSWORD, "admin")
            token, _ = worker_tokens.create_worker_token("demo-worker")
        with serve(app) as base_url:
            client = WorkerApiClient(base_url, retries=0, token=token)
            try:
                run_worker(client, ROOT / "demo" / "corpus")
            finally:
                client.session.close()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    for width in WIDTHS:
                        page = browser.new_page(viewport={"width": width, "height": 900})
                        page.goto(f"{base_url}/login")
                        page.fill("#username", "demo-admin")
                        page.fill("#password", PASSWORD)
                        page.click(".login button[type=submit]")
                        page.wait_for_url(f"{base_url}/jobs")
                        job = page.locator("table.jobs td.document a").first.get_attribute("href")
                        pages = {
                            "jobs": "/jobs",
                            "job-detail": job,
                            "search": "/search?q=ICD-10-CM",
                            "audit": "/admin/audit",
                        }
                        for name, path in pages.items():
                            page.goto(base_url + path)
                            page.wait_for_load_state("load")
                            for frame in page.frames[1:]:
                                frame.wait_for_load_state("load")
                            page.screenshot(path=str(args.out / f"{name}-{width}.png"), full_page=True)
                            print(args.out / f"{name}-{width}.png")
                        page.close()
                finally:
                    browser.close()
        with app.app_context():
            db.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
