"""The top error codes of a filter: in how many jobs each error-item ``code`` appears.

Part of the /jobs summary (:func:`app.services.dashboard_stats.summarize`).
A job counts once per code, and once more per kind of severity (errors and
warnings apart); ``distinct`` says how many codes there are in all (the
page's "N codes in all", linked to /groups).

* For a filter the rollups cover (no search, no document; an error code
  or a group but not both), exact at any scale from the write-time code
  rollups (:func:`app.services.summary_counts.code_rows`: the codes of all
  jobs, of the jobs having a code, or of the jobs failing on a group) plus
  the partial hours at a range's edges, read from the jobs.
* Otherwise, from the ``errors`` arrays of at most
  :data:`CODES_SCAN_LIMIT` of the newest matching jobs
  (:mod:`app.services.bounded_scan`), and :attr:`TopCodes.capped` says when
  more match. ``jsonb_array_elements`` on PostgreSQL, ``json_each`` on SQLite.

Read-only: commits nothing.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from app.extensions import db
from app.models import ProcessingJob
from app.models.processing_job import WIDE_JOB_SQL, wide_job_sql
from app.services.bounded_scan import bounded_scan
from app.services.processing_jobs.job_filter import JobFilter, TimeField
from app.services.summary_counts import code_rows, read_rows, rollup_covers

#: Most jobs :func:`top_error_codes` reads for a filter with a search, a
#: document, or both a group and an error code (it unpacks each one's JSON:
#: 23-32 ms for 5,000 at 1,000,000 jobs). 2,000 jobs rank the common codes
#: the same; the page says the table covers the newest N.
CODES_SCAN_LIMIT = 2_000
#: Rows of the top-codes table.
TOP_CODES = 10


@dataclass(frozen=True)
class CodeCount:
    """One row of the top-codes table: ``code`` appears in ``jobs`` jobs.

    Attributes:
        code: the items' ``code``.
        jobs: jobs with at least one item of this code, whatever its severity.
        errors: jobs with an item of this code that is an error: severity
            ``fatal``, ``error`` or none (the rule of the job page's count,
            :class:`app.dashboard.jinja_filters.ErrorCount`).
        warnings: jobs with an item of this code of severity ``warning``.
            A job with both counts in both; ``information`` items in neither.
    """

    code: str
    jobs: int
    errors: int = 0
    warnings: int = 0



@dataclass(frozen=True)
class TopCodes:
    """The most frequent error codes, most jobs first (ties by code, code-point order).

    Attributes:
        codes: at most :data:`TOP_CODES` rows.
        scanned: jobs read (newest first) by a bounded scan; 0 when the
            codes come from the rollups.
        capped: the scan limit was reached; older jobs were not read.
        distinct: how many codes the jobs read have in all (``len(codes)``
            or more).
    """

    codes: list[CodeCount]
    scanned: int
    capped: bool
    distinct: int = 0

    @property
    def more(self) -> int:
        """Codes found but not in :attr:`codes` (the page shows "N codes in all" when there are any)."""
        return max(self.distinct - len(self.codes), 0)



def top_error_codes(
    job_filter: JobFilter, *, limit: int = TOP_CODES, scan_limit: int = CODES_SCAN_LIMIT
) -> TopCodes:
    """The error codes found in the most jobs of the filter.

    A code counts once per job however many of its items carry it, and once
    more per severity kind in ``errors`` and ``warnings``
    (:class:`CodeCount`). Only string ``code`` values of object items of an
    ``errors`` array count (the error-details v1 envelope; free-form details
    that happen to have that shape count too). ``distinct`` counts every
    code found, shown or not. Exact from the rollups for a filter
    :func:`~app.services.summary_counts.rollup_covers`; for the others,
    reads at most ``scan_limit`` of the newest matching jobs. Ignores the
    cursor.
    """
    # code -> (jobs, errors, warnings): the rollup's rows as they come (each
    # code once), then the edges' few codes added or taken away.
    totals: dict[str, tuple[int, int, int]] = {}
    scanned = 0
    capped = False
    if rollup_covers(job_filter):
        rollup, edges = code_rows(job_filter)
        totals = {code: (jobs, errors, warnings) for code, jobs, errors, warnings in rollup}
        for edge, sign in edges:  # half an hour at most each
            _add(totals, _scanned_code_rows(edge, None)[0], sign)
        keyed = job_filter.error_code is not None or job_filter.group_id is not None
        reads = _wide_reads(job_filter, edges) if keyed else []
        wide = _wide_jobs(reads) if reads else None
        if wide is not None:
            with _custom_plans():
                for wide_filter, sign in reads:
                    rows = _scanned_code_rows(wide_filter, None, wide)[0]
                    # The filter's own code is counted for every job, wide ones
                    # too, by the code rollup: only the others come from here.
                    _add(totals, [row for row in rows if row[0] != job_filter.error_code], sign)
    else:
        rows, scanned, capped = _scanned_code_rows(job_filter, scan_limit)
        totals = {code: (jobs, errors, warnings) for code, jobs, errors, warnings in rows}
    # Most jobs first, ties in code-point order (Python's str order). A
    # code whose jobs were all taken away (a partial hour's) is not one.
    # (The first few of 2,000 codes: no sort of all of them.)
    counted = [(-total[0], code) for code, total in totals.items() if total[0]]
    return TopCodes(
        codes=[CodeCount(code, -minus_jobs, *totals[code][1:]) for minus_jobs, code in heapq.nsmallest(limit, counted)],
        scanned=scanned,
        capped=capped,
        distinct=len(counted),
    )


def _add(totals: dict[str, tuple[int, int, int]], rows: list[tuple[str, int, int, int]], sign: int) -> None:
    for code, jobs, errors, warnings in rows:
        was = totals.get(code, (0, 0, 0))
        totals[code] = (was[0] + sign * jobs, was[1] + sign * errors, was[2] + sign * warnings)


#: Most wide jobs whose ids :func:`_wide_jobs` passes to the reads as a list.
WIDE_IDS_LISTED = 2_000


def _wide_jobs(reads: list[tuple[JobFilter, int]]) -> Any | None:
    """The condition "the job is one of the wide jobs the reads' ranges can
    hold" (:data:`~app.models.processing_job.WIDE_JOB_SQL`; when they are
    ranges of creation times, those created from the earliest start to the
    latest end of them all, else all), or ``None`` when there is none: one
    read of their partial index first. All the reads, not the filter's
    range alone: in one snapshot an edge taken away (the rest of a whole
    hour, day or week) lies outside the range, and its wide jobs must be
    added back there (a trial's find).

    Up to :data:`WIDE_IDS_LISTED` of them, the condition is their ids as a
    list, so each read starts from them whatever its plan. The same
    condition as a subquery beside a big group's let PostgreSQL walk the
    group's 516,570 current jobs and test each one's details: 4.5 s at
    1,000,000 jobs, where the wide jobs were none, and still 200 ms in a
    ``MATERIALIZED`` CTE once the statement was prepared with a generic plan
    (docs/benchmarks.md). With more wide jobs than that, the CTE it is."""
    dialect = db.session.get_bind().dialect.name
    jobs = ProcessingJob.__table__
    # The predicate in the index's own words, on the bare column (one table read).
    wide = sa.select(jobs.c.id).where(sa.text("(" + WIDE_JOB_SQL[dialect] + ")"))
    if reads[0][0].time_field is TimeField.CREATED:
        starts = [read.time_from for read, _ in reads]
        ends = [read.time_to for read, _ in reads]
        if None not in starts:
            wide = wide.where(jobs.c.created_at >= min(starts))  # type: ignore[type-var]
        if None not in ends:
            wide = wide.where(jobs.c.created_at < max(ends))  # type: ignore[type-var]
    ids = [row[0] for row in read_rows(wide.limit(WIDE_IDS_LISTED + 1))]
    if not ids:
        return None
    if len(ids) <= WIDE_IDS_LISTED:
        # Wide still, when read: outside one snapshot a job may have turned
        # narrow since (then the pair rollup counts it).
        still_wide = sa.text("(" + wide_job_sql(dialect, "processing_jobs.error_details") + ")")
        return sa.and_(ProcessingJob.id.in_(ids), still_wide)
    found = wide.cte("wide_jobs").prefix_with("MATERIALIZED")
    return ProcessingJob.id.in_(sa.select(found.c.id))


@contextmanager
def _custom_plans() -> Iterator[None]:
    """On PostgreSQL, plan each statement inside for its own values
    (``plan_cache_mode = force_custom_plan``), then back to the default.

    The wide jobs' reads are few and rare, and their good plan depends on
    the values: start from the listed ids. Once psycopg had prepared one
    (its fifth run), PostgreSQL's generic plan walked the range's whole
    ``created_at`` index instead, testing each job against the list: 0.7 to
    2 s a read with 100,000 jobs in range (a trial's find)."""
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        yield
        return
    connection.exec_driver_sql("SET plan_cache_mode = force_custom_plan")
    try:
        yield
    finally:
        # In an aborted transaction this fails, and the rollback undoes the SET anyway.
        with suppress(sa.exc.DBAPIError):
            connection.exec_driver_sql("RESET plan_cache_mode")


def _wide_reads(job_filter: JobFilter, edges: list[tuple[JobFilter, int]]) -> list[tuple[JobFilter, int]]:
    """Where the codes of the wide jobs (left out of the pair rollups, migration
    0028) are read, with their signs: the rollups' parts of the range,
    which are the whole range less its edges (the edges read every job,
    wide ones too).

    For a code X and the narrow jobs N, the wide ones W, the parts P and
    edges E of a range R (P + E = R, signs included): the pair rollup gives
    N(P), the edges N(E) + W(E), and these reads W(R) - W(E), so the total
    is N(R) + W(R)."""
    return [(job_filter, 1), *((edge, -sign) for edge, sign in edges)]


def _scanned_code_rows(
    job_filter: JobFilter, scan_limit: int | None, *extra: Any
) -> tuple[list[tuple[str, int, int, int]], int, bool]:
    """``(code, jobs, errors, warnings)`` of every code in the newest
    ``scan_limit`` jobs of the filter (all for ``None``) that also meet the
    ``extra`` conditions, read from their details; how many jobs were read;
    and whether more match. One statement."""
    dialect = db.session.get_bind().dialect.name
    details = (
        sa.type_coerce(ProcessingJob.error_details, JSONB) if dialect == "postgresql" else ProcessingJob.error_details
    )
    scan = bounded_scan(
        job_filter,
        [ProcessingJob.id.label("job_id"), details.label("details")],
        scan_limit,
        *extra,
    )
    newest = scan.jobs
    if dialect == "postgresql":
        errors = newest.c.details.op("->")("errors")
        # jsonb_array_elements() raises on anything but an array.
        array = sa.case(
            (sa.func.jsonb_typeof(errors) == "array", errors), else_=sa.cast(sa.literal("[]"), JSONB)
        )
        item = sa.func.jsonb_array_elements(array).table_valued("value").lateral("item")
        code = item.c.value.op("->>")("code")
        severity: Any = item.c.value.op("->>")("severity")
        is_code = sa.func.jsonb_typeof(item.c.value.op("->")("code")) == "string"
        source = newest.join(item, sa.true())
    else:
        item = sa.func.json_each(newest.c.details, "$.errors").table_valued("value", "type").alias("item")
        # Nested CASE: json_type() raises on an item that is not JSON text,
        # and only CASE fixes the order of evaluation in SQLite.
        code = sa.case(
            (item.c.type == "object",
             sa.case((sa.func.json_type(item.c.value, "$.code") == "text",
                      sa.func.json_extract(item.c.value, "$.code")))),
        )
        is_code = sa.and_(sa.func.json_type(newest.c.details, "$.errors") == "array", code.is_not(None))
        severity = sa.case((item.c.type == "object", sa.func.json_extract(item.c.value, "$.severity")))
        source = newest.join(item, sa.true())
    # One row per job, code and kind of severity: each counts a job once.
    kind = sa.case((severity == "warning", "warning"), (severity == "information", "information"), else_="error")
    triples = (
        sa.select(newest.c.job_id, code.label("code"), kind.label("kind"))
        .select_from(source)
        .where(is_code)
        .distinct()
        .subquery("triples")
    )
    jobs = sa.func.count(sa.distinct(triples.c.job_id)).label("jobs")
    errors = sa.func.count(sa.case((triples.c.kind == "error", 1))).label("errors")
    warnings = sa.func.count(sa.case((triples.c.kind == "warning", 1))).label("warnings")
    per_code = sa.select(triples.c.code, jobs, errors, warnings).group_by(triples.c.code).subquery("per_code")
    # One row at least, for the count, when the jobs read carry no code.
    one = sa.select(sa.literal(1).label("one")).subquery("one")
    rows = read_rows(
        sa.select(scan.seen.label("seen"), per_code.c.code, per_code.c.jobs, per_code.c.errors, per_code.c.warnings)
        .select_from(one.outerjoin(per_code, sa.true()))
    )
    seen = rows[0].seen
    codes = [(row.code, row.jobs, row.errors, row.warnings) for row in rows if row.code is not None]
    return codes, scan.scanned(seen), scan.capped(seen)
