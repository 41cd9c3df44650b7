"""Errors raised by the failure-group services (each carries its HTTP status)."""

from __future__ import annotations

from app.errors import ServiceError


class GroupNotFoundError(ServiceError):
    """No failure group has the given id (HTTP 404)."""

    status = 404
    title = "Failure group not found"
    slug = "group-not-found"

    def __init__(self, group_id: object) -> None:
        super().__init__(f"No failure group has id {group_id}.")
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
