"""Configuration from the environment: production requirements and database options."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import create_app
from app.config import DEV_SECRET_KEY, ROOT, ConfigError, engine_options, load_config

PG_URL = "postgresql://clinical:s3cret-pass@db.internal:5432/clinical"
SETTINGS = (
    "APP_ENV",
    "DATABASE_URL",
    "SECRET_KEY",
    "LOG_LEVEL",
    "DB_STATEMENT_TIMEOUT_MS",
    "DB_LOCK_TIMEOUT_MS",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "RETRY_AFTER_S",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)


def test_development_needs_no_settings():
    config = load_config()
    assert config["APP_ENV"] == "development"
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert config["SECRET_KEY"] == DEV_SECRET_KEY
    assert config["SQLALCHEMY_ENGINE_OPTIONS"] == {"pool_pre_ping": True}


def test_production_names_every_missing_setting(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = str(caught.value)
    assert "APP_ENV=production requires" in message
    assert "SECRET_KEY" in message and "DATABASE_URL" in message


def test_production_refuses_the_development_secret_key_without_echoing_values(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("SECRET_KEY", DEV_SECRET_KEY)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert "SECRET_KEY" in str(caught.value)
    assert "DATABASE_URL" not in str(caught.value)
    assert "s3cret-pass" not in str(caught.value)


@pytest.mark.parametrize("key", ["abc", "x" * 31])
def test_production_refuses_a_short_secret_key_without_echoing_it(monkeypatch, key):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(ConfigError, match="at least 32 characters") as caught:
        load_config()
    assert key not in str(caught.value)


def test_production_starts_with_both_settings(monkeypatch):
    monkeypatch.setenv("APP_ENV", "Production")
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    config = load_config()
    assert config["APP_ENV"] == "production"
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")


def test_create_app_fails_at_start_up_in_production_without_settings(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        create_app()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APP_ENV", "staging"),
        ("LOG_LEVEL", "LOUD"),
        ("DB_STATEMENT_TIMEOUT_MS", "soon"),
        ("DB_POOL_SIZE", "0"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_config()


def test_postgresql_gets_statement_and_lock_timeouts_and_a_bounded_pool(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "2500")
    monkeypatch.setenv("DB_LOCK_TIMEOUT_MS", "700")
    monkeypatch.setenv("DB_POOL_SIZE", "3")
    monkeypatch.setenv("DB_MAX_OVERFLOW", "0")
    options = load_config()["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_pre_ping"] is False  # the checkout event looks at the socket instead (no round trip)
    assert options["pool_size"] == 3 and options["max_overflow"] == 0
    assert options["connect_args"]["options"] == "-c statement_timeout=2500 -c lock_timeout=700 -c jit=off -c max_parallel_workers_per_gather=0"
    assert options["connect_args"]["connect_timeout"] == 5


def test_default_timeouts_are_15_s_and_5_s():
    options = engine_options("postgresql+psycopg://h/db", load_config())
    assert options["connect_args"]["options"] == "-c statement_timeout=15000 -c lock_timeout=5000 -c jit=off -c max_parallel_workers_per_gather=0"


def test_engine_options_follow_a_database_named_in_the_overrides():
    config = load_config({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://h/db", "DB_LOCK_TIMEOUT_MS": 50})
    assert "lock_timeout=50" in config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]["options"]


# -- the instance folder -----------------------------------------------------------


@pytest.fixture
def instance_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``INSTANCE_DIR`` moved to a temporary path that does not exist yet."""
    from app import config

    folder = tmp_path / "instance"
    monkeypatch.setattr(config, "INSTANCE_DIR", folder)
    return folder


@pytest.mark.parametrize("where", ["postgresql", "sqlite elsewhere"])
def test_a_database_outside_the_instance_folder_does_not_create_it(instance_dir, tmp_path, where):
    url = PG_URL if where == "postgresql" else f"sqlite:///{tmp_path / 'elsewhere' / 'test.sqlite3'}"
    work_tree_instance = ROOT / "instance"
    was_there = work_tree_instance.exists()
    create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    assert not instance_dir.exists()
    # The tests' own databases are like this one: running them leaves no
    # instance/ in a fresh clone's work tree.
    assert work_tree_instance.exists() == was_there


def test_the_default_database_gets_its_instance_folder(instance_dir):
    app = create_app({"TESTING": True})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance_dir / 'clinical_intelligence.sqlite3'}"
    assert instance_dir.is_dir()


@pytest.mark.parametrize(("url", "says"), [
    ("bogus://db.example/x", "must be a postgresql:// or sqlite:/// URL, not bogus://"),
    ("mysql://user:s3cret@db.example/x", "must be a postgresql:// or sqlite:/// URL, not mysql://"),
    ("not a url at all", "is not a database URL"),
])
def test_a_database_url_the_app_cannot_use_is_refused_in_one_line_without_its_password(monkeypatch, url, says):
    """A trial's ``bogus://`` DATABASE_URL ended in SQLAlchemy's traceback;
    now load_config names the problem, never the URL (it may hold a password)."""
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert says in str(caught.value) and "s3cret" not in str(caught.value)


def test_heroku_style_postgres_urls_get_the_psycopg_driver(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example:5432/jobs")
    assert load_config()["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db.example:5432/jobs"


@pytest.mark.parametrize("uri", ["reddis://:RedisPw123@127.0.0.1:5298/0", "async+redis://:RedisPw123@h/0",
                                 "RedisPw123@127.0.0.1:6379", "redis:/RedisPw123@h"])
def test_a_rate_limit_storage_of_no_known_scheme_is_refused_without_echoing_it(monkeypatch, uri):
    """An ops trial: ``reddis://`` passed the start-up check, then every
    worker crashed at boot printing the URL with its password."""
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", uri)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert "RATELIMIT_STORAGE_URI" in str(caught.value) and "RedisPw123" not in str(caught.value)


@pytest.mark.parametrize("uri", ["redis://:Zx9kQw/Tp4RedisPw123@redis.internal:6379/0",
                                 "memcached://RedisPw123@h:11211", "redis+sentinel://:RedisPw123@"])
def test_a_rate_limit_storage_url_that_cannot_be_used_is_refused_without_echoing_it(monkeypatch, uri):
    """A re-check: a password with an unencoded "/" passed the scheme check,
    then every worker crashed printing part of it; memcached:// needs a
    client library this install does not have."""
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", uri)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert "RATELIMIT_STORAGE_URI cannot be used" in str(caught.value) and "RedisPw123" not in str(caught.value)


@pytest.mark.parametrize("uri", ["memory://", "redis://:pw@127.0.0.1:6379/0", "rediss://h:6380/1",
                                 "redis+sentinel://h:26379/mymaster", "redis://:a%2Fb@h:6379/0"])
def test_the_rate_limit_storages_of_the_limits_library_are_accepted(monkeypatch, uri):
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", uri)
    assert load_config()["RATELIMIT_STORAGE_URI"] == uri
