"""Behind a reverse proxy: the client's address from ``X-Forwarded-For``
only with ``PROXY_HOPS``, and only the ``TRUSTED_HOSTS`` in the Host header
(a support trial: a forged Host wrote export links to another site)."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models.access import AuditEvent


def _app(database_url, **settings):
    from app import create_app

    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_url, "WTF_CSRF_ENABLED": False,
                       **settings})


def _sign_in_addresses(app, client, headers) -> list[str]:
    client.post("/login", data={"username": "nobody", "password": "guess"}, headers=headers,
                environ_base={"REMOTE_ADDR": "10.0.0.2"})  # the proxy's address
    with app.app_context():
        addresses = [e.filter.get("address") for e in db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "auth.sign_in"))]
        db.session.remove()
        db.engine.dispose()
    return addresses


def test_the_client_address_comes_from_one_trusted_proxy_hop(database_url):
    app = _app(database_url, PROXY_HOPS=1)
    forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}  # the first was sent by the client itself
    assert _sign_in_addresses(app, app.test_client(), forwarded) == ["203.0.113.9"]


def test_without_proxy_hops_a_forwarded_address_is_not_believed(database_url):
    app = _app(database_url)
    assert _sign_in_addresses(app, app.test_client(), {"X-Forwarded-For": "203.0.113.9"}) == ["10.0.0.2"]


def test_a_host_outside_trusted_hosts_is_refused_before_anything_runs(database_url):
    app = _app(database_url, TRUSTED_HOSTS=["console.example.org"])
    client = app.test_client()
    page = client.get("/login", headers={"Host": "evil.example"})
    assert page.status_code == 400 and page.mimetype == "application/problem+json"
    assert "does not answer to the host name" in page.get_json()["detail"]
    assert client.get("/login", headers={"Host": "console.example.org"}).status_code == 200
    refused = client.get("/api/v1/processing-jobs", headers={"Host": "evil.example"})
    assert refused.status_code == 400
    with app.app_context():
        db.engine.dispose()


def test_trusted_hosts_and_proxy_hops_are_read_from_the_environment(monkeypatch):
    from app.config import ConfigError, load_config

    monkeypatch.setenv("TRUSTED_HOSTS", " console.example.org , .internal.example ,")
    monkeypatch.setenv("PROXY_HOPS", "2")
    config = load_config({})
    assert (config["TRUSTED_HOSTS"], config["PROXY_HOPS"]) == (["console.example.org", ".internal.example"], 2)
    monkeypatch.setenv("PROXY_HOPS", "-1")
    try:
        load_config({})
    except ConfigError as error:
        assert "PROXY_HOPS" in str(error)
    else:
        raise AssertionError("a negative PROXY_HOPS was taken")


def test_with_force_https_the_pages_redirect_but_the_probes_and_scrape_answer_plain_http(make_app):
    """An ops trial: with FORCE_HTTPS every plain-HTTP /healthz, /readyz and
    /metrics answered 302 to https:// on the pod's HTTP port, which a kubelet
    probe or a Prometheus scrape then failed on."""
    app = make_app(FORCE_HTTPS=True, SESSION_COOKIE_SECURE=True)
    client = app.test_client()
    page = client.get("/login")  # (a signed-out /jobs goes to /login first, which then goes to https://)
    assert page.status_code == 302 and page.headers["Location"].startswith("https://")
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)
    assert client.get("/metrics").status_code != 302
    # Over HTTPS the page is served, with HSTS.
    secure = client.get("/healthz", base_url="https://localhost")
    assert secure.status_code == 200 and "Strict-Transport-Security" in secure.headers
