"""``rcmhub serve`` in production mode (RCMHUB_AMQP_URL set): its MLLP listener stores and forwards, the ACK
comes once the raw message is on the intake queue (the worker parses it later)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hl7_factory import Dft, Ft1
from rabbitmq_support import declared, drain, test_topology
from serve_support import wait_until_serving
from services import amqp_url, postgres_url
from test_serve import RCMHUB, free_port

from connectors.mllp import MllpClient
from connectors.rabbitmq.publisher import CONTROL_ID, STORED_ID


@pytest.mark.timeout(120)
def test_serve_on_rabbitmq_acks_mllp_once_the_raw_message_is_stored_and_on_the_intake_queue(
        tmp_path: Path, uid: str) -> None:
    port, mllp_port = free_port(), free_port()
    topology = test_topology()
    env = {**os.environ, "RCMHUB_DATA_DIR": str(tmp_path), "RCMHUB_API_PORT": str(port),
           "RCMHUB_MLLP_PORT": str(mllp_port), "RCMHUB_DATABASE_URL": postgres_url(),
           "RCMHUB_AMQP_URL": amqp_url(), "RCMHUB_AMQP_PREFIX": topology.prefix}
    proc = subprocess.Popen([RCMHUB, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(proc, f"http://127.0.0.1:{port}")
        # No worker has run under this prefix: serve declared the topology itself, so the publish is routed.
        payload = Dft(f"S{uid}", f"A{uid}", visit=f"V{uid}", lines=[Ft1("10.00")]).er7().encode()
        with MllpClient("127.0.0.1", mllp_port) as client:
            ack = client.send(payload)
        assert f"\rMSA|AA|S{uid}".encode() in ack
        with declared(amqp_url(), topology) as channel:  # idempotent here; deletes the test's topology after
            [(props, body)] = drain(channel, topology.queue("intake").name)
        assert body == payload and props.headers[CONTROL_ID] == f"S{uid}" and props.headers[STORED_ID] > 0
    finally:
        proc.terminate()
        proc.wait(20)
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert "(RabbitMQ" in output and "Traceback" not in output, output[-3000:]


@pytest.mark.timeout(120)
def test_serve_with_the_broker_down_warns_serves_the_api_and_answers_mllp_send_again(tmp_path: Path, uid: str) -> None:
    port, mllp_port = free_port(), free_port()
    env = {**os.environ, "RCMHUB_DATA_DIR": str(tmp_path), "RCMHUB_API_PORT": str(port),
           "RCMHUB_MLLP_PORT": str(mllp_port), "RCMHUB_DATABASE_URL": postgres_url(),
           "RCMHUB_AMQP_URL": "amqp://guest:guest@127.0.0.1:9/%2F"}  # nothing listens there
    proc = subprocess.Popen([RCMHUB, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(proc, f"http://127.0.0.1:{port}")
        with MllpClient("127.0.0.1", mllp_port) as client:
            ack = client.send(Dft(f"D{uid}", f"A{uid}", visit=f"V{uid}", lines=[Ft1("10.00")]).er7().encode())
        assert f"\rMSA|AE|D{uid}".encode() in ack and b"send again" in ack
    finally:
        proc.terminate()
        proc.wait(20)
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert "RabbitMQ topology not declared" in output, output[-3000:]  # (pika logs its own connect errors)
