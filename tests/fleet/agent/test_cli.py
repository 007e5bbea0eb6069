"""`python -m fleet.agent` (and `python -m devtools.fake_agent`, the agent over a fake NVML): starts and serves
in a subprocess, never imports Django, refuses to run open."""

from __future__ import annotations

import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools.fake_agent import main as fake_agent_main
from devtools.fake_nvml import FakeNvml
from fleet.agent.cli import UsageError, load_token, main, parse_listen
from tests.conftest import ROOT
from tests.fleet.agent.conftest import TOKEN
from tests.fleet.agent.helpers import fetch, parse_exposition

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - only compared, never bound


def _agent_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FLEETDECK_AGENT_TOKEN", "DJANGO_SETTINGS_MODULE")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _pump(stream, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _wait_for_listening(process: subprocess.Popen, lines: queue.Queue[str]) -> int:
    """The port the agent logs 'listening on HOST:PORT' with, from the lines of its stderr."""
    deadline = time.monotonic() + START_TIMEOUT_S
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        seen.append(line)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            return int(match[1])
    process.kill()
    raise AssertionError(f"the agent did not start: {''.join(seen)}")


def test_python_m_devtools_fake_agent_serves_the_fake_t4(tmp_path: Path) -> None:
    token_file = tmp_path / "agent.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.fake_agent",
            "--fake-nvml",
            "t4",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
            str(token_file),
            "--hostname",
            "sub-node",
        ],
        cwd=ROOT,
        env=_agent_env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    # A thread, not select(): a buffered readline can swallow the next line before select() sees it.
    pump = threading.Thread(target=_pump, args=(process.stderr, lines), daemon=True)
    pump.start()
    try:
        port = _wait_for_listening(process, lines)
        base = f"http://127.0.0.1:{port}"
        assert fetch(f"{base}/metrics").status == 401
        answer = fetch(f"{base}/metrics", token=TOKEN)
        assert answer.status == 200
        scraped = parse_exposition(answer.text)
        assert scraped.select("DCGM_FI_DEV_FB_USED", modelName="Tesla T4", Hostname="sub-node", gpu="0")
        assert fetch(f"{base}/healthz").status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_TIMEOUT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        pump.join(timeout=STOP_TIMEOUT_S)  # it ends at EOF, once the agent has exited
        process.stderr.close()


def test_the_agent_never_imports_django() -> None:
    script = (
        "import runpy, sys\n"
        "sys.argv = ['fleet.agent', '--help']\n"
        "try:\n"
        "    runpy.run_module('fleet.agent', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('AGENT IMPORTED:', sorted(n for n in sys.modules if n.split('.')[0] == 'devtools'))\n"
        "import fleet.agent, fleet.agent.cli, devtools.fake_agent, devtools.fake_nvml, fleet.agent.server\n"
        "from devtools.fake_nvml import FakeNvml\n"
        "fleet.agent.Collector(FakeNvml.from_profile('a100-mig')).collect()\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in ('django', 'rest_framework', 'celery')\n"
        "             or n in ('fleet.models', 'fleet.catalog', 'fleet.choices'))\n"
        "print('IMPORTED:', bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=_agent_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "AGENT IMPORTED: []" in result.stdout, result.stdout  # the agent alone never loads the dev tools
    assert "\nIMPORTED: []" in result.stdout, result.stdout


def test_refuses_to_start_without_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert fake_agent_main(["--fake-nvml", "t4", "--listen", "127.0.0.1:0"], environ={}) == 2
    assert "no token: pass --token-file PATH or set $FLEETDECK_AGENT_TOKEN" in capsys.readouterr().err


def test_insecure_mode_and_a_token_contradict(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--insecure-no-auth", "--listen", "127.0.0.1:0"]
    assert main(argv, environ={"FLEETDECK_AGENT_TOKEN": TOKEN}, nvml=FakeNvml.from_profile("t4")) == 2
    assert "contradict" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--token-file", "/nonexistent/agent.token"], "cannot read --token-file"),
        (["--insecure-no-auth", "--listen", "9400"], "--listen wants HOST:PORT"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv, environ={}) == 2
    assert message in capsys.readouterr().err


def test_the_fake_agent_refuses_an_unknown_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert fake_agent_main(["--insecure-no-auth", "--fake-nvml", "dgx-b200"], environ={}) == 2
    assert "unknown fake NVML profile 'dgx-b200'" in capsys.readouterr().err


def test_the_agent_has_no_fake_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--fake-nvml", "t4", "--insecure-no-auth"], environ={})
    assert exited.value.code == 2
    assert "unrecognized arguments: --fake-nvml t4" in capsys.readouterr().err


def test_empty_token_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    with pytest.raises(UsageError, match="is empty"):
        load_token(str(empty), {})


def test_token_file_wins_over_the_environment_and_loose_permissions_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "agent.token"
    token_file.write_text(f"  {TOKEN}\n")
    token_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="fleet.agent"):
        assert load_token(str(token_file), {"FLEETDECK_AGENT_TOKEN": "other"}) == TOKEN
    assert "readable by other users" in caplog.text
    assert load_token(None, {"FLEETDECK_AGENT_TOKEN": f"{TOKEN}\n"}) == TOKEN
    assert load_token(None, {}) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9400", ("127.0.0.1", 9400)),
        ("0.0.0.0:0", (ALL_INTERFACES, 0)),
        (":9400", (ALL_INTERFACES, 9400)),
        ("[::1]:9400", ("::1", 9400)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9400", "host:", "host:port", "host:70000"])
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(UsageError):
        parse_listen(value)
