"""Cells of the exports: CSV cells in Python and, for PostgreSQL's ``COPY``, their SQL twins.

Every cell of worker- or client-supplied text goes through
:func:`neutralise_formula` (OWASP "CSV Injection"); values the server makes
(job ids, statuses, timestamps, numbers) are written as they are. The SQL
twins must give the same bytes as the Python cells
(tests/integration/test_exports_copy.py).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.models.types import UTCDateTime
from app.services.json_values import with_controls_escaped
from app.text_marks import bidi_escaped
from app.timestamps import rfc3339

#: A formula's first characters (OWASP "CSV Injection"), and their
#: full-width forms (U+FF1D, U+FF0B, U+FF0D, U+FF20), which a spreadsheet
#: set up for CJK input may take for them (a trial).
_FORMULA_STARTS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
#: First characters that make a cell suspect: a formula's, and the line
#: breaks and tab a spreadsheet may drop before one.
_FORMULA_PREFIXES = (*_FORMULA_STARTS, "\t", "\r", "\n")
#: What a spreadsheet may trim before a formula on import (a trial: " =1+1"
#: and "\n=1+1" were written as they are), with the no-break and the
#: ideographic space (a trial: "\u3000=1" was written as it is, beside the
#: full-width signs a CJK input method gives).
_LEADING_BLANKS = " \t\r\n\u00a0\u3000"
#: Blanks that start a cell without making it suspect on their own.
_SPACES = (" ", "\u00a0", "\u3000")

#: Code points of :data:`_FORMULA_PREFIXES`: ``ascii()`` of the first
#: character is the cheapest test PostgreSQL has (no substring is built).
_FORMULA_CODE_POINTS = tuple(ord(prefix) for prefix in _FORMULA_PREFIXES)
_FORMULA_START_CODE_POINTS = tuple(ord(start) for start in _FORMULA_STARTS)

_UTC_DATETIME = UTCDateTime()


def file_escaped(text: str) -> str:
    """``text`` as the export files write worker text: each acting control
    character (:func:`~app.services.json_values.with_controls_escaped`: a
    terminal that prints the file would act on ESC or CSI) and each bidi
    control (:func:`~app.text_marks.bidi_escaped`: it would reverse the text
    after it) as its ``\\uXXXX`` escape. In NDJSON those are JSON's own
    escapes, so the strings read back the same."""
    return bidi_escaped(with_controls_escaped(text))


def neutralise_formula(cell: str) -> str:
    """Prefix ``'`` to a cell a spreadsheet would evaluate as a formula.

    Cells starting with ``=``, ``+``, ``-``, ``@``, tab, carriage return or
    line feed get the prefix (OWASP "CSV Injection"), and so do cells whose
    first character after leading spaces (U+0020, no-break U+00A0,
    ideographic U+3000) and line breaks is one of the first four or their
    full-width forms (a spreadsheet may trim those on import); others are
    returned unchanged.
    """
    if cell.startswith(_FORMULA_PREFIXES) or (
        cell.startswith(_SPACES) and cell.lstrip(_LEADING_BLANKS).startswith(_FORMULA_STARTS)
    ):
        return "'" + cell
    return cell


def same(value: Any) -> Any:
    """The value as it is (a cell or value that needs no conversion)."""
    return value


def text_cell(value: Any) -> str:
    """A CSV cell of worker-supplied text: ``None`` empty, JSON values as JSON
    text (keys sorted), :func:`file_escaped`, then :func:`neutralise_formula`."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return neutralise_formula(file_escaped(value))


def json_cell(value: Any) -> str:
    """A CSV cell holding a JSON value as JSON text (keys sorted), strings
    included (``"text"`` with its quotes, so it reads apart from ``text``
    or a number); ``None`` (no value) empty; then as :func:`text_cell` (the
    escapes of DEL and the C1 controls, which ``json`` leaves as they are,
    are JSON's own: the cell reads back as the same value)."""
    if value is None:
        return ""
    return neutralise_formula(file_escaped(json.dumps(value, ensure_ascii=False, sort_keys=True)))


def empty_if_none(value: Any) -> Any:
    """A CSV cell of a server-made value: ``None`` empty, anything else as it is."""
    return "" if value is None else value


def canonical_uuid(job_id: str) -> str:
    """The canonical (dashed) text of a job id read as text: PostgreSQL's
    uuid text is already canonical; SQLite's is bare hex."""
    return job_id if len(job_id) == 36 else str(uuid.UUID(job_id))


def canonical_job_url(url: str) -> str:
    """A ``job_url`` read from the database with the job id canonical:
    the prefix, then the id as :func:`canonical_uuid` writes it."""
    prefix, job_id = url[:-32], url[-32:]
    if "-" in job_id:  # PostgreSQL: already canonical (36 characters)
        return url
    return prefix + str(uuid.UUID(job_id))


def utc_rfc3339(value: datetime | None) -> str | None:
    """RFC 3339 UTC text of a timestamp read without :class:`UTCDateTime`
    (naive on SQLite), normalised as ``UTCDateTime`` would; ``None`` stays ``None``."""
    return rfc3339(_UTC_DATETIME.process_result_value(value, None))  # type: ignore[arg-type]


def sql_text_cell(value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """PostgreSQL twin of :func:`text_cell` for a text column: NULL for NULL
    or ``''`` (so COPY writes an empty unquoted field, as ``csv`` does), else
    :func:`neutralise_formula` as a CASE on the first character's code point.
    The control characters are escaped afterwards, on the rows ``COPY``
    sends (``streaming._join_copy_rows``): in SQL that cost a third of the
    export's speed. The order does not matter: no control character that is
    escaped starts a formula, and none of them makes ``COPY`` or ``csv``
    quote a field."""
    prefixed = sa.literal("'", sa.Text) + value
    return sa.case(
        (sa.func.ascii(value).in_(_FORMULA_CODE_POINTS), prefixed),
        # Trimmed only for a cell that starts with a space: most do not.
        (sa.and_(sa.func.ascii(value).in_([ord(space) for space in _SPACES]),
                 sa.func.ascii(sa.func.ltrim(value, sa.literal(_LEADING_BLANKS, sa.Text)))
                 .in_(_FORMULA_START_CODE_POINTS)), prefixed),
        else_=sa.func.nullif(value, ""),
    )


def sql_rfc3339(value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """PostgreSQL twin of :func:`app.timestamps.rfc3339` (``isoformat`` of the
    UTC time: microseconds only when not zero, then ``Z``); NULL stays NULL."""
    text = sa.func.to_char(sa.func.timezone("UTC", value), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"', type_=sa.Text)
    return sa.func.replace(text, ".000000Z", "Z", type_=sa.Text)
