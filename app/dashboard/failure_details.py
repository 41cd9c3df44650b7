"""How the job page shows a failure's details: the validation-error table,
its counts, the validator's name, what to do, and the details as JSON or text.

Jinja filters (registered in :mod:`app.dashboard.jinja_filters`). Every one
returns plain text or plain values: Jinja's autoescaping escapes them when
they are rendered, so worker-supplied text never becomes markup.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

from app.text_marks import MARKED_CHARACTERS
from app.services.error_details import listed_errors
from app.services.error_guidance import guidance_for_codes
from app.services.processing_jobs.filter_sql import failure_holds_text, id_prefix_range

#: Columns of the validation-error table, in order.
ERROR_ITEM_COLUMNS = ("severity", "code", "pointer", "message", "entity")
#: Most rows of one error table (the normalized envelope keeps at most 200
#: items; free-form lists may be longer).
ERROR_TABLE_MAX_ROWS = 200
#: Most bytes (UTF-8) of pretty-printed JSON put in a page, per document.
JSON_PREVIEW_MAX_BYTES = 64 * 1024


#: Unicode bidi controls (UAX #9: embeddings, overrides, isolates, marks),
#: and the invisible characters: what the pages mark (formatting.MARKED_CHARACTERS).
_BIDI_CONTROLS = re.compile("[" + "".join(MARKED_CHARACTERS) + "]")


def pretty_json(value: Any) -> str:
    """JSON with sorted keys and 2-space indent (same text on every backend).

    Bidi controls and invisible characters in strings are written as ``\\uXXXX`` escapes (the same
    JSON value): lines of JSON cannot be isolated from one another, and an
    override inside one string would reorder the rest of its line.

    Returns plain text; Jinja autoescaping escapes it when rendered.
    """
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return _BIDI_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@dataclass(frozen=True)
class JsonPreview:
    """Pretty-printed JSON, cut to a size a page can hold.

    Attributes:
        text: :func:`pretty_json` text, whole or cut at a line end (then
            ending with a line ``…``).
        truncated: whether it was cut.
        shown_bytes: UTF-8 bytes of the text kept (without the marker).
        total_bytes: UTF-8 bytes of the whole text.
    """

    text: str
    truncated: bool
    shown_bytes: int
    total_bytes: int


def json_preview(value: Any, max_bytes: int = JSON_PREVIEW_MAX_BYTES) -> JsonPreview:
    """:func:`pretty_json` of ``value`` cut to at most ``max_bytes`` UTF-8 bytes.

    Cut at the last line end that fits (never inside a character), so a
    megabyte of details does not make a page slow to render.
    """
    text = pretty_json(value)
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return JsonPreview(text, False, len(encoded), len(encoded))
    head = encoded[:max_bytes].decode("utf-8", errors="ignore")
    if "\n" in head:
        head = head[: head.rindex("\n")]
    return JsonPreview(head + "\n…", True, len(head.encode("utf-8")), len(encoded))


def error_items(details: Any) -> list[dict[str, Any]]:
    """The validation errors in ``details``, as table rows.

    Reads the items :func:`~app.services.error_details.listed_errors` finds
    (an envelope's ``errors``, or a bare list), keeping the objects. Returns at most :data:`ERROR_TABLE_MAX_ROWS`
    items, each reduced to :data:`ERROR_ITEM_COLUMNS` as strings (missing
    ones empty; ``entity`` as :func:`format_entity`), plus ``unmapped_path``
    (the FHIRPath ``ctx.expression``/``ctx.location`` of an item whose pointer
    is ``""``) and ``whole_document`` (``"yes"`` when the pointer is ``""``),
    and ``position`` (the item's 0-based index in the list, as an int: the
    key of its failure group, :func:`~app.services.failure_groups.group_details.item_groups`);
    an empty list when the details hold no such list.
    """
    rows = []
    for position, item in enumerate(listed_errors(details)[:ERROR_TABLE_MAX_ROWS]):
        if isinstance(item, dict):
            row: dict[str, Any] = {col: _cell(item.get(col)) for col in ERROR_ITEM_COLUMNS}
            row["position"] = position
            row["entity"] = format_entity(item.get("entity"))
            # Where, when the pointer is the whole document: a FHIRPath the
            # FHIR adapter could not turn into a pointer is kept in ctx and
            # shown in its place ("" when there is none).
            ctx = item.get("ctx")
            path = ctx.get("expression") or ctx.get("location") if isinstance(ctx, dict) else None
            row["unmapped_path"] = _cell(path) if item.get("pointer") == "" and isinstance(path, str) else ""
            row["whole_document"] = "yes" if item.get("pointer") == "" else ""
            rows.append(row)
    return rows


@dataclass(frozen=True)
class ErrorCount:
    """How many errors a failure has and how many the table lists.

    Attributes:
        total: the envelope's ``error_count`` (what the worker reported), or
            the number of items of a bare list.
        shown: rows in :func:`error_items`.
        more: ``total - shown`` when items were dropped (the envelope's
            ``truncated``, or the table's row cap), else 0.
        warnings: items at hand whose ``severity`` is ``"warning"`` (counted
            in ``total``; a worker's own message often counts errors only).
        notes: items at hand whose ``severity`` is ``"information"``.
    """

    total: int
    shown: int
    more: int
    warnings: int = 0
    notes: int = 0

    @property
    def errors(self) -> int:
        """The items that are errors: every item but the warnings and the
        information notes (``fatal``, ``error``, no severity, and items
        dropped by truncation, whose severity is unknown). The number a
        worker's message counts ("2 errors"), as the reference worker's does."""
        return self.total - self.warnings - self.notes


def error_count(details: Any) -> ErrorCount | None:
    """The :class:`ErrorCount` of ``details``; ``None`` when they hold no error list."""
    items = [item for item in listed_errors(details) if isinstance(item, dict)]
    if not items and not (isinstance(details, dict) and "error_count" in details):
        return None
    shown = min(len(items), ERROR_TABLE_MAX_ROWS)
    total = len(items)
    reported = details.get("error_count") if isinstance(details, dict) else None
    if type(reported) is int and reported >= total:
        total = reported
    warnings = sum(1 for item in items if item.get("severity") == "warning")
    notes = sum(1 for item in items if item.get("severity") == "information")
    return ErrorCount(total=total, shown=shown, more=total - shown, warnings=warnings, notes=notes)


#: Longest part of a code or pointer, or word of an entity, kept whole
#: (longer ones break anywhere).
LONGEST_UNBROKEN = 32


def break_after(text: Any, separators: str) -> Markup:
    """``text`` escaped, with a ``<wbr>`` after each of ``separators``: a
    JSON Pointer (``"/"``) or an error code (``"."``) then wraps only
    between its parts ("/entities/0/" | "code"), never inside a word, and
    copies unchanged (``<wbr>`` adds no character). Returns markup built
    here from escaped text only."""
    parts = re.split(f"(?<=[{re.escape(separators)}])", str(text))
    return Markup("<wbr>".join(_kept_whole_or_anywhere(part) for part in parts if part))


def break_long_words(text: Any) -> Markup:
    """``text`` escaped, each word (the parts between spaces) kept whole
    unless it is longer than :data:`LONGEST_UNBROKEN`: such a word is put in
    ``<span class="anywhere">``, as :func:`break_after` does with an
    over-long part of a code.

    For an entity (:func:`format_entity`, "Condition · R07.9X"), which wraps
    at its spaces and keeps its words whole (its cell is not
    ``overflow-wrap: anywhere``, static/css/app.css): the API accepts an
    ``entity.code`` without a space, and a 64-character one kept the error
    table wider than the page (the job page was 937 px wide at 768). Text without such a word comes back as it was (escaped);
    the markup adds no character (it copies unchanged). Returns markup
    built here from escaped text only.
    """
    return Markup("".join(_kept_whole_or_anywhere(word) for word in re.split(r"(\s+)", str(text)) if word))


def _kept_whole_or_anywhere(part: str) -> str:
    """``part`` escaped; in ``<span class="anywhere">`` when it is longer
    than any real word (a 200-character id), so that it may break anywhere
    rather than widen the page. Only that span gets ``overflow-wrap:
    anywhere`` (static/css/app.css): on a whole table cell it would let the
    column shrink below its longest normal word and break that word too."""
    return f'<span class="anywhere">{escape(part)}</span>' if len(part) > LONGEST_UNBROKEN else str(escape(part))


@dataclass(frozen=True)
class MatchingItems:
    """The error items of one job that an ``error_code`` filter matched:
    the first one's ``severity`` (``"error"`` when the item has none) and
    ``pointer`` (``""`` when none), and how many items in all carry the code."""

    code: str
    severity: str
    pointer: str
    count: int


def matching_items(details: Any, code: str | None) -> MatchingItems | None:
    """The items of ``details`` whose ``code`` is exactly ``code`` (the
    ``error_code`` filter's rule, :class:`~app.services.processing_jobs.job_filter.JobFilter`),
    so a filtered list can say on each row why the job is in it (a warning
    is not in the row's message). ``None`` when ``code`` is ``None`` or no
    item has it (the stored details changed since the query)."""
    if not code:
        return None
    found = [item for item in listed_errors(details) if isinstance(item, dict) and item.get("code") == code]
    if not found:
        return None
    first = found[0]
    severity = first.get("severity") if isinstance(first.get("severity"), str) else "error"
    pointer = first.get("pointer") if isinstance(first.get("pointer"), str) else ""
    return MatchingItems(code=code, severity=severity or "error", pointer=pointer, count=len(found))


def found_by_earlier_failure(job: Any, text: str | None) -> bool:
    """Whether a job listed by the search ``text`` is there only for a
    failure it had before (its history), not for its id, its document or
    its current failure -- so the row can say why it is in the list.

    Mirrors :class:`~app.services.processing_jobs.filter_sql.job_text_matches`
    in Python (case folded with :meth:`str.lower`, PostgreSQL's ``lower()``
    for the letters a search holds). ``job`` has ``id``, ``document_id``,
    ``error_message`` and ``error_details``. ``False`` without ``text``.
    """
    if not text:
        return False
    ids = id_prefix_range(text)
    if ids is not None and ids[0] <= job.id <= ids[1]:
        return False
    if isinstance(job.document_id, str) and text.lower() in job.document_id.lower():
        return False
    return not failure_holds_text(job.error_message, job.error_details, text)


def format_entity(entity: Any) -> str:
    """Where an error lies in the source document, from an item's ``entity``.

    ``{"type": "Condition", "code": "R07.9X", "index": 2, "page": 3, "start": 10, "end": 25}``
    -> ``Condition #2 · R07.9X · p. 3 · 10–25``; parts that are missing are
    left out (the reference worker sends type and code: ``Condition · R07.9X``);
    ``""`` when there is no entity object.
    """
    if not isinstance(entity, dict):
        return ""
    parts = []
    kind, index = entity.get("type"), entity.get("index")
    if kind is not None or index is not None:
        parts.append(" ".join(p for p in (_cell(kind), f"#{_cell(index)}" if index is not None else "") if p))
    if entity.get("code") is not None:
        parts.append(_cell(entity["code"]))
    if entity.get("page") is not None:
        parts.append(f"p. {_cell(entity['page'])}")
    start, end = entity.get("start"), entity.get("end")
    if start is not None or end is not None:
        parts.append(f"{_cell(start) or '?'}–{_cell(end) or '?'}")
    return " · ".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


#: The validator each stored ``error_format`` comes from, as an operator
#: knows it; ``normalized`` (the worker's own items) and ``free-form`` name none.
VALIDATOR_NAMES = {
    "pydantic": "pydantic",
    "jsonschema": "JSON Schema (python-jsonschema)",
    "jsonschema-basic": "JSON Schema (basic output)",
    "jsonschema-detailed": "JSON Schema (detailed output)",
    "jsonschema-verbose": "JSON Schema (verbose output)",
    "fhir-operationoutcome": "FHIR OperationOutcome",
    "ajv": "ajv",
    "zod": "zod",
    "aspnetcore-validation-problem": "ASP.NET Core validation",
}


def validator_name(error_format: str | None) -> str:
    """The validator a failure's details came from (``pydantic``, ``ajv``,
    ``FHIR OperationOutcome`` ...), or ``""`` when the format names none."""
    return VALIDATOR_NAMES.get(error_format or "", "")


#: A string field of free-form details is shown as text of its own when it
#: has a line break or is at least this long (a traceback, a log excerpt).
TEXT_FIELD_MIN_LENGTH = 80


def text_details(details: Any) -> list[tuple[str, str]]:
    """Details that are text, to show as preformatted text rather than JSON:
    a string is ``[("", text)]``; an object without an error list gives its
    long or multi-line string fields, ``[(key, text), ...]``; else ``[]``."""
    if isinstance(details, str):
        return [("", _cut(details))]
    if isinstance(details, dict) and not listed_errors(details):
        return [
            (str(key), _cut(value)) for key, value in details.items()
            if isinstance(value, str) and ("\n" in value or len(value) >= TEXT_FIELD_MIN_LENGTH)
        ]
    return []


def _cut(text: str) -> str:
    # As json_preview: a megabyte of traceback must not make the page slow.
    return text if len(text) <= JSON_PREVIEW_MAX_BYTES else text[:JSON_PREVIEW_MAX_BYTES] + "\n…"


def what_to_do(details: Any) -> list[tuple[str, str]]:
    """``(code, what to do)`` for each distinct error code of ``details``
    that the guidance table covers (app/services/error_guidance)."""
    codes = [item["code"] for item in listed_errors(details) if isinstance(item, dict)
             and isinstance(item.get("code"), str)]
    return guidance_for_codes(codes)
