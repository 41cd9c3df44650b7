"""The app's service instances, built once from its config and kept on the app.

Services take plain values and know nothing of Flask (cosmicpython); this
module is the seam where the app's config becomes those values. Endpoints,
CLI commands, pipelines and tests reach the shared instances through the
accessors here, so they share one instance and one set of limits.
"""

from __future__ import annotations

from flask import Flask, current_app

from app.services.processing_jobs.failure_recorder import (
    FailureLimits,
    FailureRecorder,
    SQLAlchemyFailureRecorder,
)

_EXTENSION_KEY = "failure_recorder"


def init_services(app: Flask) -> None:
    """Create the app's service instances from its config (in the factory)."""
    app.extensions[_EXTENSION_KEY] = SQLAlchemyFailureRecorder(
        FailureLimits(
            max_message_length=app.config["MAX_ERROR_MESSAGE_LENGTH"],
            max_details_depth=app.config["MAX_JSON_DEPTH"],
        )
    )


def get_failure_recorder(app: Flask | None = None) -> FailureRecorder:
    """Return the failure recorder registered on ``app`` (default: the current app).

    Raises:
        RuntimeError: outside an application context with no ``app`` given,
            or the app was not built by ``create_app``.
    """
    target = app if app is not None else current_app
    try:
        return target.extensions[_EXTENSION_KEY]
    except KeyError:
        raise RuntimeError("the failure recorder is not registered; build the app with create_app()") from None
