"""Sign-in and sign-out pages."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.auth import bp
from app.auth.guards import limiter, requires
from app.models.access import USERNAME_MAX_LENGTH, Permission
from app.redirects import safe_redirect_target
from app.services import access


class LoginForm(FlaskForm):
    """User name and password, with Flask-WTF's CSRF token."""

    username = StringField("User name", validators=[DataRequired(), Length(max=USERNAME_MAX_LENGTH)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"], error_message="Too many sign-in attempts; wait a minute.")
def login() -> str | Response | tuple[str, int]:
    """Show the sign-in form; on POST check the credentials (exact user name)."""
    form = LoginForm()
    if form.validate_on_submit():
        # Checked before signing in: an open redirect would help phishing.
        target = safe_redirect_target(request.args.get("next"), url_for("dashboard.list_jobs"))
        user = access.authenticate(form.username.data, form.password.data)
        if user is not None:
            login_user(user)
            return redirect(target)
        flash("Wrong user name or password.", "error")
        return render_template("auth/login.html", form=form), 401
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@requires(Permission.VIEW_JOBS)
def logout() -> Response:
    """Sign out (POST with CSRF token, so no other site can sign you out)."""
    logout_user()
    return redirect(url_for("auth.login"))
