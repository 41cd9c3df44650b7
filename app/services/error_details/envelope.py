"""Reading stored ``error_details``: is this a normalized envelope, and which
error items does it hold?

The failure recorder stores a worker's structured details as the v1 envelope
``{"schema_version": 1, "errors": [...], "error_count": N, "truncated": b}``
and free-form details exactly as sent -- which may happen to look like an
envelope. Readers therefore need one rule, kept here with its SQL twin:

**Envelope rule** (:func:`envelope_errors`, :func:`is_envelope_sql`):
``error_format`` is not ``free-form`` (NULL counts: jobs from before formats
were recorded), ``error_details`` is a JSON object, its ``schema_version``
is the integer 1 (not ``true``, not ``"1"``) and its ``errors`` is an
array. The exports apply it, in Python for the per-job rows and in SQL to
expand the items; ``tests/integration/test_envelope.py`` checks that both
agree on SQLite and PostgreSQL.

**Listing rule** (:func:`listed_errors`): for showing and counting errors, an
object's ``errors`` array is read even without ``schema_version`` (details
written by older code), and a bare array of items is read too (a free-form
list is still worth a table on the job page). The dashboard's error table
and count and the failure-code metric use it; it never reads an array out
of anything else. The metric also skips details declared ``free-form``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

FREE_FORM = "free-form"


def envelope_errors(details: Any, error_format: str | None) -> list[Any] | None:
    """The ``errors`` of a normalized envelope, or ``None`` when ``details``
    is not one (the envelope rule of the module docstring).

    Args:
        details: a stored ``error_details`` value (any JSON value or ``None``).
        error_format: the job's or failure's ``error_format`` (``None`` for
            rows from before it was recorded).
    """
    if error_format == FREE_FORM or not isinstance(details, dict):
        return None
    version = details.get("schema_version")
    items = details.get("errors")
    if type(version) is not int or version != 1 or not isinstance(items, list):
        return None
    return items


def is_envelope_sql(
    details: sa.ColumnElement[Any], error_format: sa.ColumnElement[Any], dialect: str
) -> sa.ColumnElement[bool]:
    """The envelope rule as an SQL condition on the ``error_details`` and
    ``error_format`` columns, for ``dialect`` ``"postgresql"`` (``jsonb``) or
    ``"sqlite"`` (JSON1): true exactly when :func:`envelope_errors` would not
    return ``None`` for the row's values."""
    not_free_form = sa.or_(error_format.is_(None), error_format != FREE_FORM)
    if dialect == "postgresql":
        document = sa.type_coerce(details, JSONB)
        return sa.and_(
            not_free_form,
            sa.func.jsonb_typeof(document["schema_version"]) == "number",
            document["schema_version"].astext == "1",
            sa.func.jsonb_typeof(document["errors"]) == "array",
        )
    # SQLite evaluates AND in no promised order, hence json_type() before
    # json_extract(), which raises on a value that is not an object.
    return sa.and_(
        not_free_form,
        sa.func.json_type(details, "$.schema_version") == "integer",
        sa.func.json_extract(details, "$.schema_version") == 1,
        sa.func.json_type(details, "$.errors") == "array",
    )


def listed_errors(details: Any) -> list[Any]:
    """The error items to show or count from ``details`` (the listing rule of
    the module docstring): an object's ``errors`` array, or ``details``
    itself when it is an array; ``[]`` otherwise. Items are returned as
    stored (they may not all be objects)."""
    items = details.get("errors") if isinstance(details, dict) else details
    return items if isinstance(items, list) else []
