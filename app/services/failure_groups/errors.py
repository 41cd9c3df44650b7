"""Errors raised by the failure-group services (each carries its HTTP status)."""

from __future__ import annotations

from app.errors import ServiceError


class GroupNotFoundError(ServiceError):
    """No failure group has the given id (HTTP 404)."""

    status = 404
    title = "Failure group not found"
    slug = "group-not-found"

    def __init__(self, group_id: object) -> None:
        # The id may be whatever a URL held (control characters, "1e400"):
        # it is named only when it is a group id's shape, never echoed raw.
        text = str(group_id)
        if text.isascii() and text.isdecimal() and len(text) <= 10 and 0 < int(text) < 2**31:
            detail = f"No failure group has id {text}."
        else:
            # One range for every other id: "-1", "0" and 2**31 were told
            # "whole numbers" or only "no group has id" (two trials).
            detail = f"No failure group has this id: group ids are whole numbers from 1 to {2**31 - 1:,}."
        super().__init__(detail)
        self.group_id = group_id


class InvalidGroupTransitionError(ServiceError):
    """The group's state does not allow the requested change (HTTP 409)."""

    status = 409
    title = "State change not allowed"
    slug = "invalid-group-transition"

    def __init__(self, group_id: int, current: str, action: str) -> None:
        super().__init__(f"Failure group {group_id} is {current}; it cannot be {action}.")
        self.group_id = group_id
        self.current = current
        self.action = action

    @property
    def members(self) -> dict[str, str]:
        """``current_state`` and ``refused_action`` (``resolved``, ``ignored``, ``reopened``)."""
        return {"current_state": self.current, "refused_action": self.action}


class GroupChangedMeanwhileError(InvalidGroupTransitionError):
    """The group's state changed after the page the actor acted from showed
    it (HTTP 409): another operator, or a regression, got there first. The
    form carries the time of the state it showed (``state_changed_at``),
    as a job action carries its failure's, so a stale page cannot replace
    a colleague's decision unseen (optimistic concurrency, as RFC 9110's
    ``If-Unmodified-Since`` for a page). ``changed_at``, ``changed_by`` and
    ``reason`` (``ignored``, ``regressed``...) say what happened, from the
    group's timeline (``None`` when it has no event yet)."""

    def __init__(self, group_id: int, current: str, action: str, changed_at: object,
                 changed_by: str | None, reason: str | None) -> None:
        super().__init__(group_id, current, action)
        self.changed_at, self.changed_by, self.reason = changed_at, changed_by, reason
