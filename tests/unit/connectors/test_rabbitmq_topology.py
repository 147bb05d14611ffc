"""Topology as code: the committed definitions.json, quorum/dead-letter arguments, pika error translation."""

from __future__ import annotations

import json

import pika.exceptions as pe
import pytest

from connectors.rabbitmq.publisher import control_id, source_hash, translated
from connectors.rabbitmq.topology import DEFINITIONS, Topology, render
from router.domain.errors import BrokerUnavailable


def test_committed_definitions_json_equals_what_the_code_declares() -> None:
    assert DEFINITIONS.read_text() == render(), "regenerate: python -m connectors.rabbitmq.topology --write"


def test_every_queue_is_a_durable_quorum_queue_and_work_queues_dead_letter_safely() -> None:
    topology = Topology()
    queues = {q["name"]: q for q in json.loads(render())["queues"]}
    assert all(q["durable"] and q["arguments"]["x-queue-type"] == "quorum" for q in queues.values())
    for role in topology.roles:
        work = topology.queue(role)
        args = queues[work.name]["arguments"]
        assert args["x-delivery-limit"] == topology.delivery_limit
        assert args["x-dead-letter-exchange"] == topology.dead_letters
        assert args["x-dead-letter-strategy"] == "at-least-once" and args["x-overflow"] == "reject-publish"
        assert work.parking in queues
        ttls = [queues[name]["arguments"]["x-message-ttl"] for _, name in work.waits]
        assert ttls == [5_000, 30_000, 300_000]
        for _, name in work.waits:  # expiry returns the message to the work exchange, same routing key
            assert queues[name]["arguments"]["x-dead-letter-exchange"] == work.exchange
            assert queues[name]["arguments"]["x-dead-letter-routing-key"] == work.routing_key


def test_definitions_carry_no_users_or_secrets() -> None:
    assert set(json.loads(render())) == {"exchanges", "queues", "bindings"}


@pytest.mark.parametrize("error", [
    pe.AMQPConnectionError(), pe.ConnectionClosed(320, "shutdown"), pe.ConnectionClosedByBroker(320, "x"),
    pe.StreamLostError(), pe.ChannelClosed(404, "no queue"), pe.ChannelClosedByBroker(406, "precondition"),
    pe.ChannelWrongStateError(), pe.ConnectionWrongStateError(), pe.UnroutableError([]), pe.NackError([]),
    pe.ConnectionBlockedTimeout(), pe.IncompatibleProtocolError(), pe.ProbableAuthenticationError(),
    ConnectionResetError(), TimeoutError(),
], ids=lambda e: type(e).__name__)
def test_every_pika_failure_is_translated_to_broker_unavailable(error: Exception) -> None:
    with pytest.raises(BrokerUnavailable) as caught, translated("test"):
        raise error
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("source_id, expected", [
    ("hl7:CLINIC:MSG00001", "MSG00001"), ("835:PAYER1:TRN123:100.00", "TRN123"),
    ("fhir:Claim:ACCT123:V9", ""), ("fhir:RegisterPatient:ACCT9:abcdef", ""),
])
def test_headers_take_only_control_ids_never_account_numbers(source_id: str, expected: str) -> None:
    assert control_id(source_id) == expected
    assert len(source_hash(source_id)) == 16 and "ACCT" not in source_hash(source_id)
