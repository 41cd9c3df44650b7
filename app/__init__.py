"""Clinical Intelligence job-failure console: the application factory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, has_request_context, redirect, request, url_for
from sqlalchemy.engine import make_url
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from app import config as settings
from app.config import ROOT, load_config


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the Flask application.

    Args:
        config: settings that override the environment (tests pass
            ``SQLALCHEMY_DATABASE_URI``, ``TESTING`` ...). See
            :func:`app.config.load_config` for the keys.

    Returns:
        A configured app with the API, dashboard, export and operations
        blueprints, request ids, request logs and metrics, the problem+json
        error handlers, the CLI commands and the failure recorder
        registered. No database query runs here (the production schema
        check runs in gunicorn's ``on_starting`` hook or ``flask check-ready``).

    Raises:
        app.config.ConfigError: the environment's configuration is unusable
            (e.g. ``APP_ENV=production`` without ``SECRET_KEY``).
    """
    app = Flask(
        __name__,
        instance_path=str(settings.INSTANCE_DIR),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    # A doubled slash is an empty path segment (a worker's URL joining gone
    # wrong, e.g. an empty job id), not a typo to redirect: unmerged, it
    # matches no rule and is a 404 problem, not an HTML 308 to another route
    # or a 405 from the route it merged into (a trial).
    app.url_map.merge_slashes = False
    # Before anything builds the Jinja environment, which reads its options once.
    app.jinja_options = {**app.jinja_options, "finalize": _jinja_finalize()}
    app.config.update(load_config(config))
    if app.config["PROXY_HOPS"]:
        hops = app.config["PROXY_HOPS"]
        proxied = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
        app.wsgi_app = proxied  # type: ignore[method-assign]
    register_extensions(app)
    register_observability(app)
    register_request_input(app)
    register_blueprints(app)
    register_access_control(app)
    register_error_handlers(app)
    register_template_filters(app)
    register_cli(app)
    return app


def register_extensions(app: Flask) -> None:
    """Bind SQLAlchemy and Flask-Migrate; create the services."""
    from app import models  # noqa: F401  (tables must be known to Migrate)
    from app.extensions import db, migrate, release_session
    from app.registry import init_services

    _create_instance_folder_for(app.config["SQLALCHEMY_DATABASE_URI"])
    db.init_app(app)
    app.teardown_appcontext(release_session)
    # render_as_batch: SQLite cannot ALTER most things; batch mode copies the table.
    from app.models.processing_job import is_schema_compared

    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True,
                     include_object=is_schema_compared)
    _read_in_autocommit_while_serving_reads(app)
    init_services(app)


#: Request methods whose database reads run in PostgreSQL's autocommit
#: (RFC 9110's safe methods that this app serves).
READ_METHODS = frozenset({"GET", "HEAD"})


def _serving_a_read() -> bool:
    """Whether a ``GET`` or ``HEAD`` request is being served right now."""
    return has_request_context() and request.method in READ_METHODS


def _read_in_autocommit_while_serving_reads(app: Flask) -> None:
    """Tell the app's engines which transactions only read (:data:`app.extensions.READS_ONLY_WHEN`).

    Asked at each transaction's begin, not once per request: a request's
    server-side session is read before any ``before_request`` hook runs.
    """
    from app.extensions import READS_ONLY_WHEN, db

    with app.app_context():
        for engine in db.engines.values():
            engine.update_execution_options(**{READS_ONLY_WHEN: _serving_a_read})


def _create_instance_folder_for(database_uri: str) -> None:
    """Create ``instance/`` if the SQLite database lives in it.

    A fresh clone has no ``instance/`` for the default database to go in.
    Any other folder is left alone: a database elsewhere (PostgreSQL, or the
    tests' SQLite files in temporary folders) must not leave an empty
    ``instance/`` behind in the work tree.
    """
    url = make_url(database_uri)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    folder = Path(url.database).resolve().parent
    instance = settings.INSTANCE_DIR.resolve()
    if folder == instance or instance in folder.parents:
        folder.mkdir(parents=True, exist_ok=True)


def register_observability(app: Flask) -> None:
    """Request ids, one JSON-ready log line per request, Prometheus ``/metrics``."""
    from app.observability import init_observability

    init_observability(app)


def register_request_input(app: Flask) -> None:
    """Refuse NUL in any query parameter or form field with a 400 (app/request_input.py)."""
    from app.request_input import init_request_input

    init_request_input(app)


def register_blueprints(app: Flask) -> None:
    """Mount the API (``/api/v1``), sign-in, the dashboard (``/jobs``), exports
    (``/exports``), administration (``/admin``), the probes (``/healthz``, ``/readyz``) and
    the problem-type pages (``/problems/``)."""
    from app.admin import bp as admin_bp
    from app.api import bp as api_bp
    from app.auth import bp as auth_bp
    from app.dashboard import bp as dashboard_bp
    from app.exports import bp as exports_bp
    from app.operations import bp as operations_bp
    from app.problems import bp as problems_bp

    app.register_blueprint(api_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(exports_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(operations_bp)
    app.register_blueprint(problems_bp)

    from app.auth.guards import requires
    from app.models.access import Permission

    @app.get("/")
    @requires(Permission.VIEW_JOBS)
    def index() -> Response:
        # Operators land on the failure groups (the distinct problems);
        # the job list stays at /jobs.
        return redirect(url_for("dashboard.list_groups"))


def register_access_control(app: Flask) -> None:
    """Sign-in, worker tokens, CSRF, rate limits, security headers (app/auth)."""
    from app.api import bp as api_bp
    from app.auth.guards import init_access_control

    # The API authenticates with bearer tokens, not cookies: no CSRF there.
    init_access_control(app, csrf_exempt=(api_bp,))


def register_error_handlers(app: Flask) -> None:
    """Install the problem+json / HTML error handlers."""
    from app.web.errors import register_error_handlers as register

    register(app)


def _jinja_finalize() -> Any:
    """What every ``{{ ... }}`` of a template goes through first
    (:func:`app.dashboard.jinja_filters.shown`)."""
    from app.dashboard.jinja_filters import shown

    return shown


def register_template_filters(app: Flask) -> None:
    """Register the Jinja formatting filters (one place for all of them)."""
    from app.dashboard.jinja_filters import register_filters

    register_filters(app)


def register_cli(app: Flask) -> None:
    """Add the ``flask worker``, ``users``, ``tokens`` and ``jobs`` groups and ``flask check-ready``."""
    from app.auth.cli import tokens_cli, users_cli
    from app.cli import register_commands
    from app.operations.cli import register_operations_commands

    register_commands(app)
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
    register_operations_commands(app)
