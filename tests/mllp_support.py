"""MLLP helpers shared by tests and benchmarks: the bare echo server that is the floor of every MLLP figure."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from connectors.mllp import MllpServer

ECHO_ACK = b"MSH|^~\\&|HUB|HUB|EMR|FAC|20240101||ACK^P03^ACK|1|P|2.5\rMSA|AA|1\r"


@contextmanager
def echo_server() -> Iterator[int]:
    """The floor: MllpServer answering each frame with a fixed ACK, no storage, no parsing."""
    async def handler(payload: bytes, peer: str) -> bytes:
        return ECHO_ACK

    handle = MllpServer(handler).run_in_thread()
    try:
        yield handle.port
    finally:
        handle.stop(grace=2)
