"""The MLLP listener and client over real sockets on 127.0.0.1, python-hl7 as an independent peer."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hl7.client
import pytest

from connectors.mllp import (
    FrameError,
    FrameErrorKind,
    MllpClient,
    MllpDecoder,
    MllpServer,
    MllpServerThread,
    encode_frame,
)
from connectors.mllp_framing import Frame
from router.domain.errors import DeliveryFailed, TransientError

pytestmark = pytest.mark.timeout(30)

SAMPLE = Path(__file__).parents[1] / "samples/hl7v2/microsoft-fhir-converter/DFT-P03-01.hl7"
PHI = b"DOE^JANE^Q"


def hl7_message(control_id: str) -> bytes:
    return (
        f"MSH|^~\\&|EMR|HOSP|RCM|HUB|20240101120000||DFT^P03|{control_id}|P|2.5\r"
        f"PID|1||12345||{PHI.decode()}||19700101|F\r"
    ).encode()


def control_id(payload: bytes) -> str:
    return payload.split(b"\r", 1)[0].replace(b"\n", b"|").split(b"|")[9].decode()


def ack(payload: bytes, code: str = "AA") -> bytes:
    cid = control_id(payload)
    return f"MSH|^~\\&|RCM|HUB|EMR|HOSP|20240101120000||ACK|A{cid}|P|2.5\rMSA|{code}|{cid}\r".encode()


async def ack_handler(payload: bytes, peer: str) -> bytes:
    return ack(payload)


def reject(error: FrameError, peer: str) -> bytes:
    return f"MSH|^~\\&|RCM|HUB|||||ACK|0|P|2.5\rMSA|AR||{error.kind.value}\r".encode()


@contextmanager
def running(handler: Callable[[bytes, str], Any] = ack_handler, **options: Any) -> Iterator[MllpServerThread]:
    handle = MllpServer(handler, **options).run_in_thread()
    try:
        yield handle
    finally:
        handle.stop(grace=2.0)


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(5)
    return sock


def read_frames(sock: socket.socket, count: int) -> list[bytes]:
    decoder, frames = MllpDecoder(), []
    while len(frames) < count:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(frames)} of {count} replies"
        frames += [i.payload for i in decoder.feed(chunk) if isinstance(i, Frame)]
    assert len(frames) == count
    return frames


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def task_count(handle: MllpServerThread) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    return asyncio.run_coroutine_threadsafe(count(), handle.loop).result(5)


def test_python_hl7_client_sends_a_sample_message_and_gets_the_handler_reply() -> None:
    with running() as server, hl7.client.MLLPClient("127.0.0.1", server.port) as peer:
        peer.socket.settimeout(5)
        payload = SAMPLE.read_bytes()
        reply = peer.send_message(payload)
        assert reply == encode_frame(ack(payload))
        assert b"MSA|AA|MSG00001" in reply
        assert server.server.stats.frames_received == 1


def test_a_frame_written_byte_by_byte_is_answered_once() -> None:
    with running() as server, connect(server.port) as sock:
        for byte in encode_frame(hl7_message("7")):
            sock.sendall(bytes([byte]))
            time.sleep(0.0005)
        assert read_frames(sock, 1) == [ack(hl7_message("7"))]


def test_several_frames_in_one_write_are_answered_in_order() -> None:
    with running() as server, connect(server.port) as sock:
        sock.sendall(b"".join(encode_frame(hl7_message(str(i))) for i in range(10)))
        assert read_frames(sock, 10) == [ack(hl7_message(str(i))) for i in range(10)]


def test_an_oversize_frame_gets_the_on_error_reply_and_the_connection_keeps_serving() -> None:
    with running(on_error=reject, max_frame_size=1024) as server:
        with connect(server.port) as sock:
            sock.sendall(encode_frame(b"X" * 100_000))
            assert b"MSA|AR||oversize" in read_frames(sock, 1)[0]
            sock.sendall(encode_frame(hl7_message("2")))
            assert read_frames(sock, 1) == [ack(hl7_message("2"))]
        with connect(server.port) as sock:
            sock.sendall(encode_frame(hl7_message("3")))
            assert read_frames(sock, 1) == [ack(hl7_message("3"))]
        assert server.server.stats.frame_errors == 1


def test_an_oversize_frame_without_an_answer_closes_the_connection_and_the_next_one_works() -> None:
    seen: list[FrameError] = []

    async def refuse(error: FrameError, peer: str) -> None:
        seen.append(error)

    with running(on_error=refuse, max_frame_size=1024) as server:
        with connect(server.port) as sock:
            sock.sendall(encode_frame(b"X" * 5000))
            assert closed_by_peer(sock)
        assert seen == [FrameError(FrameErrorKind.OVERSIZE, 5000)]
        with connect(server.port) as sock:
            sock.sendall(encode_frame(hl7_message("4")))
            assert read_frames(sock, 1) == [ack(hl7_message("4"))]


def test_garbage_before_a_frame_is_skipped_without_a_reply_of_its_own() -> None:
    with running(on_error=reject) as server, connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n" + encode_frame(hl7_message("5")))
        assert read_frames(sock, 1) == [ack(hl7_message("5"))]
        sock.sendall(encode_frame(hl7_message("6")))
        assert read_frames(sock, 1) == [ack(hl7_message("6"))]
        assert server.server.stats.garbage_bytes == 18


def test_a_start_block_inside_a_frame_gets_an_error_reply_then_the_next_frame_is_answered() -> None:
    with running(on_error=reject) as server, connect(server.port) as sock:
        sock.sendall(b"\x0bMSH|half" + encode_frame(hl7_message("8")))
        first, second = read_frames(sock, 2)
        assert b"MSA|AR||truncated" in first
        assert second == ack(hl7_message("8"))


def test_hostile_bytes_never_take_the_listener_down() -> None:
    noise = bytes(range(256)) * 40 + b"\x0b\x1c\x1c\x0b\x1c\r\x0b" * 50
    with running(on_error=reject, max_frame_size=512) as server:
        for _ in range(5):
            with connect(server.port) as sock:
                sock.sendall(noise)
        with connect(server.port) as sock:
            sock.sendall(encode_frame(hl7_message("9")))
            assert read_frames(sock, 1) == [ack(hl7_message("9"))]


def test_a_client_leaving_mid_frame_leaves_no_task_and_others_are_still_served() -> None:
    with running() as server:
        baseline = task_count(server)
        with connect(server.port) as other:
            for _ in range(3):
                with connect(server.port) as quitter:
                    quitter.sendall(b"\x0b" + hl7_message("10")[:20])
                    time.sleep(0.05)
            other.sendall(encode_frame(hl7_message("11")))
            assert read_frames(other, 1) == [ack(hl7_message("11"))]
        wait_until(lambda: server.server.active_connections == 0)
        wait_until(lambda: task_count(server) == baseline)
        assert server.server.stats.frame_errors == 3


def test_fifty_concurrent_clients_each_get_their_twenty_replies_in_order() -> None:
    async def slow_ack(payload: bytes, peer: str) -> bytes:
        await asyncio.sleep(0.001 * (int(control_id(payload).split("-")[1]) % 3))
        return ack(payload)

    def client_run(port: int, n: int) -> list[bool]:
        with MllpClient("127.0.0.1", port) as client:
            ids = [f"{n}-{i}" for i in range(20)]
            return [client.send(hl7_message(cid), timeout=10) == ack(hl7_message(cid)) for cid in ids]

    with running(slow_ack) as server, ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda n: client_run(server.port, n), range(50), timeout=25))
        assert all(all(r) and len(r) == 20 for r in results)
        assert server.server.stats.frames_received == 1000
        assert server.server.stats.connections_total == 50


def test_an_idle_connection_is_closed_after_the_idle_timeout() -> None:
    with running(idle_timeout=0.3) as server, connect(server.port) as sock:
        started = time.monotonic()
        assert closed_by_peer(sock)
        assert 0.25 < time.monotonic() - started < 3
        assert server.server.stats.idle_timeouts == 1


def test_the_client_reconnects_after_the_server_closed_an_idle_connection() -> None:
    with running(idle_timeout=0.2) as server, MllpClient("127.0.0.1", server.port) as client:
        assert client.send(hl7_message("12"), timeout=5) == ack(hl7_message("12"))
        wait_until(lambda: server.server.stats.idle_timeouts == 1)
        assert client.send(hl7_message("13"), timeout=5) == ack(hl7_message("13"))
        assert server.server.stats.connections_total == 2


def test_a_failing_handler_closes_its_connection_without_logging_the_payload(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def explode(payload: bytes, peer: str) -> bytes:
        raise ValueError(f"cannot read {payload!r}")

    caplog.set_level(logging.DEBUG)
    with running(explode) as server:
        with connect(server.port) as sock:
            sock.sendall(encode_frame(hl7_message("14")))
            assert closed_by_peer(sock)
        with connect(server.port) as sock:
            sock.sendall(encode_frame(hl7_message("15")))
            assert closed_by_peer(sock)
        assert server.server.stats.handler_failures == 2
        assert server.port == server.server.bound_port
    assert "ValueError" in caplog.text
    assert PHI.decode() not in caplog.text
    assert "cannot read" not in caplog.text


def test_graceful_stop_waits_for_an_in_flight_handler_and_its_reply() -> None:
    entered = threading.Event()

    async def slow(payload: bytes, peer: str) -> bytes:
        entered.set()
        await asyncio.sleep(0.5)
        return ack(payload)

    handle = MllpServer(slow).run_in_thread()
    try:
        with connect(handle.port) as busy, connect(handle.port) as idle:
            busy.sendall(encode_frame(hl7_message("16")))
            assert entered.wait(5)
            started = time.monotonic()
            handle.stop(grace=5.0)
            assert time.monotonic() - started >= 0.3
            assert read_frames(busy, 1) == [ack(hl7_message("16"))]
            assert closed_by_peer(busy)
            assert closed_by_peer(idle)
        with pytest.raises(OSError):
            connect(handle.port)
    finally:
        handle.stop(grace=0)


def test_stop_cancels_a_handler_that_outlives_the_grace_period() -> None:
    async def stuck(payload: bytes, peer: str) -> bytes:
        await asyncio.sleep(60)
        return ack(payload)

    handle = MllpServer(stuck).run_in_thread()
    with connect(handle.port) as sock:
        sock.sendall(encode_frame(hl7_message("17")))
        wait_until(lambda: handle.server.stats.frames_received == 1)
        started = time.monotonic()
        handle.stop(grace=0.2)
        assert time.monotonic() - started < 3
        assert closed_by_peer(sock)


def test_the_client_raises_delivery_failed_when_no_reply_comes_in_time() -> None:
    async def stuck(payload: bytes, peer: str) -> bytes:
        await asyncio.sleep(5)
        return ack(payload)

    with running(stuck) as server, MllpClient("127.0.0.1", server.port) as client:
        with pytest.raises(DeliveryFailed) as caught:
            client.send(hl7_message("18"), timeout=0.2)
        assert isinstance(caught.value, TransientError)
        assert isinstance(caught.value.__cause__, TimeoutError)
        assert "no MLLP reply" in caught.value.reason


def test_the_client_raises_delivery_failed_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeliveryFailed) as caught:
        MllpClient("127.0.0.1", port, connect_timeout=2).send(b"MSH|x", timeout=2)
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.location == f"127.0.0.1:{port}"


def test_the_client_raises_delivery_failed_when_the_peer_hangs_up_before_replying() -> None:
    async def explode(payload: bytes, peer: str) -> bytes:
        raise RuntimeError("boom")

    with (
        running(explode) as server,
        MllpClient("127.0.0.1", server.port) as client,
        pytest.raises(DeliveryFailed, match="closed the connection"),
    ):
        client.send(hl7_message("19"), timeout=5)


@pytest.fixture(scope="module")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("neither the cryptography package nor the openssl command is available")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=20,
    )  # fmt: skip
    return cert, key


def test_tls_carries_frames_both_ways_with_a_self_signed_certificate(tls_cert: tuple[Path, Path]) -> None:
    cert, key = tls_cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    with running(ssl_context=server_ctx, idle_timeout=0.3) as server:
        with MllpClient("127.0.0.1", server.port, ssl_context=client_ctx, server_hostname="localhost") as tls:
            for i in range(3):
                assert tls.send(hl7_message(f"t{i}"), timeout=5) == ack(hl7_message(f"t{i}"))
            wait_until(lambda: server.server.stats.idle_timeouts == 1)
            assert tls.send(hl7_message("t9"), timeout=5) == ack(hl7_message("t9"))
        with pytest.raises(DeliveryFailed, match="TLS"):
            MllpClient("127.0.0.1", server.port, ssl_context=ssl.create_default_context()).send(b"x", 5)


def test_the_server_runs_inside_an_existing_event_loop_with_start_and_stop() -> None:
    async def scenario() -> tuple[bytes, int]:
        server = MllpServer(ack_handler, idle_timeout=5)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
            writer.write(encode_frame(hl7_message("20")))
            reply = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), 5)
            writer.close()
            await writer.wait_closed()
            return reply, server.bound_port
        finally:
            await asyncio.wait_for(server.stop(grace=1), 5)

    reply, port = asyncio.run(scenario())
    assert reply == encode_frame(ack(hl7_message("20")))
    with pytest.raises(OSError):
        connect(port)


def test_an_on_error_hook_that_raises_closes_the_connection_and_the_server_stays_up() -> None:
    def broken(error: FrameError, peer: str) -> bytes:
        raise RuntimeError("hook bug")

    with running(on_error=broken, max_frame_size=1024) as server:
        with connect(server.port) as sock:
            sock.sendall(encode_frame(b"X" * 2000))
            assert closed_by_peer(sock)
        with connect(server.port) as sock:
            sock.sendall(encode_frame(hl7_message("21")))
            assert read_frames(sock, 1) == [ack(hl7_message("21"))]


def test_starting_on_a_port_in_use_raises_in_the_caller() -> None:
    with running() as server, pytest.raises(OSError):
        MllpServer(ack_handler, port=server.port).run_in_thread()
