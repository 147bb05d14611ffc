"""The inbox digest is the same canonical JSON as ``json.dumps(asdict(...))``, so digests stored before the
faster walk still recognise a resend as a duplicate, and equal content always gives equal digests."""

from __future__ import annotations

import json
from dataclasses import asdict

import x12_factory as fx

from mappings.x12.balancing import check
from mappings.x12.remit835 import read_835
from mappings.x12.to_domain import to_command
from router import bus, codec


def test_to_json_is_the_asdict_json_and_survives_the_codec_round_trip() -> None:
    [spec] = list(fx.stream_remittances(40, seed=3, per_transaction=40))
    [tx] = list(read_835(fx.render_835([spec]).encode()))
    command = to_command(tx, [*tx.findings, *check(tx)])
    assert bus.to_json(command) == json.dumps(asdict(command), sort_keys=True, default=str, separators=(",", ":"))
    decoded = codec.decode(codec.encode(command))
    assert isinstance(decoded, type(command)) and bus.digest(decoded) == bus.digest(command)
