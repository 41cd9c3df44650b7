"""The newest jobs of a filter, read up to a limit, for counts the rollups cannot give.

The summary's aggregates (:mod:`app.services.dashboard_stats`,
:mod:`app.services.top_codes`) read at most a fixed number of a filter's
newest jobs, in the listing's order and through its indexes, when the
write-time rollups do not cover the filter (a search, a document, or a
group with an error code). The page then says it counted over "the newest
N" -- but only when more than N jobs match: :func:`more_than` tells a
filter with exactly N matching jobs (counted in full) from one with more.
Read-only.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import ProcessingJob
from app.services.processing_jobs.job_filter import JobFilter
from app.services.processing_jobs.pagination import newest_first


def newest_jobs(
    job_filter: JobFilter, columns: list[Any], scan_limit: int | None, *extra: Any, code_index: bool = True
) -> sa.Subquery:
    """The newest ``scan_limit`` jobs of ``job_filter`` (all of them for
    ``None``) that also meet every ``extra`` condition, in listing order, as
    a subquery named ``newest`` with ``columns`` (``code_index``: see
    :meth:`JobFilter.where`)."""
    statement = _matching(job_filter, columns, extra, code_index)
    if scan_limit is not None:
        statement = statement.order_by(*newest_first(job_filter)).limit(scan_limit)
    return statement.subquery("newest")


def _matching(job_filter: JobFilter, columns: list[Any], extra: tuple[Any, ...], code_index: bool) -> sa.Select:
    # One statement for the scan and for its probe past the limit, so both read the same jobs.
    return sa.select(*columns).where(*job_filter.where(code_index=code_index), *extra)


def more_than(job_filter: JobFilter, scanned: int, scan_limit: int | None, *extra: Any, code_index: bool = True) -> bool:
    """Whether a scan that read ``scanned`` of the filter's jobs (with the same
    ``extra`` conditions, at most ``scan_limit``) stopped before the last one:
    more than ``scan_limit`` match.

    Only a scan that read the whole limit may have stopped early; it then
    asks for one job past the limit (``OFFSET scan_limit LIMIT 1``, through
    the same index), so a filter matching exactly ``scan_limit`` jobs counts
    as complete and its page does not say "the newest N only".
    """
    if scan_limit is None or scanned < scan_limit:
        return False
    beyond = _matching(job_filter, [ProcessingJob.id], extra, code_index).order_by(
        *newest_first(job_filter)).offset(scan_limit).limit(1)
    return db.session.execute(beyond).first() is not None
