"""The README's first command opens the course: run as the README writes it, on a free loopback port.

The command line is read from the README's "Two commands" block (not copied here); only `PORT=<free port>` is added,
and the token is chosen here through JUPYTER_TOKEN. The server is polled on 127.0.0.1 until it answers (30 s at
most), the lesson list is read from its contents API and compared with notebooks/ on disk, and the whole process
group (make and JupyterLab) is stopped by its id; nothing may be left running or listening.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 30.0  # the server must answer within this
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 5.0


# Never through a proxy (http_proxy in CI must not see loopback requests); redirects are not followed.
class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def _readme_first_command() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "README: no ```bash block under '## Two commands'"
    first = block.group(1).strip().splitlines()[0].split("#", 1)[0].strip()
    assert first.split()[:2] == ["make", "course"], f"README's first command is not `make course`: {first!r}"
    return shlex.split(first)


def _lessons() -> list[str]:
    return sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(token: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # as from a fresh shell, even when run by `make test`
        env.pop(var, None)
    # no browser on a desktop either: no display on Linux; BROWSER=true makes webbrowser a no-op elsewhere (macOS)
    env.update(JUPYTER_TOKEN=token, DISPLAY="", WAYLAND_DISPLAY="", BROWSER="true")
    return env


def _start(cmd: list[str], env: dict[str, str], log) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group: from /proc where there is one, else a signal-0 probe."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        return [pgid]
    alive = []
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            alive.append(int(stat.parent.name))
    return alive


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole group (its id is the leader's pid), SIGKILL after STOP_TIMEOUT_S; wait until it is gone."""
    pgid = proc.pid
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _group_alive(pgid):
            return
    proc.wait(timeout=STOP_TIMEOUT_S)
    assert not _group_alive(pgid), f"processes left running in group {pgid}: {_group_alive(pgid)}"


def _get(url: str):
    """(status, headers, body) for a loopback URL; HTTP errors and unfollowed redirects are answers too."""
    assert url.startswith("http://127.0.0.1:"), url
    try:
        with _HTTP.open(url, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _wait_until_answering(proc: subprocess.Popen, base: str, log: Path) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < START_TIMEOUT_S:
        if proc.poll() is not None:
            pytest.fail(f"`make course` exited ({proc.returncode}) before answering:\n{log.read_text()}")
        try:
            _get(base + "/")
            return time.monotonic() - t0
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    pytest.fail(f"no answer on {base}/ within {START_TIMEOUT_S:.0f} s:\n{log.read_text()}")


def _check_setup_is_current() -> None:
    # `make course` depends on `setup`; a stale .venv would make it reinstall the packages (minutes), not start
    r = subprocess.run(["make", "-q", "setup"], cwd=ROOT, env=_env(""), capture_output=True, timeout=30)
    assert r.returncode == 0, "the environment is out of date: run `make setup` first (`make test` does)"


def test_readme_first_command_serves_the_lessons(tmp_path):
    _check_setup_is_current()
    lessons = _lessons()
    assert lessons and lessons[0] == "00_tour_and_world.ipynb", lessons
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "course.log"
    with open(log_path, "wb") as log:
        proc = _start(_readme_first_command() + [f"PORT={port}"], _env(token), log)
    try:
        waited = _wait_until_answering(proc, base, log_path)
        print(f"`make course` answered on {base}/ after {waited:.1f} s")

        status, _, body = _get(f"{base}/api/contents/notebooks?content=1&token={token}")
        assert status == 200, (status, body[:300])
        listed = {item["name"] for item in json.loads(body)["content"] if item["type"] == "notebook"}
        assert set(lessons) <= listed, f"lessons not served: {sorted(set(lessons) - listed)}"

        status, _, _ = _get(f"{base}/api/contents/notebooks?content=1")
        assert status == 403, f"the contents API answered {status} without the token"

        # the course opens where it begins: / goes to lesson 00 in JupyterLab, which is served
        status, headers, _ = _get(f"{base}/?token={token}")
        assert status in (301, 302, 303, 307), status
        start = urllib.parse.urlsplit(headers["Location"]).path
        assert start == f"/lab/tree/notebooks/{lessons[0]}", headers["Location"]
        status, _, page = _get(f"{base}{start}?token={token}")
        assert status == 200 and b"JupyterLab" in page, status
    finally:
        _stop(proc)

    out = log_path.read_text()
    assert f"{base}/lab/tree/notebooks/{lessons[0]}?token={token}" in out, f"URL with token not printed:\n{out}"
    assert f"ssh -N -L {port}:127.0.0.1:{port} " in out, out
    root_line = "running as root (uid 0), so JupyterLab is started with --allow-root"
    assert (root_line in out) == (os.geteuid() == 0), out
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # nothing still listens on the port
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


def test_readme_first_command_refuses_a_taken_port(tmp_path):
    _check_setup_is_current()
    log_path = tmp_path / "course.log"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with open(log_path, "wb") as log:
            proc = _start(_readme_first_command() + [f"PORT={port}"], _env(secrets.token_hex(16)), log)
        try:
            rc = proc.wait(timeout=START_TIMEOUT_S)
        finally:
            _stop(proc)
    out = log_path.read_text()
    assert rc != 0, out
    assert f"port {port} is in use: choose another with make course PORT=" in out, out
    assert "ServerApp" not in out, f"JupyterLab was started on a taken port:\n{out}"

