"""``rcmhub serve`` as an operator starts it: an empty database is upgraded, probes and the API answer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hl7_factory import Dft, Ft1
from serve_support import wait_until_serving

from connectors.mllp import MllpClient

RCMHUB = str(Path(sys.executable).parent / "rcmhub")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(90)
def test_serve_upgrades_an_empty_database_and_answers_health_and_account_queries(tmp_path: Path) -> None:
    port, mllp_port = free_port(), free_port()
    env = {**os.environ, "RCMHUB_DATA_DIR": str(tmp_path), "RCMHUB_API_PORT": str(port),
           "RCMHUB_MLLP_PORT": str(mllp_port)}
    proc = subprocess.Popen([RCMHUB, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(proc, base)
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
        assert httpx.get(f"{base}/api/v1/accounts/NOPE", timeout=5).status_code == 401  # no credentials
        # An operator makes a token with the CLI, as serve's start-up hint says, and the API takes it.
        made = subprocess.run([RCMHUB, "tokens", "create", "serve-test", "--role", "billing", "--json"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        auth = {"Authorization": f"Bearer {json.loads(made.stdout)['token']}"}
        missing = httpx.get(f"{base}/api/v1/accounts/NOPE", timeout=5, headers=auth)
        assert missing.status_code == 404
        assert (tmp_path / "rcmhub.db").exists()
        with MllpClient("127.0.0.1", mllp_port) as client:  # the MLLP listener runs beside the API
            ack = client.send(Dft("SERVE1", "SERVE-A1", visit="SV1", lines=[Ft1("10.00")]).er7().encode())
        assert b"\rMSA|AA|SERVE1" in ack
        # The drop directory is watched: an 835 placed there is processed and archived beside its 999.
        (tmp_path / "drop" / "remit.835").write_bytes(
            (Path(__file__).parents[1] / "samples/x12_835/linuxforhealth-x12/managed-care.835").read_bytes())
        deadline = time.monotonic() + 80
        while not any(p.name.endswith("remit.835.999") for p in (tmp_path / "drop" / "archive").glob("*")):
            assert time.monotonic() < deadline, "the drop directory was not processed"
            time.sleep(0.3)
        assert httpx.get(f"{base}/api/v1/remittances", timeout=5,
                         headers=auth).json()[0]["payment_amount"] == "945.00"
    finally:
        proc.terminate()
        proc.wait(20)
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert "rcmhub users add" in output  # the first-user hint for a new operator


def test_importing_every_module_opens_no_connection() -> None:
    code = (
        "import socket, pkgutil, importlib\n"
        "def refuse(*a, **k): raise AssertionError('connected at import time')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "for pkg in ('router', 'mappings', 'connectors', 'api'):\n"
        "    mod = importlib.import_module(pkg)\n"
        "    for info in pkgutil.walk_packages(mod.__path__, pkg + '.'):\n"
        "        if '.migrations' not in info.name:\n"
        "            importlib.import_module(info.name)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).parents[2])
    assert result.returncode == 0, result.stderr[-3000:]
