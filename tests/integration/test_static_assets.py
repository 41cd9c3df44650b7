"""Pages link a favicon that is served without signing in (no 404 per page view)."""

from __future__ import annotations

import re


def test_pages_link_a_favicon_that_anyone_can_fetch(anonymous_client):
    page = anonymous_client.get("/login").get_data(as_text=True)
    href = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page).group(1)
    icon = anonymous_client.get(href)
    try:
        assert icon.status_code == 200
        assert icon.mimetype == "image/svg+xml"
        assert icon.data.startswith(b"<svg")
    finally:
        icon.close()  # static files are streamed from an open file
