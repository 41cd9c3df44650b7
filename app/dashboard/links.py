"""Links of the job list that keep the current query string, built on
:mod:`app.web.list_heading` (why they are encoded with ``urlencode``, not
``url_for``'s keyword arguments, is said there)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.errors import InvalidQueryError, parameter_error
from app.models import JobStatus
from app.services.processing_jobs.job_filter import AcknowledgedFilter, JobFilter, TimeField
from app.timestamps import rfc3339
from app.web.list_heading import FilterChip, ListHeading, Pairs, href, query_pairs, with_changes
from app.web.query import filter_pairs

#: Quick time ranges of the filter form: ``range`` value, label, how far
#: back ``from`` goes (:func:`with_quick_range`).
QUICK_RANGES: tuple[tuple[str, str, timedelta], ...] = (
    ("1h", "Last hour", timedelta(hours=1)),
    ("24h", "24 hours", timedelta(hours=24)),
    ("7d", "7 days", timedelta(days=7)),
    ("30d", "30 days", timedelta(days=30)),
)


@dataclass(frozen=True)
class ListLinks:
    """Every link of ``/jobs`` that depends on the current query.

    Attributes:
        next_page: the next page (``cursor`` added), or ``None``.
        statuses: each status -> the list of that status alone.
        codes: each top error code -> the list filtered by it.
        csv, ndjson: the exports of the current filter (one row per error item).
        csv_jobs, ndjson_jobs: the exports with one row per job.
        entities_csv: the entities of the completed jobs matching the filter
            (its statuses aside); ``None`` when the filter is on failures
            only (error code, message text, group): the file would be empty.
        clear: the list with no filter (the defaults).
    """

    next_page: str | None
    statuses: dict[JobStatus, str]
    codes: dict[str, str]
    csv: str
    ndjson: str
    csv_jobs: str
    ndjson_jobs: str
    entities_csv: str | None
    clear: str


def list_links(
    list_path: str,
    csv_path: str,
    ndjson_path: str,
    entities_path: str,
    args: Iterable[tuple[str, str]],
    *,
    next_cursor: str | None,
    codes: Iterable[str],
    offers_entities: bool = True,
) -> ListLinks:
    """Build the :class:`ListLinks` of a list page.

    Args:
        list_path, csv_path, ndjson_path, entities_path: paths of the list and the exports.
        args: the request's query pairs (repeated names repeated).
        next_cursor: the page's ``next_cursor``.
        codes: the error codes of the top-codes table.
        offers_entities: whether the filter can match a completed job (one with entities).
    """
    pairs = query_pairs(args)
    # The exports take the filter alone (not the page size).
    filtered = filter_pairs(pairs)
    return ListLinks(
        next_page=href(list_path, pairs + [("cursor", next_cursor)]) if next_cursor else None,
        statuses={s: href(list_path, with_changes(pairs, {"status": [s.value]})) for s in JobStatus},
        codes={c: href(list_path, with_changes(pairs, {"error_code": [c]})) for c in codes},
        csv=href(csv_path, filtered),
        ndjson=href(ndjson_path, filtered),
        csv_jobs=href(csv_path, filtered + [("rows", "jobs")]),
        ndjson_jobs=href(ndjson_path, filtered + [("rows", "jobs")]),
        # Without the page's status: the entities export has completed jobs'
        # entities only, and refuses a status that leaves Completed out.
        entities_csv=href(entities_path, [(k, v) for k, v in filtered if k != "status"]) if offers_entities else None,
        clear=list_path,
    )


#: Characters of a group's ``#id title`` shown in its filter chip (the rest on hover).
GROUP_CHIP_CHARACTERS = 60


def with_quick_range(pairs: Sequence[tuple[str, str]], now: datetime, *, by_finish_time: bool = False) -> Pairs:
    """``pairs`` with their ``range`` (a quick range's value: ``1h``, ``24h``,
    ``7d``, ``30d``) turned into ``from`` = ``now`` minus that, to the
    second, and no ``to`` (nor ``cursor``): the filter form's quick-range buttons submit it
    with what is typed in the other fields, which are kept. A URL with
    ``range`` stays a bookmark of "the last 7 days", re-read each time.

    ``by_finish_time`` (the caller's choice when every listed status is a
    finished one) sets ``time_field=completed``, else drops it (``created``): "failed
    in the last hour" is about when the job failed, and a job requeued
    yesterday that failed again a minute ago must be in it, at the top;
    pending jobs have no finish time, so a range over them is over their
    creation (whatever the form's "By" field still says).

    Raises:
        InvalidQueryError: ``range`` is not one of the values (names it).
    """
    wanted = [value for name, value in pairs if name == "range" and value != ""]
    ranges = {key: back for key, _label, back in QUICK_RANGES}
    if len(wanted) != 1 or wanted[0] not in ranges:
        allowed = ", ".join(ranges)
        raise InvalidQueryError(f"range must be one of {allowed}, given once.",
                                [parameter_error("range", f"must be one of {allowed}")])
    start = now.replace(microsecond=0) - ranges[wanted[0]]
    # A new range starts a new list: no cursor from the old one.
    changes = {"range": [], "cursor": [], "from": [rfc3339(start) or ""], "to": []}
    # Without time_field the list is over the creation time (its default).
    changes["time_field"] = [TimeField.COMPLETED.value] if by_finish_time else []
    return with_changes(pairs, changes)


def list_heading(
    list_path: str,
    args: Iterable[tuple[str, str]],
    job_filter: JobFilter,
    *,
    default_statuses: Sequence[JobStatus],
    default_acknowledged: AcknowledgedFilter,
    status_words: Mapping[JobStatus, str],
    time_text: Callable[[datetime], str],
    group_title: str | None = None,
) -> ListHeading:
    """The heading and filter chips of a list of jobs.

    The title names the statuses: ``Failed jobs`` for the default (the
    failure statuses), ``All jobs`` for every status (``status=all``, also
    what a filter form with no status ticked sends), ``Completed jobs`` for
    one status, ``Jobs`` for several. Every other filter, and a status
    choice other than the default, is a chip whose ``remove`` link drops it
    (a removed status falls back to the default). Hidden acknowledged jobs
    are a chip even as the default (the groups' counts and the API include
    them), whose ``remove`` link shows them.

    Args:
        list_path: the path of the list.
        args: the request's query pairs.
        job_filter: the filter they make.
        default_statuses, default_acknowledged: what the list shows without
            ``status`` or ``acknowledged``.
        status_words: each status in words (missing ones: the status itself).
        time_text: how a time is written (``2026-11-29 21:16:35 UTC``).
        group_title: the title of the ``group`` filter's group: its chip
            shows it (cut at :data:`GROUP_CHIP_CHARACTERS`, whole on hover)
            instead of only ``#id``.
    """
    pairs = query_pairs(args)

    def without(*names: str) -> str:
        return href(list_path, with_changes(pairs, {name: [] for name in names}))

    def word(status: JobStatus) -> str:
        return status_words.get(status, status.value)

    statuses = job_filter.statuses
    is_default = set(statuses) == set(default_statuses)
    if is_default:
        title = "Failed jobs" if set(default_statuses) == {JobStatus.FAILED, JobStatus.VALIDATION_FAILED} else "Jobs"
    elif not statuses:
        title = "All jobs"
    elif len(statuses) == 1:
        title = f"{word(statuses[0])} jobs"
    else:
        title = "Jobs"
    chips: list[FilterChip] = []
    if not is_default:
        chips.append(FilterChip("status", " or ".join(word(s) for s in statuses) if statuses else "any",
                                without("status")))
    if job_filter.text is not None:
        chips.append(FilterChip("search", job_filter.text, without("q")))
    if job_filter.error_code is not None:
        chips.append(FilterChip("code", job_filter.error_code, without("error_code")))
    if job_filter.document_id is not None:
        chips.append(FilterChip("document", job_filter.document_id, without("document_id")))
    if job_filter.document_prefix is not None:
        chips.append(FilterChip("document starts with", job_filter.document_prefix, without("document_id_prefix")))
    if job_filter.job_type is not None:
        chips.append(FilterChip("type", job_filter.job_type, without("job_type")))
    if job_filter.group_id is not None:
        if group_title:
            whole = f"#{job_filter.group_id} {group_title}"
            cut = whole if len(whole) <= GROUP_CHIP_CHARACTERS else whole[:GROUP_CHIP_CHARACTERS - 1] + "…"
            chips.append(FilterChip("group", whole, without("group"), shown=cut if cut != whole else None))
        else:
            chips.append(FilterChip("group", f"#{job_filter.group_id}", without("group")))
    when = "finished" if job_filter.time_field is TimeField.COMPLETED else "created"
    if job_filter.time_field is TimeField.COMPLETED and job_filter.time_from is None and job_filter.time_to is None:
        chips.append(FilterChip("time", "finished jobs, by finish time", without("time_field")))
    if job_filter.time_from is not None:
        chips.append(FilterChip(f"{when} from", time_text(job_filter.time_from), without("from")))
    if job_filter.time_to is not None:
        chips.append(FilterChip(f"{when} before", time_text(job_filter.time_to), without("to")))
    if job_filter.acknowledged is AcknowledgedFilter.EXCLUDE:
        # Hidden acknowledged jobs are a chip even as the default: the groups'
        # counts and the API include them, so a list without them says so.
        # Its x shows them (dropping the parameter would fall back to hiding).
        show = href(list_path, with_changes(pairs, {"acknowledged": [AcknowledgedFilter.INCLUDE.value]}))
        chips.append(FilterChip("acknowledged", "hidden", show if default_acknowledged is AcknowledgedFilter.EXCLUDE
                                else without("acknowledged")))
    elif job_filter.acknowledged is not default_acknowledged:
        value = {AcknowledgedFilter.INCLUDE: "included", AcknowledgedFilter.ONLY: "only"}[job_filter.acknowledged]
        chips.append(FilterChip("acknowledged", value, without("acknowledged")))
    return ListHeading(title=title, chips=chips)


def retry_href(path: str, args: Iterable[tuple[str, str]], errors: Iterable[Mapping[str, str]]) -> str | None:
    """The page at ``path`` again, without the query parameters a 400 refused.

    ``args`` are the request's query pairs; ``errors`` the problem's field
    errors (``{"field": name, ...}``, RFC 9457 extension member). An
    operator who typed "yesterday" into a filter gets the same page and the
    rest of the filter back, rather than only a link elsewhere. ``None``
    when no refused field is a query parameter (nothing to take out).
    """
    given = list(args)
    # Named among all the pairs: a refused cursor is one too (the pairs kept
    # never hold a cursor, so the link is then the same page's first page).
    refused = {error.get("field") for error in errors} & {name for name, _ in given}
    if not refused:
        return None
    return href(path, with_changes(query_pairs(given), {name: () for name in sorted(refused)}))
