"""Sign-in and sign-out pages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.auth import bp
from app.auth.guards import limiter, requires, typed_user_name_key
from app.models.access import USERNAME_MAX_LENGTH, Permission
from app.services import access


class LoginForm(FlaskForm):
    """User name and password, with Flask-WTF's CSRF token."""

    username = StringField("User name", validators=[DataRequired(), Length(max=USERNAME_MAX_LENGTH)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would help phishing."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("dashboard.list_jobs")


@bp.route("/login", methods=["GET", "POST"])
# Per address (guessing many names) and per user name (one name from many
# addresses); counted in RATELIMIT_STORAGE_URI, shared by every process.
@limiter.limit("10 per minute", methods=["POST"], error_message="Too many sign-in attempts; wait a minute.")
@limiter.limit(
    "10 per minute",
    key_func=typed_user_name_key,
    methods=["POST"],
    error_message="Too many sign-in attempts; wait a minute.",
)
def login() -> str | Response | tuple[str, int]:
    """Show the sign-in form; on POST check the credentials (exact user name)."""
    form = LoginForm()
    if form.validate_on_submit():
        user = access.authenticate(form.username.data, form.password.data)
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong user name or password.", "error")
        return render_template("auth/login.html", form=form), 401
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@requires(Permission.VIEW_JOBS)
def logout() -> Response:
    """Sign out (POST with CSRF token, so no other site can sign you out)."""
    logout_user()
    return redirect(url_for("auth.login"))
