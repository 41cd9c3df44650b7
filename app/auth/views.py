"""Sign-in and sign-out pages."""

from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.auth import bp
from app.auth.guards import csrf, current_actor, limiter, requires, typed_user_name_key
from app.models.access import USERNAME_MAX_LENGTH, Permission
from app.redirects import safe_redirect_target, started_by_another_site
from app.request_input import has_different_values
from app.services import access
from app.services.access import record_audit_event


def strip_surrounding_space(value: str | None) -> str | None:
    """``value`` without leading or trailing whitespace (``None`` stays).

    A name pasted or typed on a phone often ends in a space; names are
    created without surrounding space (:func:`app.services.access.create_user`
    refuses it), so the stripped name is the one meant.
    """
    return value.strip() if isinstance(value, str) else value


#: Shown on any failed sign-in: the same words whether or not the user exists.
SIGN_IN_FAILED = (
    "Sign-in failed: the user name or the password is wrong, or the account is disabled. "
    "User names and passwords are case-sensitive."
)


class LoginForm(FlaskForm):
    """User name (surrounding whitespace stripped) and password, with Flask-WTF's CSRF token."""

    username = StringField(
        "User name",
        validators=[DataRequired(), Length(max=USERNAME_MAX_LENGTH)],
        filters=[strip_surrounding_space],
    )
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


def _failed(response: Response) -> bool:
    """Flask-Limiter ``deduct_when``: only a failed sign-in (401, or 400 for a
    refused form) counts against the limits, so an operator who signs in
    often is never locked out by their own successes. (Not a 503: its
    counters are what could not be reached.) A form another site's page sent
    without a token counts nothing (``g.not_an_attempt``): it would spend
    the victim's address's budget (a re-check locked an operator out so)."""
    return response.status_code in (400, 401) and not g.get("not_an_attempt")


def _audit_refused_sign_in(_limit: object) -> None:
    """Flask-Limiter ``on_breach``: an attempt refused by a limit (429) is a
    failed sign-in too, audited before the refusal is answered, so guessing
    past the limit leaves its trace (once per request, whichever limit)."""
    if not g.get("sign_in_refusal_audited"):
        g.sign_in_refusal_audited = True
        record_audit_event(
            request.form.get("username", ""),
            "auth.sign_in",
            {"outcome": "failure", "address": request.remote_addr, "reason": "rate limited"},
        )


#: Sign-in page loads (GET) one address may make a minute.
LOGIN_PAGE_LIMIT = "120 per minute"


@bp.route("/login", methods=["GET", "POST"])
# The form checks its own CSRF token (LoginForm is a FlaskForm): CSRFProtect's
# hook refused a token-less or expired form before this view and its limits
# ran, so a script posting without a token was answered 400 for ever, never
# 429, and no attempt was audited (a trial). Here it is a failed attempt.
@csrf.exempt
# The form's CSRF token lives in a new server-side session: each anonymous
# GET writes a session row (until session_cleanup), so one address may not
# write them without end (an SRE trial: 20 GETs, 20 rows).
@limiter.limit(
    # HEAD too: it runs the same view, and wrote a session row each time with no limit (a trial).
    LOGIN_PAGE_LIMIT, methods=["GET", "HEAD"], error_message="Too many requests for the sign-in page; wait a minute."
)
# Per address (guessing many names) and per user name (one name from many
# addresses); counted in RATELIMIT_STORAGE_URI, shared by every process.
@limiter.limit(
    "10 per minute",
    methods=["POST"],
    error_message="Too many sign-in attempts; wait a minute.",
    deduct_when=_failed,
    on_breach=_audit_refused_sign_in,
)
@limiter.limit(
    "10 per minute",
    key_func=typed_user_name_key,
    methods=["POST"],
    error_message="Too many sign-in attempts; wait a minute.",
    deduct_when=_failed,
    on_breach=_audit_refused_sign_in,
)
def login() -> str | Response | tuple[str, int]:
    """Show the sign-in form; on POST check the credentials (the exact user
    name once surrounding whitespace is stripped). A failure is said in the
    form itself (:data:`SIGN_IN_FAILED`, the same whether or not the user
    exists), with the inputs marked invalid.

    Every attempt is audited (``auth.sign_in``), one refused by the rate
    limits too (failed attempts only count against them). A success starts a new
    server-side session under a new id (no session fixation: an id the
    browser had before signing in is never the signed-in one).
    """
    form = LoginForm()
    # WTForms reads a field's first value, so with two (a whitespace copy
    # and a name) the order decided whether it signed in (a trial): refused,
    # as the action forms refuse a field given two values.
    repeated = request.method == "POST" and any(
        has_different_values(request.form.getlist(name)) for name in ("username", "password"))
    if not repeated and form.validate_on_submit():
        # Checked before signing in: an open redirect would help phishing.
        target = safe_redirect_target(request.args.get("next"), url_for("dashboard.list_groups"))
        user = access.authenticate(form.username.data, form.password.data, address=request.remote_addr)
        if user is not None:
            current_app.session_interface.regenerate(session)
            # A new CSRF secret too (Flask-WTF keeps it in the session): a
            # token read from the sign-in page before signing in stayed good
            # for the signed-in session's forms (a trial; OWASP's CSRF sheet).
            session.pop("csrf_token", None)
            login_user(user)
            return redirect(target)
        return render_template("auth/login.html", form=form, error=SIGN_IN_FAILED), 401
    if request.method == "POST":
        # Refused before the credentials were checked (a missing or expired
        # CSRF token, an over-long name or password, a field given twice):
        # still a failed attempt, audited and counted by the limits.
        expired = not repeated and bool(getattr(form, "csrf_token", None) and form.csrf_token.errors)
        if expired and current_user.is_authenticated:
            # An older sign-in tab, or the form sent twice: signed in already.
            g.not_an_attempt = True
            return redirect(safe_redirect_target(request.args.get("next"), url_for("dashboard.list_groups")), 303)
        if expired and started_by_another_site(request.headers, request.host):
            # Forged by another site's page (it cannot read a token): no one's
            # attempt, so neither audited nor counted; the form is shown again.
            g.not_an_attempt = True
        else:
            reason = ("a field given two values" if repeated else
                      "form token missing or invalid (CSRF)" if expired else "form refused")
            record_audit_event(
                request.form.get("username", ""),
                "auth.sign_in",
                {"outcome": "failure", "address": request.remote_addr, "reason": reason},
            )
        if repeated:
            error = "The sign-in form gives a field two different values: use the page's own form."
        elif expired:
            # The page is served again with a new token: typing again signs in.
            error = ("This sign-in form had expired (the page was open a long while, or it came from another "
                     "site): nothing was checked. Sign in again here.")
        else:
            error = ("The sign-in form was not accepted: fill in both the user name and the password "
                     f"(a user name has at most {USERNAME_MAX_LENGTH} characters, a password at most 1,024), "
                     "or reload the page and try again.")
        return render_template("auth/login.html", form=form, error=error), 400
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
@requires(Permission.VIEW_JOBS)
def logout() -> Response:
    """Sign out (POST with CSRF token, so no other site can sign you out).

    The session is emptied, which deletes it on the server: a copy of the
    cookie opens nothing afterwards. Audited (``auth.sign_out``).
    """
    record_audit_event(current_actor(), "auth.sign_out", {"address": request.remote_addr})
    logout_user()
    session.clear()
    # Said on the sign-in page it leads to (a new, anonymous session holds
    # only this message), so a tap on "Sign out" visibly did something.
    flash("Signed out.", "success")
    return redirect(url_for("auth.login"))
