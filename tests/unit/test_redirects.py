"""Tests of the one check of redirect targets (app.redirects)."""

from __future__ import annotations

import pytest

from app.redirects import MAX_TARGET_LENGTH, safe_redirect_target, same_site_referrer

DEFAULT = "/default"


@pytest.mark.parametrize(
    "target",
    [
        "/jobs",
        "/jobs?status=Failed&from=2026-11-29T21%3A16%3A35Z&q=a%20b",
        "/jobs/0b9f2f1e-4d3c-4a6f-9a53-1d2e3f4a5b6c",
        "/" + "a" * (MAX_TARGET_LENGTH - 1),
    ],
)
def test_paths_of_this_site_are_kept(target):
    assert safe_redirect_target(target, DEFAULT) == target


@pytest.mark.parametrize(
    "target",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("jobs", id="relative"),
        pytest.param("https://evil.example/", id="absolute"),
        pytest.param("//evil.example/x", id="scheme-relative"),
        pytest.param("/\\evil.example", id="backslash-read-as-slash"),
        pytest.param("/jobs\\x", id="backslash"),
        pytest.param("/\t/evil.example", id="tab-dropped-by-browsers"),
        pytest.param("/jobs\r\nSet-Cookie: x=1", id="crlf"),
        pytest.param("/jobs\x00", id="nul"),
        pytest.param("/jobs\x1b", id="escape"),
        pytest.param("/jobs\x7f", id="del"),
        pytest.param("/jobs\x85", id="c1-next-line"),
        pytest.param("/jobs\u202e", id="bidi-override"),
        pytest.param("/jobs x", id="space"),
        pytest.param("/jobs\n", id="trailing-newline"),
        pytest.param("/" + "a" * MAX_TARGET_LENGTH, id="too-long"),
    ],
)
def test_anything_else_gives_the_default(target):
    assert safe_redirect_target(target, DEFAULT) == DEFAULT


@pytest.mark.parametrize(("referrer", "expected"), [
    ("http://console.test/groups/7?state=all", "/groups/7?state=all"),
    ("http://console.test/jobs", "/jobs"),
    ("http://console.test/jobs?q=a#frag", "/jobs?q=a"),
    ("http://console.test:8080/jobs", None),  # another port is another site
    ("http://evil.test/jobs", None),
    ("http://console.test//evil.test/x", None),  # a path read as another host
    ("http://console.test/a b", None),
    ("", None),
    (None, None),
])
def test_a_referrer_is_followed_only_as_a_path_of_this_site(referrer, expected):
    assert same_site_referrer(referrer, "console.test") == expected


def test_page_endpoint_names_the_get_pages_only():
    from flask import Blueprint, Flask

    from app.redirects import not_a_page, page_endpoint

    app = Flask(__name__)
    app.add_url_rule("/groups", "list_groups", lambda: "")
    app.add_url_rule("/groups/<int:group_id>", "show_group", lambda group_id: "")
    app.add_url_rule("/folder/", "folder", lambda: "")
    app.add_url_rule("/logout", "logout", lambda: "", methods=["POST"])
    app.add_url_rule("/jobs/bulk", "bulk_form_address", not_a_page(lambda: ""))
    api = Blueprint("api", __name__)
    api.add_url_rule("/api/v1/groups", "groups", lambda: "")
    app.register_blueprint(api)
    with app.app_context():
        assert page_endpoint("/groups") == "list_groups"
        assert page_endpoint("/groups/7") == "show_group"
        assert page_endpoint("/folder") == "folder"  # the slash Werkzeug adds
        assert [page_endpoint(p) for p in ("/logout", "/jobs/bulk", "/api/v1/groups", "/groups/x", "/nowhere")] == [
            None] * 5
