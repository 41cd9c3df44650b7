"""Operator dashboard, blueprint ``dashboard``: server-rendered Jinja pages."""

from flask import Blueprint

bp = Blueprint("dashboard", __name__)

from app.dashboard import actions, bulk_views, group_action_views, groups_views, views  # noqa: E402,F401
