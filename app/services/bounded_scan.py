"""The newest jobs of a filter, read up to a limit, for counts the rollups cannot give.

The summary's aggregates (:mod:`app.services.dashboard_stats`,
:mod:`app.services.top_codes`) read at most a fixed number of a filter's
newest jobs, in the listing's order and through its indexes, when the
write-time rollups do not cover the filter (a search, a document, or a
group with an error code, or the top codes of a group or a code). The page
then says it counted over "the newest N" -- but only when more than N jobs
match: :class:`BoundedScan` reads one job past the limit, in the same
statement, so a filter with exactly N matching jobs (counted in full) is
told from one with more. Read-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from app.models import ProcessingJob
from app.services.processing_jobs.job_filter import JobFilter
from app.services.processing_jobs.pagination import newest_first


@dataclass(frozen=True)
class BoundedScan:
    """One read of a filter's newest jobs, for one aggregate statement.

    Attributes:
        jobs: the newest ``scan_limit`` matching jobs (all of them for
            ``None``), a subquery named ``newest`` with the columns asked for.
        seen: a scalar subquery, how many jobs the read found: at most
            ``scan_limit + 1``, so more than ``scan_limit`` means more match
            than were counted (:meth:`capped`).
        scan_limit: the limit, or ``None``.

    Both read the CTE ``newest_read`` (``MATERIALIZED``: the jobs are read
    once however often the statement refers to them). Use both in the same
    statement.
    """

    jobs: sa.Subquery
    seen: sa.ScalarSelect[int]
    scan_limit: int | None

    def scanned(self, seen: int) -> int:
        """Jobs counted, given the statement's value of :attr:`seen`."""
        return seen if self.scan_limit is None else min(seen, self.scan_limit)

    def capped(self, seen: int) -> bool:
        """Whether more jobs match than were counted (the page says "the newest N only")."""
        return self.scan_limit is not None and seen > self.scan_limit

    def capped_in(self, rows: Sequence[Sequence[Any]]) -> bool:
        """:meth:`capped` for an aggregate's result whose last column is
        :attr:`seen`; no row means no job was read, so none was seen either."""
        return bool(rows) and self.capped(rows[0][-1])


def bounded_scan(
    job_filter: JobFilter, columns: list[Any], scan_limit: int | None, *extra: Any, code_index: bool = True
) -> BoundedScan:
    """The newest ``scan_limit`` jobs of ``job_filter`` (all of them for
    ``None``) that also meet every ``extra`` condition, in listing order,
    with ``columns``, and how many were found up to one past the limit
    (``code_index``: see :meth:`JobFilter.where`).

    One statement reads ``scan_limit + 1`` jobs through the listing's index
    (a ``MATERIALIZED`` CTE); the aggregate reads the first ``scan_limit``
    of them, and :attr:`BoundedScan.seen` counts them all. Before, the
    count, the aggregate and the probe past the limit each read the jobs
    again: three times 7-8 ms for the newest 2,000 of a 516,570-job group.
    """
    order_at = job_filter.time_column.label("scan_at")
    order_id = ProcessingJob.id.label("scan_id")
    read = sa.select(*columns, order_at, order_id).where(*job_filter.where(code_index=code_index), *extra)
    if scan_limit is not None:
        read = read.order_by(*newest_first(job_filter)).limit(scan_limit + 1)
    found = read.cte("newest_read").prefix_with("MATERIALIZED")
    kept = sa.select(*(found.c[column.key] for column in read.selected_columns[: len(columns)]))
    if scan_limit is not None:
        kept = kept.order_by(found.c.scan_at.desc(), found.c.scan_id.desc()).limit(scan_limit)
    seen = sa.select(sa.func.count()).select_from(found).scalar_subquery()
    return BoundedScan(jobs=kept.subquery("newest"), seen=seen, scan_limit=scan_limit)
