"""``make demo`` (scripts/demo) as a new operator sees it: quiet output, the
worker's table aligned, the worker token on its own line, and SIGTERM or
Ctrl-C (SIGINT) ending it with status 0 (so make reports no error).

Runs the real script in a subprocess on a throwaway SQLite file and log
(nothing is written to the work tree), waits for it with deadlines.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from app.config import ROOT
from tests.live_server import START_DEADLINE_S, STOP_DEADLINE_S, free_port, stop

READY = "==> the server is up"


class _Output(list):
    """The demo's output lines, appended by a reader thread as they come."""

    reader: threading.Thread

    def to_the_end(self) -> str:
        """All of it, once the demo's processes have closed the pipe.

        The process having exited is not enough: its last lines ("==> stopped")
        may still be in the pipe, not yet read by the thread.
        """
        self.reader.join(timeout=STOP_DEADLINE_S)
        assert not self.reader.is_alive(), "something of the demo still holds its output open:\n" + "\n".join(self[-20:])
        return "\n".join(self)


def _start(tmp_path: Path, command: list[str] | None = None, port: int | None = None) -> tuple[subprocess.Popen, _Output]:
    env = {
        **os.environ,
        "PY": sys.executable,
        "PORT": str(port or free_port()),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "DEMO_LOG": str(tmp_path / "server.log"),
    }
    env.pop("FLASK_APP", None)
    env.pop("MAKEFLAGS", None)
    # A shell without job control starts a background command with SIGINT
    # ignored, and an ignored signal stays ignored across exec, down to the
    # demo's bash, which cannot trap a signal ignored on entry: Ctrl-C would
    # be tested as a no-op (a fresh-clone check started with '&' failed so).
    # A terminal's Ctrl-C reaches a demo that has it at its default; a
    # handler of Python's is reset to the default at exec.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(
        command or [str(ROOT / "scripts" / "demo")], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    lines = _Output()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    lines.reader = threading.Thread(target=read, daemon=True)
    lines.reader.start()
    deadline = time.monotonic() + START_DEADLINE_S
    pause = 0.1
    while not any(line.startswith(READY) for line in lines):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            pytest.fail("the demo did not come up:\n" + "\n".join(lines[-40:]))
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
    return process, lines


@contextmanager
def _demo(tmp_path: Path, command: list[str] | None = None,
          port: int | None = None) -> Iterator[tuple[subprocess.Popen, _Output]]:
    """The demo started by :func:`_start`; on leaving, whatever is left of
    its process group is killed and its pipe closed (no leaked process or
    file descriptor, whether the test passed or not)."""
    process, lines = _start(tmp_path, command, port)
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        # The server runs in a session of its own (setsid in scripts/demo):
        # when the script was killed rather than stopped, the server is left
        # holding the output pipe, and the reader would never see its end.
        for pid in _pids_of(tmp_path):
            with suppress(ProcessLookupError):  # ended meanwhile
                os.kill(pid, signal.SIGKILL)
        lines.reader.join(timeout=STOP_DEADLINE_S)
        # Closing the pipe while the reader thread is blocked in it would
        # wait forever for the reader's lock: close it only once it is done.
        if process.stdout is not None and not lines.reader.is_alive():
            process.stdout.close()


def _paste_the_api_lines(lines: list[str]) -> subprocess.CompletedProcess:
    """Run the printed ``export`` and ``curl`` lines as an operator pastes them:
    in a fresh shell whose environment has no WORKER_TOKEN."""
    deadline = time.monotonic() + START_DEADLINE_S
    while not any(line.lstrip().startswith("curl ") for line in lines):
        assert time.monotonic() < deadline, "the demo printed no curl line:\n" + "\n".join(lines[-20:])
        time.sleep(0.05)
    exports = [i for i, line in enumerate(lines) if line.lstrip().startswith("export WORKER_TOKEN=")]
    start = exports[0] if exports else None
    assert start is not None, "no export WORKER_TOKEN= line: the curl line would answer 401 as pasted"
    pasted = "\n".join(line.strip() for line in lines[start:start + 2])
    assert pasted.splitlines()[1].startswith("curl "), pasted
    return subprocess.run(
        ["bash", "-c", "set -e\n" + pasted],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=STOP_DEADLINE_S,
    )


def _ends_cleanly(process: subprocess.Popen, sent: signal.Signals) -> int:
    process.send_signal(sent)
    try:
        return process.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"the demo did not stop within {STOP_DEADLINE_S} s of {sent.name}")


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_the_demo_is_quiet_aligned_and_ends_with_status_0(tmp_path, sent):
    before = sorted(p.name for p in ROOT.iterdir())
    port = free_port()
    with _demo(tmp_path, port=port) as (process, lines):
        api_answer = _paste_the_api_lines(lines)
        # A search with quotes and spaces: Werkzeug logs the query decoded.
        searched = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
             f"http://127.0.0.1:{port}/search?q=%22Jane%20Zyxwv%22%20MRN%20QZ-4471"],
            capture_output=True, text=True, timeout=STOP_DEADLINE_S)
        status = _ends_cleanly(process, sent)
        text = lines.to_the_end()
    assert status == 0, text
    assert "==> stopped" in text
    # No migration log, no request log between the worker's lines.
    assert "alembic" not in text and "INFO" not in text
    assert not re.search(r'"(GET|POST) /', text), text
    assert "Serving Flask app" not in text
    # The server did log, to its file, without query strings (the pasted
    # curl line asked ?status=...: a search or a document id could name a patient).
    server_log = (tmp_path / "server.log").read_text()
    assert "POST /api/v1/processing-jobs" in server_log
    assert '"GET /api/v1/processing-jobs?… HTTP/1.1" 200' in server_log
    assert "status=Validation_Failed" not in server_log
    assert searched.stdout == "302" and '"GET /search?… HTTP/1.1" 302' in server_log
    # Words no job id (hex) or log line holds by chance.
    assert "Jane" not in server_log and "Zyxwv" not in server_log and "QZ-" not in server_log
    # The worker's table: one line per document, the job ids in one column.
    rows = [line for line in lines if re.match(r"doc-\d{4}-", line)]
    assert len(rows) == 11
    id_columns = {re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", row).start() for row in rows}
    status_columns = {re.search(r"(Completed|Validation_Failed)", row).start() for row in rows}
    assert len(id_columns) == 1 and len(status_columns) == 1, rows
    # The worker token has a line of its own, and the API lines export it
    # (the curl line names $WORKER_TOKEN, not the token itself).
    token_lines = [line for line in lines if re.fullmatch(r"\s+worker token\s+cit_\S+", line)]
    assert len(token_lines) == 1
    token = token_lines[0].split()[-1]
    shown = [line.strip() for line in lines if token in line]
    assert shown == [token_lines[0].strip(), f"export WORKER_TOKEN={token}"]
    # The printed API lines work as pasted, in a shell without WORKER_TOKEN.
    assert api_answer.returncode == 0, api_answer.stderr
    items = json.loads(api_answer.stdout)["items"]
    assert items and {item["status"] for item in items} == {"Validation_Failed"}
    assert sorted(p.name for p in ROOT.iterdir()) == before  # nothing left in the work tree


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _listeners(port: int) -> list[str]:
    """Command lines of the processes listening on ``port`` (TCP, any
    address; their sockets found in /proc/net/tcp{,6}, then among each
    process's open files)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError), open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                # local address "ADDR:PORT" in hex; state 0A is LISTEN
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(f"socket:[{fields[9]}]")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or not inodes:
            continue
        with suppress(OSError):  # gone meanwhile, or not ours to read
            if any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return found


def _pids_of(tmp_path: Path) -> list[int]:
    """Ids of the processes whose environment names ``tmp_path`` (every
    process the demo started inherits its DATABASE_URL)."""
    found = []
    marker = str(tmp_path).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if marker in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def _processes_of(tmp_path: Path) -> list[str]:
    """Command lines of the processes of :func:`_pids_of`."""
    found = []
    for pid in _pids_of(tmp_path):
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # gone meanwhile
            continue
    return found


@pytest.mark.parametrize(
    ("sent", "to_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, True), (signal.SIGTERM, False)],
    ids=["ctrl-c-to-the-group", "sigterm-to-the-group", "sigterm-to-make-alone"],
)
def test_make_demo_stops_everything_without_an_error_line(tmp_path, sent, to_group):
    """``make demo`` ended as a terminal (SIGINT to the group), a shell's
    ``kill -- -PGID`` or a supervisor / ``timeout`` (SIGTERM to make alone)
    ends it: the script stops the server and exits 0, make prints no error
    line, nothing listens on the port and no process of the demo is left.

    GNU make itself re-raises a fatal signal it received after its recipe has
    ended, so make's own status is 0 or "killed by that signal", never an
    error status of the recipe (``Error 143``)."""
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()  # the install step is done: make must not run pip
    port = free_port()
    command = ["make", "--no-print-directory", "demo", f"VENV={venv}", f"PY={sys.executable}", f"PORT={port}"]
    with _demo(tmp_path, command, port) as (process, lines):
        assert _listening(port)
        if to_group:
            os.killpg(process.pid, sent)
        else:
            process.send_signal(sent)
        try:
            status = process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make demo did not stop within {STOP_DEADLINE_S} s of {sent.name}")
        text = lines.to_the_end()
    deadline = time.monotonic() + STOP_DEADLINE_S
    while (left := _processes_of(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status in (0, -sent), text
    assert "==> stopped" in text
    assert not re.search(r"Error|Interrupt|Terminated|make: \*\*\*", text), text
    assert left == [], left
    # Nothing of the demo listens on its port, whatever its environment. The
    # port itself may be taken again at once by another program (two test
    # runs side by side met that), so the check is on who listens.
    assert not [line for line in _listeners(port) if "flask run" in line and f"--port {port}" in line], _listeners(port)
    assert "\x1b[" not in (tmp_path / "server.log").read_text()  # no colour codes in the log file
