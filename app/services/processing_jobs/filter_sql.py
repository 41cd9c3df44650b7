"""The SQL the job filter's search and error-code conditions become, per backend.

:class:`error_details_has_code` (the ``error_code`` filter) and
:class:`job_text_matches` (the ``q`` search) are SQL constructs with one
meaning each, compiled per backend so that
:meth:`~app.services.processing_jobs.job_filter.JobFilter.where` stays
backend-neutral; :func:`id_prefix_range` reads a search term as a job id
prefix, and :func:`escape_like` makes text literal in a LIKE pattern.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.models import JobFailure
from app.services.error_details import listed_errors

class error_details_has_code(FunctionElement[bool]):  # noqa: N801 (named like the SQL function it stands for)
    """SQL condition: ``error_details`` is an envelope whose ``errors`` array
    holds an object with ``code`` equal to a string.

    Built as ``error_details_has_code(column, code, probe)`` where ``probe``
    is the containment document ``{"errors": [{"code": code}]}``. One
    construct with one meaning, compiled per backend so that
    :meth:`JobFilter.where` stays backend-neutral:

    * PostgreSQL: ``error_details @> probe``, which the GIN ``jsonb_path_ops``
      index ``ix_processing_jobs_error_details`` (migration 0004) serves;
    * SQLite: ``json_type(error_details, '$.errors') = 'array' AND EXISTS
      (SELECT 1 FROM json_each(error_details, '$.errors') WHERE
      json_extract(value, '$.code') = code)`` -- a scan; SQLite has no JSON
      index.

    Both match only a string ``code`` in an object item of an ``errors``
    array, wherever the item is in the array.
    """

    type = sa.Boolean()
    name = "error_details_has_code"
    inherit_cache = True


@compiles(error_details_has_code, "postgresql")
def _has_code_postgresql(element: error_details_has_code, compiler: SQLCompiler, **kw: Any) -> str:
    details, _code, probe = element.clauses
    return compiler.process(sa.type_coerce(details, JSONB).op("@>")(probe), **kw)


class error_details_has_code_scanned(error_details_has_code):  # noqa: N801
    """:class:`error_details_has_code`, written so that PostgreSQL tests it
    row by row instead of through the GIN index.

    For queries already narrowed by a time range: the index returns a bitmap
    of *every* job with the code (half the table for a common one: 42 ms at
    1,000,000 jobs, docs/benchmarks.md), where testing the few thousand
    rows in the range costs a few ms. The planner underrates that bitmap.
    """

    name = "error_details_has_code_scanned"
    inherit_cache = True


@compiles(error_details_has_code_scanned, "postgresql")
def _has_code_scanned_postgresql(
    element: error_details_has_code_scanned, compiler: SQLCompiler, **kw: Any
) -> str:
    details, _code, probe = element.clauses
    # coalesce() hides the column from the index; NULL details match nothing either way.
    document = sa.func.coalesce(sa.type_coerce(details, JSONB), sa.cast(sa.literal("null"), JSONB))
    return compiler.process(document.op("@>")(probe), **kw)


@compiles(error_details_has_code, "sqlite")
@compiles(error_details_has_code_scanned, "sqlite")
def _has_code_sqlite(element: error_details_has_code, compiler: SQLCompiler, **kw: Any) -> str:
    details, code, _probe = element.clauses
    item = sa.func.json_each(details, "$.errors").table_valued("value", "type").alias("error_item")
    # CASE, not AND: SQLite does not promise to evaluate AND left to right,
    # and json_extract() raises on an item that is a bare string.
    item_code = sa.case((item.c.type == "object", sa.func.json_extract(item.c.value, "$.code")))
    condition = sa.and_(
        sa.func.json_type(details, "$.errors") == "array",
        sa.exists().select_from(item).where(item_code == code),
    )
    return compiler.process(condition, **kw)


class job_text_matches(FunctionElement[bool]):  # noqa: N801 (named like the SQL it stands for)
    """SQL condition: a job's searchable text holds a LIKE pattern, case-insensitively.

    Built as ``job_text_matches(id, document_id, error_message,
    error_details, pattern)`` with ``pattern`` a LIKE pattern escaped with
    ``\\``. The searchable text is the document id, and the error message
    and, in each error item (the listing rule of
    :func:`app.services.error_details.listed_errors`: an object's ``errors``
    array, or a bare array), the string ``message``, ``code``, ``pointer``,
    ``entity.type`` and ``entity.code`` (:data:`SEARCHED_ITEM_FIELDS`) of
    the job's current failure **and of every failure it had before** (a
    requeued job is still found by what it failed with). A match never
    spans two fields or two failures. Compiled per backend:

    * PostgreSQL: ``search_text LIKE lower(pattern) OR earlier_search_text
      LIKE lower(pattern)``: the stored generated column of migration 0008
      (``lower(job_search_text(document_id, error_message,
      error_details))``, the fields joined by U+001F, which no search term
      holds) and the earlier failures' text kept by migration 0020's
      trigger (joined by U+001E; cut at 65,536 characters, newest kept),
      each served by its trigram GIN index;
    * SQLite: the same fields tested one by one, the items through
      ``json_each``, and the same of each of the job's ``job_failures``
      rows -- a scan. ``lower()`` folds ASCII letters only there.
    """

    type = sa.Boolean()
    name = "job_text_matches"
    inherit_cache = True


#: The string fields of an error item the search reads (``entity.type`` is
#: the ``type`` of the item's ``entity`` object). Keep migration 0008's
#: ``job_search_text`` in step.
SEARCHED_ITEM_FIELDS = ("message", "code", "pointer", "entity.type", "entity.code")


def failure_holds_text(message: Any, details: Any, text: str) -> bool:
    """The Python twin of :class:`job_text_matches` for one failure: whether
    its message, or one of its error items' :data:`SEARCHED_ITEM_FIELDS`
    (string values; the listing rule of
    :func:`app.services.error_details.listed_errors`), holds ``text``,
    case folded with :meth:`str.lower` (PostgreSQL's ``lower()`` for the
    letters a search holds). For pages that say which failure a search found."""
    wanted = text.lower()
    fields = [message]
    for item in listed_errors(details):
        for path in SEARCHED_ITEM_FIELDS:
            value: Any = item
            for key in path.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            fields.append(value)
    return any(isinstance(field, str) and wanted in field.lower() for field in fields)


@compiles(job_text_matches, "postgresql")
def _text_matches_postgresql(element: job_text_matches, compiler: SQLCompiler, **kw: Any) -> str:
    _id, document_id, _message, _details, pattern = element.clauses
    # The stored texts of migrations 0008 and 0020, columns of the same table
    # (or alias) as document_id; not in the model, which SQLite shares.
    search_text = sa.sql.expression.ColumnClause("search_text", sa.Text, _selectable=document_id.table)
    earlier = sa.sql.expression.ColumnClause("earlier_search_text", sa.Text, _selectable=document_id.table)
    # Both are stored lower-cased: LIKE lower(pattern) is ILIKE, without
    # lower-casing every candidate row again.
    lowered = sa.func.lower(pattern)
    condition = sa.or_(search_text.like(lowered, escape="\\"), earlier.like(lowered, escape="\\"))
    return "(" + compiler.process(condition, **kw) + ")"


@compiles(job_text_matches, "sqlite")
def _text_matches_sqlite(element: job_text_matches, compiler: SQLCompiler, **kw: Any) -> str:
    job_id, document_id, message, details, pattern = element.clauses
    failure = JobFailure.__table__.alias("earlier_failure")
    condition = sa.or_(
        document_id.ilike(pattern, escape="\\"),
        _failure_matches_sqlite(message, details, pattern),
        # Every failure the job had, the current one included (it is the
        # job's own fields again: no row is found that they did not find).
        sa.exists().where(failure.c.job_id == job_id,
                          _failure_matches_sqlite(failure.c.error_message, failure.c.error_details, pattern)),
    )
    # Parenthesised: SQLite's compiler may append "= 1" to a boolean function.
    return "(" + compiler.process(condition, **kw) + ")"


def _failure_matches_sqlite(message: Any, details: Any, pattern: Any) -> sa.ColumnElement[bool]:
    """SQLite: a failure's message or one of its items' searched fields holds ``pattern``."""
    # The listing rule; CASE, not AND: SQLite does not promise to evaluate
    # AND left to right, and json_extract() raises on text that is no JSON object.
    items_json = sa.case(
        (sa.func.json_type(details) == "array", details),
        (sa.func.json_type(details) == "object",
         sa.case((sa.func.json_type(details, "$.errors") == "array", sa.func.json_extract(details, "$.errors")))),
    )
    item = sa.func.json_each(items_json).table_valued("value", "type").alias("search_item")

    def field(path: str) -> sa.ColumnElement[Any]:
        json_path = "$." + path
        return sa.case(
            (item.c.type == "object",
             sa.case((sa.func.json_type(item.c.value, json_path) == "text", sa.func.json_extract(item.c.value, json_path)))),
        )

    return sa.or_(
        message.ilike(pattern, escape="\\"),
        sa.exists().select_from(item).where(
            sa.or_(*(field(path).ilike(pattern, escape="\\") for path in SEARCHED_ITEM_FIELDS))
        ),
    )


class text_starts_with(FunctionElement[bool]):  # noqa: N801 (named like the SQL it stands for)
    """SQL condition: a text column starts with a prefix, case-sensitively.

    Built as ``text_starts_with(column, prefix, pattern)`` with ``pattern``
    the LIKE pattern ``escape_like(prefix) + "%"``, a bound value of its
    own: PostgreSQL turns a LIKE with a fixed prefix into an index range,
    not one built in SQL (and a value made while compiling would be lost
    to the statement cache). The prefix is taken literally.

    * PostgreSQL: ``column LIKE 'prefix%'`` (``%``, ``_`` and ``\\`` escaped),
      which a btree ``text_pattern_ops`` index serves as a range
      (``ix_processing_jobs_document_id_pattern``, migration 0018_document_prefix);
    * SQLite: ``substr(column, 1, length(prefix)) = prefix`` -- a scan. Not
      LIKE: SQLite's LIKE ignores the case of ASCII letters.

    Both compare characters, so both keep the same rows.
    """

    type = sa.Boolean()
    name = "text_starts_with"
    inherit_cache = True


@compiles(text_starts_with, "postgresql")
def _starts_with_postgresql(element: text_starts_with, compiler: SQLCompiler, **kw: Any) -> str:
    column, _prefix, pattern = element.clauses
    return "(" + compiler.process(column.like(pattern, escape="\\"), **kw) + ")"


@compiles(text_starts_with, "sqlite")
def _starts_with_sqlite(element: text_starts_with, compiler: SQLCompiler, **kw: Any) -> str:
    column, prefix, _pattern = element.clauses
    return "(" + compiler.process(sa.func.substr(column, 1, sa.func.length(prefix)) == prefix, **kw) + ")"


#: Fewest hex digits of a job id prefix the search treats as an id.
ID_PREFIX_MIN_DIGITS = 8
_ID_LIKE = re.compile(r"[0-9a-fA-F-]+\Z")


def id_prefix_range(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The ids a search term names when it is a job id or its prefix.

    ``text`` (hex digits and hyphens only, any case) with at least
    :data:`ID_PREFIX_MIN_DIGITS` and at most 32 hex digits, hyphens ignored
    -> the smallest and largest UUID starting with those digits; else
    ``None``. A range of the primary key, which both backends' indexes
    serve (PostgreSQL compares ``uuid`` bytes, SQLite the lower-case hex
    text: the same order).
    """
    if not _ID_LIKE.match(text):
        return None
    digits = text.replace("-", "").lower()
    if not ID_PREFIX_MIN_DIGITS <= len(digits) <= 32:
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def escape_like(text: str, escape: str = "\\") -> str:
    """Escape ``%``, ``_`` and the escape character for a LIKE pattern."""
    return (
        text.replace(escape, escape + escape).replace("%", escape + "%").replace("_", escape + "_")
    )
