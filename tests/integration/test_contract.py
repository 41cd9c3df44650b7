"""The published contract: the OpenAPI document matches the real routes, and
schemathesis finds no server error and no response that breaks it."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import positive_data_acceptance

from app.api.contract import PUBLISHED_SCHEMAS, openapi_document
from app.models import EntityType, JobStatus
from app.models.job_status import TERMINAL_STATUSES, WORKER_STATUS_WORDS
from app.registry import get_failure_recorder
from app.services.error_details import ERROR_FORMATS, SEVERITIES, load_error_details_schema
from app.services.failure_groups.fingerprint import KNOWN_VERSIONS
from app.services.failure_groups.queries import SORTS as GROUP_SORTS
from app.services.processing_jobs.job_filter import AcknowledgedFilter, TimeField
from app.services.processing_jobs.lifecycle import create_job, start_job
from app.web.problem_types import PROBLEM_TYPES

METHODS = {"get", "post", "put", "patch", "delete"}


def test_openapi_document_is_valid_openapi_3_1():
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    validate_openapi(document)


def _dereferenced(document: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The document with every ``$ref`` replaced by what it points to (keys
    beside a ``$ref`` win, as OpenAPI 3.1 allows), and the references used.
    An unresolvable reference raises; a circular one fails the assertion."""
    base = "urn:openapi-document"
    resolver = Registry().with_resource(base, Resource(document, DRAFT202012)).resolver(base)
    used: set[str] = set()

    def walk(node: Any, trail: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [walk(item, trail) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            ref = node["$ref"]
            assert ref not in trail, f"circular $ref {ref}"
            used.add(ref)
            target = walk(resolver.lookup(base + ref).contents, trail | {ref})
            return {**target, **{k: walk(v, trail) for k, v in node.items() if k != "$ref"}}
        return {k: walk(v, trail) for k, v in node.items()}

    return walk(document, frozenset()), used


def test_openapi_references_resolve_and_shared_components_are_used():
    document = openapi_document()
    dereferenced, used = _dereferenced(document)
    assert "$ref" not in json.dumps(dereferenced)
    for kind in ("responses", "parameters", "headers"):
        for name in document["components"].get(kind, {}):
            assert f"#/components/{kind}/{name}" in used, f"components.{kind}.{name} is never used"


def _enums(node: Any, pointer: str = "") -> dict[str, list[Any]]:
    """Every ``enum`` in the document, by the JSON pointer of its schema."""
    found: dict[str, list[Any]] = {}
    if isinstance(node, dict):
        if isinstance(node.get("enum"), list):
            found[pointer] = node["enum"]
        for key, value in node.items():
            found |= _enums(value, f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found |= _enums(value, f"{pointer}/{index}")
    return found


def test_openapi_enums_equal_the_code():
    """The hand-written document lists the same values as the code: status
    names, entity types, error formats, the worker's words for a finished
    job, and the list filters' choices. A new enum must be added here."""
    document = openapi_document()
    schemas = document["components"]["schemas"]
    terminal_words = {word for word, status in WORKER_STATUS_WORDS.items() if status in TERMINAL_STATUSES}
    list_parameters = {
        p["name"]: p for p in document["paths"]["/api/v1/processing-jobs"]["get"]["parameters"] if "name" in p
    }

    # Canonical names, in the code's order.
    assert schemas["JobStatus"]["enum"] == [status.value for status in JobStatus]
    assert schemas["EntityType"]["enum"] == [entity_type.value for entity_type in EntityType]
    for name in ("ValidationFailureReport", "ProcessingResult"):
        assert schemas[name]["properties"]["error_format"]["enum"] == list(ERROR_FORMATS)
    # A worker reports a result with the lower-case words of a finished job,
    # one if/then branch per word.
    result = schemas["ProcessingResult"]
    assert set(result["properties"]["status"]["enum"]) == terminal_words
    assert len(result["properties"]["status"]["enum"]) == len(terminal_words)
    assert {branch["if"]["properties"]["status"]["const"] for branch in result["allOf"]} == terminal_words
    assert set(list_parameters["time_field"]["schema"]["enum"]) == set(TimeField)
    assert set(list_parameters["acknowledged"]["schema"]["enum"]) == set(AcknowledgedFilter)
    group_parameters = {
        p["name"]: p for p in document["paths"]["/api/v1/failure-groups"]["get"]["parameters"] if "name" in p
    }
    # The one value read_failing takes (an empty one is no filter, as for every parameter).
    assert group_parameters["failing"]["schema"]["enum"] == ["1"]
    # The grouping versions the server implements (a schemathesis run sent 2, documented then as any integer >= 1).
    assert group_parameters["grouping_version"]["schema"]["enum"] == list(KNOWN_VERSIONS)
    # The sorts the listing takes (a trial's schemathesis run: a plain string let any value through).
    assert group_parameters["sort"]["schema"]["enum"] == list(GROUP_SORTS)

    # Status and entity type are written once and referred to elsewhere
    # (a Problem's status is the HTTP status).
    for name, schema in schemas.items():
        properties = schema.get("properties", {})
        # A failure group's entity_type is copied from error items, whose
        # entity.type is the worker's free text, not this enum.
        if "entity_type" in properties and name != "FailureGroup":
            assert properties["entity_type"] == {"$ref": "#/components/schemas/EntityType"}
        if "status" in properties and name not in ("ProcessingResult", "Problem"):
            assert properties["status"] == {"$ref": "#/components/schemas/JobStatus"}
    # The published schemas, copied in from their files (app.api.contract).
    assert schemas["ErrorDetailsEnvelope"]["$defs"]["item"]["properties"]["severity"]["enum"] == list(SEVERITIES)
    assert schemas["EntityDocument"]["$defs"]["entity"]["properties"]["entity_type"]["enum"] == [
        entity_type.value for entity_type in EntityType
    ]
    schema_names = document["paths"]["/api/v1/schemas/{name}"]["get"]["parameters"][0]["schema"]["enum"]
    assert schema_names == list(PUBLISHED_SCHEMAS)
    # Problem types: the catalog that has a page for each (app.web.problem_types).
    assert schemas["Problem"]["properties"]["type"]["enum"] == [t.uri for t in PROBLEM_TYPES]
    assert document["components"]["headers"]["IdempotentReplayed"]["schema"]["enum"] == ["true"]
    assert set(_enums(document)) == {
        "/components/headers/IdempotentReplayed/schema",
        "/components/schemas/Problem/properties/type",
        "/components/schemas/ErrorDetailsEnvelope/$defs/item/properties/severity",
        "/components/schemas/EntityDocument/$defs/entity/properties/entity_type",
        "/components/schemas/EntityDocument/$defs/allergy_intolerance/properties/criticality",
        "/paths/~1api~1v1~1schemas~1{name}/get/parameters/0/schema",
        "/components/schemas/JobStatus",
        "/components/schemas/EntityType",
        "/components/schemas/ValidationFailureReport/properties/error_format",
        "/components/schemas/ProcessingResult/properties/error_format",
        "/components/schemas/ProcessingResult/properties/status",
        "/paths/~1api~1v1~1processing-jobs/get/parameters/3/schema",
        "/paths/~1api~1v1~1processing-jobs/get/parameters/8/schema",
        "/paths/~1api~1v1~1failure-groups/get/parameters/7/schema",
        "/paths/~1api~1v1~1failure-groups/get/parameters/8/schema",
        "/paths/~1api~1v1~1failure-groups/get/parameters/9/schema",
    }


def test_openapi_document_is_served(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == openapi_document()


def test_the_served_document_says_the_servers_own_page_size(app, client):
    # A trial ran with MAX_PAGE_SIZE=10: the document still said limit <= 200, default 50, and a
    # client generated from it asked for 50 and was refused.
    app.config["MAX_PAGE_SIZE"] = 10
    served = client.get("/api/v1/openapi.json").get_json()
    limits = [p["schema"] for item in served["paths"].values() for op in item.values() if isinstance(op, dict)
              for p in op.get("parameters", []) if p.get("name") == "limit"]
    assert len(limits) >= 2 and all(limit["maximum"] == 10 and limit.get("default", 10) == 10 for limit in limits)
    assert client.get("/api/v1/failure-groups?limit=10").status_code == 200
    assert client.get("/api/v1/failure-groups?limit=11").status_code == 400
    source = [p["schema"]["maximum"] for item in openapi_document()["paths"].values() for op in item.values()
              if isinstance(op, dict) for p in op.get("parameters", []) if p.get("name") == "limit"]
    assert set(source) == {200}  # the source is untouched


def test_openapi_paths_are_exactly_the_api_routes(app):
    documented = {
        (method.upper(), path)
        for path, item in openapi_document()["paths"].items()
        for method in item
        if method in METHODS
    }
    routed = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routed.add((method, path))
    assert documented == routed


def test_error_details_schema_is_valid_and_published():
    Draft202012Validator.check_schema(load_error_details_schema())


def _real_job(app, state: int) -> str:
    with app.app_context():
        job_id = create_job("doc-schemathesis").id
        if state == 1:
            start_job(job_id)
        elif state == 2:
            get_failure_recorder().record_failure(job_id, "worker crashed")
        return str(job_id)


def test_api_conforms_to_its_openapi_document(app, auth_headers):
    """schemathesis generates requests (valid and invalid) for every operation
    from the document; none may get a 5xx, and every response must match the
    documented status codes, media types and schemas.

    Driven through schemathesis' Python API with Hypothesis directly: its
    pytest plugin does not support this pytest version.
    """
    api = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, headers=auth_headers)
    operations = [result.ok() for result in api.get_all_operations()]
    documented = {
        f"{method.upper()} {path}"
        for path, item in openapi_document()["paths"].items()
        for method in item
        if method in METHODS
    }
    # schemathesis leaves out the operation that serves the schema itself.
    assert {op.label for op in operations} == documented - {"GET /api/v1/openapi.json"}
    counter = itertools.count()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            if case.path_parameters and "job_id" in case.path_parameters and next(counter) % 2:
                # Every other case targets a real job, in turn Pending,
                # Processing or failed, so bodies reach the services too.
                case.path_parameters["job_id"] = _real_job(app, next(counter) % 3)
            # positive_data_acceptance is left out: some valid-looking values
            # are still refused by rules a schema cannot state (an opaque
            # cursor that decodes to nothing, a job id that names no job).
            case.call_and_validate(headers=auth_headers, excluded_checks=[positive_data_acceptance])

        check()
