"""`hivecast` as a user runs it: a real process, real signals, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_port

HIVECAST = [sys.executable, "-m", "hivecast"]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HIVECAST_")}


def start(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*HIVECAST, *args], cwd=cwd, env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_healthy(port: int, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited early: {proc.communicate()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("node did not become healthy")


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HIVECAST, *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_health_metrics_and_clean_stop(tmp_path: Path, sig: signal.Signals) -> None:
    port = free_port()
    proc = start(["serve", "--host", "127.0.0.1", "--http-port", str(port), "--rtsp-port", "0",
                  "--data-dir", str(tmp_path / "data")], tmp_path)
    try:
        wait_healthy(port, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as r:
            assert json.loads(r.read()) == {"status": "ok", "role": "serve"}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
            assert r.headers["content-type"].startswith("text/plain")
            text = r.read().decode()
        assert "# TYPE hivecast_http_requests_total counter" in text
        assert 'hivecast_node_info{role="serve"' in text
        # an idle keep-alive connection must not hold up the stop
        idle = socket.create_connection(("127.0.0.1", port))
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        idle.recv(4096)
        t0 = time.monotonic()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - t0
        idle.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert elapsed < 2.0, f"stop took {elapsed:.2f}s"


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run(["serve", "--host", "127.0.0.1", "--http-port", str(port), "--rtsp-port", "0",
                   "--data-dir", str(tmp_path / "d")], tmp_path)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("hivecast:")]
    assert len(lines) == 1 and "address already in use" in lines[0] and str(port) in lines[0], res.stderr


def test_bad_toml_value(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("http_port = 70000\n")
    res = run(["serve", "--config", str(cfg)], tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "http_port" in res.stderr and "Traceback" not in res.stderr


def test_unknown_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("colour = 'blue'\n")
    res = run(["serve", "--config", str(cfg)], tmp_path)
    assert res.returncode == 2
    assert res.stderr.strip() == f"hivecast: config error: bad setting colour: unknown setting [from {cfg}]"


def test_unwritable_data_dir(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    res = run(["serve", "--data-dir", str(tmp_path / "file" / "data")], tmp_path)
    assert res.returncode == 2
    assert "not writable" in res.stderr and res.stderr.strip().count("\n") == 0


def test_edge_without_origin(tmp_path: Path) -> None:
    res = run(["edge", "--data-dir", str(tmp_path / "d"), "--http-port", "0"], tmp_path)
    assert res.returncode == 1
    assert "--origin" in res.stderr and "Traceback" not in res.stderr


def test_version_and_help(tmp_path: Path) -> None:
    res = run(["--version"], tmp_path)
    assert res.returncode == 0 and res.stdout.startswith("hivecast ")
    res = run(["--help"], tmp_path)
    assert res.returncode == 0
    for command in ("serve", "origin", "edge"):
        assert command in res.stdout


def test_json_logs(tmp_path: Path) -> None:
    port = free_port()
    proc = start(["origin", "--host", "127.0.0.1", "--http-port", str(port), "--rtsp-port", "0",
                  "--log-format", "json", "--data-dir", str(tmp_path / "d")], tmp_path)
    try:
        wait_healthy(port, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert records and all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    assert any(r["msg"].startswith("http listening") for r in records)
