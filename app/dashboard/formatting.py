"""Text the pages show for times, numbers, sizes, statuses and code systems.

Jinja filters (registered in :mod:`app.dashboard.jinja_filters`) and
helpers the views use: each returns plain text that Jinja's autoescaping
escapes when rendered, but :func:`show_bidi_controls`, which returns markup
built from escaped text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from markupsafe import Markup, escape

from app.models import JobStatus
from app.models.types import iso_date
from app.text_marks import NAMED_CHARACTERS, marked
from app.timestamps import format_utc, rfc3339

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


def clock_utc(value: datetime) -> str:
    """``21:16 UTC``: the time of day of an aware datetime, to the minute
    (e.g. when the summary was counted; the date and seconds go on hover)."""
    return value.astimezone(timezone.utc).strftime("%H:%M UTC")


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
    return "on " + iso_date(value.astimezone(timezone.utc))


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


def file_size(value: int) -> str:
    """Bytes for people: ``512 B``, ``64 KiB``, ``1.5 MiB`` (IEC binary prefixes)."""
    if value < 1024:
        return f"{value} B"
    if value < 1024 * 1024:
        return f"{value / 1024:.0f} KiB"
    return f"{value / (1024 * 1024):.1f} MiB"


#: How the job page names each kind of history event (HistoryKind values).
HISTORY_LABELS = {
    "created": "Created",
    "started": "Started processing",
    "failed": "Failed",
    "requeued": "Requeued",
    "acknowledged": "Acknowledged",
    "unacknowledged": "Acknowledgement taken back",
    "completed": "Completed",
}


def history_label(kind: str) -> str:
    """The job page's words for a history event's kind (``requeued`` -> ``Requeued``)."""
    return HISTORY_LABELS.get(kind, kind)


def show_bidi_controls(value: str | None) -> Markup:
    """``value`` escaped, each directional formatting character (and each
    of :data:`~app.text_marks.INVISIBLE_CHARACTERS`, and a joiner beside ASCII:
    :func:`app.text_marks.marked`) replaced by a visible mark (``[RLO]``,
    ``[ZWSP]``, its code point and name on hover): a message then shows in
    the order it was sent, and the mark says something was hidden in it.
    ``""`` for ``None``. Returns markup built here from escaped text only."""
    text = str(escape(value or ""))

    def mark(character: str, short: str) -> str:
        name = f"U+{ord(character):04X} {NAMED_CHARACTERS[character][1]}"
        return f'<span class="bidi-control" title="{name}">{short}</span>'

    return Markup(marked(text, mark))


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


#: How a failure-group event's facts (the ``details`` keys
#: :func:`~app.services.failure_groups.lifecycle.change_state` is given) are
#: named on the group's timeline; keys not listed are shown as they are.
EVENT_FACT_LABELS = {
    "in_version": "in version",
    "resolved_in_version": "resolved in version",
    "worker_version": "by worker",
    "job_id": "job",
    "mode": "",
    "until": "until",
    "occurrences": "after more occurrences:",
    "via": "via",
}

#: An ignore's mode in words (:class:`~app.models.failure_group.IgnoreMode`).
IGNORE_MODE_WORDS = {"forever": "forever", "until_date": "until a date", "until_occurrences": "until more occurrences"}


#: Each worker-name fact of a group event and the version fact it belongs to.
_WORKER_OF = {"of_worker": "in_version", "resolved_in_worker": "resolved_in_version", "worker_name": "worker_version"}
_WORKER_OF_VERSION = {version: name for name, version in _WORKER_OF.items()}


def event_facts(details: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """A group event's facts as ``(key, words, value)`` in stored order, an
    ignore's mode first, for the timeline: ``{"in_version": "9.9.9", "via": "dashboard"}`` gives
    ``[("in_version", "in version", "9.9.9"), ("via", "via", "dashboard")]``.
    The words may be empty (an ignore's mode says itself); values are text.
    An ignore's ``until`` (stored as ISO 8601) is written as the group's
    state line writes it (``2027-01-15 00:00:00 UTC``). A version and the
    worker it is of are one fact: ``in version 1.6.0 of extractor``, ``by
    worker extractor 1.0.0``; a name ``""`` is a worker that sends none."""
    facts = []
    details = details or {}
    # An ignore's condition is one fact, "until 3 more occurrences", not
    # "until more occurrences; after more occurrences: 3" (a trial).
    condition = _ignore_condition_words(details)
    # The ignore's mode first, whatever the stored order (PostgreSQL's JSONB
    # keeps keys by length: "via" came before "mode"): "ignored; until 3 more
    # occurrences; via dashboard", the condition beside the state it qualifies.
    for key, value in sorted(details.items(), key=lambda item: item[0] != "mode"):
        if key in _WORKER_OF or (condition and key in ("until", "occurrences")):
            continue  # told with its version, or in the ignore's condition
        words = EVENT_FACT_LABELS.get(key, key)
        shown = (condition or IGNORE_MODE_WORDS.get(value, value)) if key == "mode" else value
        if key == "until" and isinstance(value, str):
            shown = _stored_time_words(value)
        name = details.get(_WORKER_OF_VERSION.get(key, ""))
        if name is not None and key == "worker_version":
            words, shown = ("by worker", f"{name} {value}") if name else ("by a worker without a name, version", value)
        elif name is not None:
            shown = f"{value} of {name if name else 'the workers that send no name'}"
        facts.append((key, words, str(shown)))
    return facts


def _stored_time_words(value: str) -> str:
    """An ISO 8601 time the service stored, as the state line writes it; any other text as it is."""
    try:
        return format_utc(datetime.fromisoformat(value))
    except ValueError:
        return value  # not one the service wrote: shown as stored


def _ignore_condition_words(details: dict[str, Any]) -> str | None:
    """An ignore event's mode with its date or count in words ("until
    2027-01-15 00:00:00 UTC", "until 3 more occurrences"), or ``None`` when
    the details hold no such pair."""
    mode, until, count = details.get("mode"), details.get("until"), details.get("occurrences")
    if mode == "until_date" and isinstance(until, str):
        return f"until {_stored_time_words(until)}"
    if mode == "until_occurrences" and isinstance(count, int) and not isinstance(count, bool):
        return f"until {count:,} more {plural('occurrence', count)}"
    return None


def thousands(value: int) -> str:
    """An integer with thousands separators: ``12345`` -> ``12,345``."""
    return f"{value:,}"
