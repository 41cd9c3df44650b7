"""The app with failure grouping switched off, for bench/load.py's grouping rounds.

The same app as ``wsgi:app`` (same settings, middleware, checks, ORM and
transaction), except that the recorder's grouping hook is a no-op: what
recording a failure cost before failure groups. bench/load.py serves it with
gunicorn.conf.py beside the real app and compares the two, so the ratio is
what grouping costs the whole HTTP path. Not part of the product (no setting
turns grouping off); imported only by gunicorn started from bench/load.py.
"""

from __future__ import annotations

from typing import Any

from app.services.processing_jobs import failure_recorder


def _no_grouping(*args: Any, **kwargs: Any) -> list[int]:
    """Stands in for the recorder's grouping hook: groups nothing."""
    return []


# The recorder calls the hook by the name it imported into its module, so
# replacing that name is enough (whatever the hook's parameters are).
failure_recorder.group_recorded_failure = _no_grouping

from wsgi import app  # noqa: E402 (after the hook is replaced)

__all__ = ["app"]
