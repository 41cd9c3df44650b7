"""Jinja filters for the dashboard; templates format nothing themselves.

Every filter returns plain text or plain values: Jinja's autoescaping escapes
them when they are rendered, so worker-supplied text never becomes markup.
The one exception, :func:`sparkline`, returns SVG it built itself from
numbers, with its one text part escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Flask
from markupsafe import Markup, escape

from app.dashboard.links import retry_href
from app.models import JobStatus
from app.services.error_details import listed_errors
from app.services.error_guidance import guidance_for_codes
from app.services.processing_jobs.filter_sql import ID_PREFIX_MIN_DIGITS
from app.timestamps import rfc3339

#: How a status is written on the pages (the API and the exports keep the
#: canonical :class:`~app.models.JobStatus` strings). Those not listed are
#: written as they are.
STATUS_LABELS = {JobStatus.VALIDATION_FAILED: "Validation failed"}

#: What the time of a job in the list says, per status: which timestamp
#: and its verb ("failed 3 min ago").
STATUS_MOMENTS = {
    JobStatus.PENDING: ("created_at", "created"),
    JobStatus.PROCESSING: ("started_at", "started"),
    JobStatus.COMPLETED: ("completed_at", "completed"),
    JobStatus.FAILED: ("completed_at", "failed"),
    JobStatus.VALIDATION_FAILED: ("completed_at", "failed"),
}

#: Columns of the validation-error table, in order.
ERROR_ITEM_COLUMNS = ("severity", "code", "pointer", "message", "entity")
#: Most rows of one error table (the normalized envelope keeps at most 200
#: items; free-form lists may be longer).
ERROR_TABLE_MAX_ROWS = 200
#: Most bytes (UTF-8) of pretty-printed JSON put in a page, per document.
JSON_PREVIEW_MAX_BYTES = 64 * 1024

#: Names of the code systems the worker uses (FHIR ``Coding.system`` URIs).
CODE_SYSTEM_NAMES = {
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://loinc.org": "LOINC",
    "http://snomed.info/sct": "SNOMED CT",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://unitsofmeasure.org": "UCUM",
    "http://www.ama-assn.org/go/cpt": "CPT",
}


def format_utc(value: datetime | None) -> str:
    """``2026-11-29 21:16:35 UTC`` for an aware datetime, ``—`` for ``None``."""
    if value is None:
        return "—"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def status_label(status: JobStatus | str) -> str:
    """A status in words for the pages: ``Validation_Failed`` -> ``Validation failed``
    (:data:`STATUS_LABELS`); an unknown string is returned as it is."""
    try:
        return STATUS_LABELS.get(JobStatus(status), str(JobStatus(status)))
    except ValueError:
        return str(status)


def time_ago(value: datetime | None, now: datetime) -> str:
    """How long before ``now`` ``value`` was, in a few characters.

    ``45 s ago``, ``3 min ago``, ``5 h ago`` (under 48 hours), ``12 days
    ago`` (under 60 days), else the UTC date (``on 2026-01-31``); ``just
    now`` for less than a second (or a little in the future: clocks
    differ); ``—`` for ``None``. Rounded down. For ``<time>`` elements
    whose ``title`` holds the exact UTC time (:func:`format_utc`).
    """
    if value is None:
        return "—"
    seconds = (now - value).total_seconds()
    if seconds < 1:
        return "just now" if seconds > -60 else "in the future"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 60 * 86_400:
        return f"{int(seconds // 86_400)} days ago"
    return "on " + value.astimezone(timezone.utc).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class JobMoment:
    """The time a job's row shows: ``verb`` (``failed``) and ``at`` (aware UTC, or ``None``)."""

    verb: str
    at: datetime | None


def job_moment(job: Any) -> JobMoment:
    """When the job did what its status says (:data:`STATUS_MOMENTS`): a failed
    job's ``completed_at`` ("failed"), a pending one's ``created_at``...;
    ``created_at`` when that timestamp is missing."""
    try:
        attribute, verb = STATUS_MOMENTS[JobStatus(job.status)]
    except ValueError:
        attribute, verb = "created_at", "created"
    at = getattr(job, attribute)
    if at is None:
        return JobMoment("created", job.created_at)
    return JobMoment(verb, at)


def format_rfc3339(value: datetime | None) -> str:
    """RFC 3339 UTC to the second (``2026-11-29T21:16:35Z``), ``""`` for ``None``.

    For form fields and ``<time datetime>``: what the query string accepts.
    """
    if value is None:
        return ""
    return rfc3339(value.astimezone(timezone.utc).replace(microsecond=0)) or ""


#: Unicode bidi controls (UAX #9: embeddings, overrides, isolates, marks).
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def pretty_json(value: Any) -> str:
    """JSON with sorted keys and 2-space indent (same text on every backend).

    Bidi controls in strings are written as ``\\uXXXX`` escapes (the same
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


def file_size(value: int) -> str:
    """Bytes for people: ``512 B``, ``64 KiB``, ``1.5 MiB`` (IEC binary prefixes)."""
    if value < 1024:
        return f"{value} B"
    if value < 1024 * 1024:
        return f"{value / 1024:.0f} KiB"
    return f"{value / (1024 * 1024):.1f} MiB"


def error_items(details: Any) -> list[dict[str, str]]:
    """The validation errors in ``details``, as table rows.

    Reads the items :func:`~app.services.error_details.listed_errors` finds
    (an envelope's ``errors``, or a bare list), keeping the objects. Returns at most :data:`ERROR_TABLE_MAX_ROWS`
    items, each reduced to :data:`ERROR_ITEM_COLUMNS` as strings (missing
    ones empty; ``entity`` as :func:`format_entity`), plus ``unmapped_path``
    (the FHIRPath ``ctx.expression``/``ctx.location`` of an item whose pointer
    is ``""``) and ``whole_document`` (``"yes"`` when the pointer is ``""``);
    an empty list when the details hold no such list.
    """
    rows = []
    for item in listed_errors(details)[:ERROR_TABLE_MAX_ROWS]:
        if isinstance(item, dict):
            row = {col: _cell(item.get(col)) for col in ERROR_ITEM_COLUMNS}
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


#: How the job page names each kind of history event (HistoryKind values).
HISTORY_LABELS = {
    "created": "Created",
    "started": "Started processing",
    "failed": "Failed",
    "requeued": "Requeued",
    "acknowledged": "Acknowledged",
    "completed": "Completed",
}


def history_label(kind: str) -> str:
    """The job page's words for a history event's kind (``requeued`` -> ``Requeued``)."""
    return HISTORY_LABELS.get(kind, kind)


def isolate_text(value: str | None) -> str:
    """``value`` between U+2068 FIRST STRONG ISOLATE and U+2069 POP DIRECTIONAL
    ISOLATE (Unicode UAX #9), ``""`` for ``None`` or ``""``.

    For worker text where markup cannot go (a page ``<title>``, a ``title``
    attribute, a flash message): like ``<bdi>`` in the page, it keeps a
    right-to-left override inside the value from reordering the text around it.
    """
    if not value:
        return ""
    return f"\u2068{value}\u2069"


def truncate_text(value: str | None, length: int = 160) -> str:
    """Cut ``value`` to ``length`` characters, ending with ``…`` when cut."""
    if not value:
        return ""
    return value if len(value) <= length else value[: length - 1] + "…"


def code_system_name(uri: str | None) -> str:
    """Short name of a code system URI (``ICD-10-CM``), or the URI itself."""
    if not uri:
        return ""
    return CODE_SYSTEM_NAMES.get(uri, uri)


def format_span(page: int | None, start: int, end: int) -> str:
    """A source span: ``p. 2 · 120–135`` (characters, end exclusive); no page, no ``p.``."""
    chars = f"{start}–{end}"
    return f"p. {page} · {chars}" if page is not None else chars


def percent(value: float | None) -> str:
    """A 0-1 confidence as a whole percentage: ``0.874`` -> ``87 %``."""
    if value is None:
        return "—"
    return f"{value * 100:.0f} %"


def plural(word: str, count: int, many: str | None = None) -> str:
    """``word`` for a count of 1, else ``many`` (default ``word + "s"``):
    ``{{ "job" | plural(count) }}`` is ``job`` or ``jobs``. English only."""
    if count == 1:
        return word
    return many if many is not None else word + "s"


def thousands(value: int) -> str:
    """An integer with thousands separators: ``12345`` -> ``12,345``."""
    return f"{value:,}"


#: Size of a sparkline in SVG user units (CSS may scale it; the viewBox keeps the shape).
SPARKLINE_WIDTH = 120
SPARKLINE_HEIGHT = 24
#: Height of the mark drawn for an empty bucket, so a gap reads as "none", not "missing".
SPARKLINE_ZERO_HEIGHT = 1.0


def sparkline(counts: Sequence[int], label: str = "Occurrences", unit: str = "hour") -> Markup:
    """A small bar chart of ``counts`` (oldest first) as inline SVG, drawn on the server.

    No JavaScript and no inline style (the Content-Security-Policy allows
    neither): geometry is in attributes, colours come from the stylesheet
    (``svg.sparkline rect.bar``, ``rect.zero``, ``rect.peak``). Bars are
    scaled to the largest count; an empty bucket gets a 1-unit mark.

    The text equivalent is the ``<title>`` (the accessible name of an
    ``<svg role="img">``, and a tooltip): ``"Occurrences per hour, last 24
    hours: 31 in total, at most 9 in one hour, 2 in the last hour"``.

    Args:
        counts: one non-negative integer per bucket, oldest first (may be empty).
        label: what is counted, capitalised (``"Occurrences"``); worker text
            is never put here, but it is escaped like the rest.
        unit: the bucket size in words (``"hour"``, ``"day"``).

    Returns:
        ``Markup`` (every text part escaped): ``<svg class="sparkline" ...>``.

    Raises:
        ValueError: a count is negative.
    """
    values = [int(c) for c in counts]
    if any(v < 0 for v in values):
        raise ValueError("sparkline counts must not be negative")
    total, peak, n = sum(values), max(values, default=0), len(values)
    if n:
        title = (
            f"{label} per {unit}, last {n:,} {plural(unit, n)}: {total:,} in total, "
            f"at most {peak:,} in one {unit}, {values[-1]:,} in the last {unit}"
        )
    else:
        title = f"{label} per {unit}: no data"
    slot = SPARKLINE_WIDTH / n if n else SPARKLINE_WIDTH
    bar_width = max(slot * 0.8, 0.5)
    rects = []
    for position, value in enumerate(values):
        height = SPARKLINE_HEIGHT * value / peak if value else SPARKLINE_ZERO_HEIGHT
        css = "bar peak" if value and value == peak else ("bar" if value else "bar zero")
        rects.append(
            f'<rect class="{css}" x="{position * slot + (slot - bar_width) / 2:.2f}" '
            f'y="{SPARKLINE_HEIGHT - height:.2f}" width="{bar_width:.2f}" height="{height:.2f}"/>'
        )
    return Markup(
        f'<svg class="sparkline" role="img" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {SPARKLINE_WIDTH} {SPARKLINE_HEIGHT}" width="{SPARKLINE_WIDTH}" '
        f'height="{SPARKLINE_HEIGHT}" preserveAspectRatio="none" focusable="false">'
        f"<title>{escape(title)}</title>{''.join(rects)}</svg>"
    )


_SHORT_ID = re.compile(r"(?=[^0-9]*[0-9])[0-9a-fA-F-]+\Z")


def short_id_prefix(text: str | None) -> bool:
    """True when a search term looks like the start of a job id that is too short to be read as one.

    Hex digits and hyphens with at least one decimal digit, and 4 up to
    ``ID_PREFIX_MIN_DIGITS - 1`` hex digits (``eda1c0a``): the search then
    matched it as text only, and the empty list says why.
    """
    if not text or not _SHORT_ID.match(text):
        return False
    return 4 <= len(text.replace("-", "")) < ID_PREFIX_MIN_DIGITS


def register_filters(app: Flask) -> None:
    """Register every dashboard filter on ``app``."""
    app.add_template_filter(format_utc, "utc")
    app.add_template_filter(status_label, "status_label")
    app.add_template_filter(time_ago, "ago")
    app.add_template_filter(job_moment, "moment")
    app.add_template_filter(format_rfc3339, "rfc3339")
    app.add_template_filter(pretty_json, "pretty_json")
    app.add_template_filter(json_preview, "json_preview")
    app.add_template_filter(file_size, "file_size")
    app.add_template_filter(error_items, "error_items")
    app.add_template_filter(error_count, "error_count")
    app.add_template_filter(format_entity, "entity")
    app.add_template_filter(truncate_text, "truncate_text")
    app.add_template_filter(isolate_text, "isolate")
    app.add_template_filter(code_system_name, "code_system_name")
    app.add_template_filter(format_span, "span")
    app.add_template_filter(percent, "percent")
    app.add_template_filter(thousands, "thousands")
    app.add_template_filter(plural, "plural")
    app.add_template_filter(validator_name, "validator_name")
    app.add_template_filter(text_details, "text_details")
    app.add_template_filter(what_to_do, "what_to_do")
    app.add_template_filter(history_label, "history_label")
    app.add_template_filter(sparkline, "sparkline")
    app.add_template_filter(retry_href, "retry_href")
    app.add_template_filter(short_id_prefix, "short_id_prefix")
