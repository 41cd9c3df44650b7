"""Problem types resolve (RFC 9457 section 3.1.1): every ``type`` the app can
send is a page it serves, saying what the problem means and what to do, is
listed in /problems/index.json and in the OpenAPI document."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import app as app_package
from app.api.contract import openapi_document
from app.errors import ServiceError
from app.web.errors import _HTTP_SLUGS
from app.web.problem_types import PROBLEM_TYPES, problem_type

SLUGS = [t.slug for t in PROBLEM_TYPES]


def _service_errors() -> list[type[ServiceError]]:
    # Import every module so every ServiceError subclass is defined.
    for module in pkgutil.walk_packages(app_package.__path__, "app."):
        importlib.import_module(module.name)
    found, stack = [], [ServiceError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return [cls for cls in found if cls is not ServiceError]


def _raisable_slugs() -> set[str]:
    """Every slug a problem can carry: each ServiceError's, each HTTP status
    the handlers map, and the handlers' own (unexpected error, database down,
    unmapped HTTP status)."""
    return (
        {cls.slug for cls in _service_errors()}
        | set(_HTTP_SLUGS.values())
        | {"internal-error", "service-unavailable", "http-error"}
    )


def test_the_catalog_lists_every_problem_the_code_can_raise_and_nothing_else():
    assert len(SLUGS) == len(set(SLUGS))
    assert set(SLUGS) == _raisable_slugs()


def test_service_errors_carry_their_catalog_status_and_title():
    for cls in _service_errors():
        entry = problem_type(cls.slug)
        assert entry is not None and entry.status == cls.status, cls
        if cls.slug != "not-found":  # shared with Werkzeug's 404
            assert entry.title == cls.title, cls


def test_every_problem_type_is_in_the_openapi_document():
    enum = openapi_document()["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]
    assert enum == [f"/problems/{slug}" for slug in SLUGS]


@pytest.mark.parametrize("slug", SLUGS)
def test_every_problem_type_has_a_public_page(anonymous_client, slug):
    response = anonymous_client.get(f"/problems/{slug}")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    entry = problem_type(slug)
    for text in (entry.title, "What it means", "What to do"):
        assert text in page
    assert entry.meaning.replace("'", "&#39;")[:60] in page


def test_the_index_lists_every_type_for_programs(anonymous_client):
    response = anonymous_client.get("/problems/index.json")
    assert response.status_code == 200
    items = response.get_json()["items"]
    assert [item["type"] for item in items] == [f"/problems/{slug}" for slug in SLUGS]
    assert all(item["meaning"] and item["action"] for item in items)
    listing = anonymous_client.get("/problems/")
    assert listing.status_code == 200
    assert all(f"/problems/{slug}" in listing.get_data(as_text=True) for slug in SLUGS)


def test_an_unknown_type_is_a_404(anonymous_client):
    assert anonymous_client.get("/problems/no-such-type").status_code == 404


def test_a_real_problem_type_resolves(anonymous_client, client):
    problem = anonymous_client.get("/api/v1/processing-jobs").get_json()
    assert problem["type"] == "/problems/unauthorized"
    assert anonymous_client.get(problem["type"]).status_code == 200
    problem = client.get("/api/v1/processing-jobs/00000000-0000-0000-0000-000000000000").get_json()
    assert anonymous_client.get(problem["type"]).status_code == 200
