"""The catalog of problem types: every ``type`` the app's problems carry.

RFC 9457 section 3.1.1: a problem's ``type`` is a URI that, dereferenced,
gives documentation for people. Every ``type`` the app sends is the relative
reference ``/problems/<slug>`` (resolved against the request's URL, as RFC
9457 allows), a page of the ``problems`` blueprint saying what the problem
means and what to do.

:data:`PROBLEM_TYPES` is the one list: the error handlers send no type that
is not in it (a test checks every ``ServiceError`` and every HTTP status the
app maps), and the OpenAPI document's ``Problem.type`` enumerates exactly
these.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Path of every problem type's page; a problem's ``type`` is this plus the slug.
PROBLEM_TYPE_PATH = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    """One problem type: its slug (the last segment of ``type``), the HTTP
    status it comes with, its title, what it means and what to do about it."""

    slug: str
    status: int
    title: str
    meaning: str
    action: str

    @property
    def uri(self) -> str:
        """The ``type`` member of problems of this type (a relative reference)."""
        return PROBLEM_TYPE_PATH + self.slug


PROBLEM_TYPES: tuple[ProblemType, ...] = (
    ProblemType(
        "malformed-json", 400, "Malformed request body",
        "The body could not be read as one JSON value: not UTF-8, empty, a syntax error, NaN or Infinity, "
        "a number out of range (or a non-zero number that would round to 0), a duplicate key, or arrays and "
        "objects nested more than 512 levels. Where the place is known, an item of 'errors' names it in "
        "'pointer' (a syntax error's item also gives 'line' and 'column').",
        "Fix the body as 'detail' says; nothing was changed. Resending the same bytes gets the same answer.",
    ),
    ProblemType(
        "invalid-query", 400, "Invalid query parameter",
        "A query parameter is wrong: not one the operation takes, an unknown value, a bad date-time, a limit out of range, a cursor this "
        "API did not make, or a control character. Each item of 'errors' names it in 'parameter'.",
        "Correct the parameters named; the request changed nothing.",
    ),
    ProblemType(
        "invalid-form", 400, "Invalid form field",
        "A field of a dashboard form is wrong: an unknown action, a job id that is not one, too many jobs "
        "selected, or a control character. Each item of 'errors' names the field.",
        "Go back to the page, reload it and submit again; the request changed nothing.",
    ),
    ProblemType(
        "invalid-idempotency-key", 400, "Invalid Idempotency-Key",
        "The Idempotency-Key header is not one header of 1 to 255 visible ASCII characters other than the comma ('errors' names the header).",
        "Send a fresh key such as a UUID, and the same key with each retry of the request.",
    ),
    ProblemType(
        "invalid-authorization", 400, "Malformed Authorization header",
        "The Authorization header names the Bearer scheme but is not one RFC 6750 credential: it was sent twice "
        "(the server joins repeated headers with commas), or the token holds a character no bearer token has "
        "('errors' names the header; the WWW-Authenticate challenge says error=\"invalid_request\").",
        "Send one 'Authorization: Bearer <token>' header with the token as it was issued.",
    ),
    ProblemType(
        "bad-request", 400, "Bad request",
        "The request could not be understood (for example a form without its CSRF token).",
        "Reload the page and try again, or fix the request as 'detail' says.",
    ),
    ProblemType(
        "unauthorized", 401, "Unauthorized",
        "No valid credential: the API needs 'Authorization: Bearer <worker token>', the pages a sign-in.",
        "Send a valid, unrevoked worker token (an admin creates one with 'flask tokens create'), or sign in.",
    ),
    ProblemType(
        "forbidden", 403, "Forbidden",
        "You are signed in, but your role does not allow this.",
        "Ask an admin for a role that does, or use an account that has it.",
    ),
    ProblemType(
        "not-found", 404, "Not found",
        "Nothing is at this address (or the account named does not exist).",
        "Check the path against the OpenAPI document (/api/v1/openapi.json).",
    ),
    ProblemType(
        "job-not-found", 404, "Job not found",
        "No job has this id.",
        "Check the id: it is the 'id' of the job the create request returned (also in its Location header).",
    ),
    ProblemType(
        "method-not-allowed", 405, "Method not allowed",
        "This path does not take this HTTP method; the Allow header lists those it takes.",
        "Use one of the methods in Allow.",
    ),
    ProblemType(
        "not-acceptable", 406, "Not acceptable",
        "The server cannot answer in a media type the Accept header allows.",
        "Accept application/json (and application/problem+json for errors).",
    ),
    ProblemType(
        "invalid-transition", 409, "Status transition not allowed",
        "The job's status does not allow this change (for example a result for a Completed job, or a requeue "
        "of a job that has not failed). Nothing was changed.",
        "Read the job (GET /api/v1/processing-jobs/<id>) to see its status; a finished job leaves it only by "
        "an explicit requeue.",
    ),
    ProblemType(
        "group-not-found", 404, "Failure group not found",
        "No failure group has this id.",
        "Check the id: it is the 'id' of a group from GET /api/v1/failure-groups (or the number in /groups/<id>).",
    ),
    ProblemType(
        "invalid-group-transition", 409, "State change not allowed",
        "The failure group's state does not allow this change (for example resolving a resolved group, or "
        "reopening an unresolved one). Nothing was changed.",
        "Read the group (GET /api/v1/failure-groups/<id>) to see its state, then send the action that state allows.",
    ),
    ProblemType(
        "idempotency-key-in-progress", 409, "Idempotency key in progress",
        "A request with the same Idempotency-Key is still running; this retry did not run the change.",
        "Wait the seconds in Retry-After, then send the same request again with the same key.",
    ),
    ProblemType(
        "already-exists", 409, "Already exists",
        "An account or token with this name already exists.",
        "Choose another name, or change the existing one.",
    ),
    ProblemType(
        "content-too-large", 413, "Content too large",
        "The body is larger than the server's limit (MAX_CONTENT_LENGTH, 1 MiB by default).",
        "Send less: fewer entities or error items in one request (items beyond 200 are not kept anyway).",
    ),
    ProblemType(
        "unsupported-media-type", 415, "Unsupported media type",
        "The body is not JSON: the Content-Type is not application/json (or a +json type), or its charset "
        "is not UTF-8.",
        "Send 'Content-Type: application/json' with a UTF-8 body.",
    ),
    ProblemType(
        "invalid-fields", 422, "Invalid fields",
        "The body is JSON but breaks the worker contract's schema: a missing, unknown or wrongly typed field. "
        "'errors' names every fault of the body at once, each with a 'pointer', including those the checks "
        "after the schema would find (a span ending before it starts, details that do not fit their format).",
        "Fix each field named; nothing was changed.",
    ),
    ProblemType(
        "invalid-failure", 422, "Invalid failure report",
        "The failure report fits the schema but not the recorder's rules: error_message blank once trimmed "
        "or too long, error_details nested too deeply, a string over 10,000 characters, details that do not "
        "fit the declared (or recognised) error_format, or details that fit several formats.",
        "Fix the fields named in 'errors' (for several formats, send error_format); nothing was changed.",
    ),
    ProblemType(
        "invalid-job", 422, "Invalid processing job",
        "The new job's document_id or job_type breaks a rule the schema cannot state.",
        "Fix the fields named in 'errors'.",
    ),
    ProblemType(
        "invalid-entities", 422, "Invalid extracted entities",
        "The entities fit the schema but not the rules after it: a span that ends before it starts, or "
        "attributes nested more than 8 levels or holding a string over 2,000 characters.",
        "Fix the entities named in 'errors'; none was stored and the job did not change.",
    ),
    ProblemType(
        "idempotency-key-reused", 422, "Idempotency key reused",
        "This Idempotency-Key was first sent with a different method, path or body ('errors' names the "
        "header). Bodies are compared as canonical JSON: key order and whitespace do not matter.",
        "Use a new key for a new request; reuse a key only to retry the very same request.",
    ),
    ProblemType(
        "too-many-requests", 429, "Too many requests",
        "Too many attempts in a short time (sign-in is rate limited).",
        "Wait the seconds in Retry-After before trying again.",
    ),
    ProblemType(
        "http-error", 400, "HTTP error",
        "An HTTP error without a type of its own; 'status' and 'detail' say which.",
        "Act on 'status' as HTTP defines it.",
    ),
    ProblemType(
        "internal-error", 500, "Internal server error",
        "The server hit an unexpected condition. Nothing was changed (the transaction was rolled back).",
        "Retry later with the same Idempotency-Key; if it persists, report the request_id to the operators.",
    ),
    ProblemType(
        "service-unavailable", 503, "Service temporarily unavailable",
        "The database cannot serve now (restarting, overloaded, or a lock wait ran out).",
        "Retry after the seconds in Retry-After, with the same Idempotency-Key so the change is made once.",
    ),
)  # fmt: skip

_BY_SLUG = {problem_type.slug: problem_type for problem_type in PROBLEM_TYPES}


def problem_type(slug: str) -> ProblemType | None:
    """The catalog entry for ``slug``, or ``None``."""
    return _BY_SLUG.get(slug)

