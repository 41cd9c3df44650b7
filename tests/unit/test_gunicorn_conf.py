"""gunicorn.conf.py's GIL switch interval: read from the environment, set in each worker."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest


CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


@pytest.fixture
def settings(monkeypatch, tmp_path):
    """Load gunicorn.conf.py as gunicorn does (a Python file run as a module)
    with ``GUNICORN_SWITCH_INTERVAL_US`` set; Python's interval is restored."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # else the file makes a temporary folder
    before = sys.getswitchinterval()

    def load(value: str | None) -> dict:
        if value is None:
            monkeypatch.delenv("GUNICORN_SWITCH_INTERVAL_US", raising=False)
        else:
            monkeypatch.setenv("GUNICORN_SWITCH_INTERVAL_US", value)
        return runpy.run_path(str(CONF))

    yield load
    sys.setswitchinterval(before)


def test_a_worker_switches_threads_every_millisecond_by_default(settings):
    conf = settings(None)
    sys.setswitchinterval(0.005)
    conf["post_fork"](None, None)
    assert sys.getswitchinterval() == pytest.approx(0.001)


def test_the_interval_is_read_in_microseconds(settings):
    conf = settings("250")
    conf["post_fork"](None, None)
    assert sys.getswitchinterval() == pytest.approx(0.00025)


def test_zero_keeps_pythons_interval(settings):
    conf = settings("0")
    sys.setswitchinterval(0.005)
    conf["post_fork"](None, None)
    assert sys.getswitchinterval() == pytest.approx(0.005)


@pytest.mark.parametrize("value", ["-1", "1ms", "1e3"])
def test_a_bad_value_stops_the_start_naming_the_variable(settings, value):
    # A SystemExit with the line alone: gunicorn wraps any other exception in a traceback.
    with pytest.raises(SystemExit, match=r"^Error: environment variable GUNICORN_SWITCH_INTERVAL_US must be"):
        settings(value)
