"""The helpers that start and stop the test servers' processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.live_server import stop, wait_for_exit, wait_until_ready


def _python(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_stop_ends_the_process_and_closes_its_pipes():
    process = _python("import sys, time; print('started', flush=True); time.sleep(600)")
    assert process.stdout.readline() == "started\n"
    stop(process)
    assert process.returncode is not None
    assert process.stdout.closed and process.stderr.closed  # no ResourceWarning later


def test_a_server_that_exits_while_starting_fails_the_test_with_its_output():
    process = _python("import sys; sys.exit('no such setting')")
    with pytest.raises(pytest.fail.Exception, match="exited: no such setting"):
        wait_until_ready(lambda: False, process, "server")
    assert process.stdout.closed and process.stderr.closed


def test_a_server_that_never_answers_is_stopped_at_the_deadline():
    process = _python("import time; time.sleep(600)")
    with pytest.raises(pytest.fail.Exception, match="did not answer within 0 s"):
        wait_until_ready(lambda: False, process, "server", deadline_s=0)
    assert process.returncode is not None and process.stderr.closed


def test_wait_for_exit_returns_the_output_of_a_process_that_ends_by_itself():
    assert wait_for_exit(_python("print('done')")) == ("done\n", "")
