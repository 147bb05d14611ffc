"""The message store on SQLite and PostgreSQL: raw kept before processing, resends and conflicts told
apart by sender + control id + digest, status marks, search by control id, account and claim key."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import sessionmaker

from api.bootstrap import Hub
from router.adapters.db import make_engine
from router.adapters.message_store import MessageStatus, MessageStore
from router.domain.errors import StoreUnavailable


@pytest.fixture
def store(hub: Hub) -> MessageStore:
    return MessageStore(hub.sessions)


def test_a_stored_message_is_committed_with_its_source_and_found_by_control_id(store: MessageStore,
                                                                               uid: str) -> None:
    raw = f"MSH|^~\\&|EMR|FAC|||||DFT^P03|C{uid}|P|2.5\r".encode()
    stored = store.store(raw, "mllp", "10.0.0.7:4100", "hl7v2", "DFT^P03", "FAC", f"C{uid}")
    assert stored.status is MessageStatus.RECEIVED and not stored.is_resend
    other_session = MessageStore(sessionmaker(store.sessions.kw["bind"]))  # a fresh session sees it
    [found] = other_session.search(control_id=f"C{uid}")
    assert (found.id, found.channel, found.peer, found.format, found.message_type, found.sender) == (
        stored.id, "mllp", "10.0.0.7:4100", "hl7v2", "DFT^P03", "FAC")
    assert store.raw(stored.id) == raw


def test_marks_make_a_message_findable_by_account_and_claim_key(store: MessageStore, uid: str) -> None:
    first = store.store(b"one", "file", "", "hl7v2", "DFT^P03", "FAC", f"C1{uid}")
    second = store.store(b"two", "file", "", "hl7v2", "DFT^P03", "FAC", f"C2{uid}")
    store.mark(first.id, MessageStatus.PROCESSED, account=f"A{uid}", claim_key=f"V{uid}")
    store.mark(second.id, MessageStatus.REJECTED, "'12,OO' is not a number", "FT1[5]-11", account=f"A{uid}")
    assert [m.id for m in store.search(account=f"A{uid}")] == [second.id, first.id]  # newest first
    assert [m.id for m in store.search(claim_key=f"V{uid}")] == [first.id]
    rejected = store.get(second.id)
    assert rejected is not None
    assert (rejected.status, rejected.error, rejected.error_location) == (
        MessageStatus.REJECTED, "'12,OO' is not a number", "FT1[5]-11")
    assert [m.id for m in store.search(account=f"A{uid}", status=MessageStatus.PROCESSED)] == [first.id]


def test_the_same_bytes_again_after_processing_are_a_resend(store: MessageStore, uid: str) -> None:
    first = store.store(b"same", "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{uid}")
    store.mark(first.id, MessageStatus.PROCESSED)
    again = store.store(b"same", "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{uid}")
    assert again.is_resend and again.earlier_id == first.id and again.id != first.id


def test_the_same_bytes_again_before_processing_finished_are_processed_again(store: MessageStore,
                                                                            uid: str) -> None:
    # e.g. the first try met a database outage: the resend must be processed, not waved through.
    store.store(b"same", "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{uid}")
    again = store.store(b"same", "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{uid}")
    assert again.status is MessageStatus.RECEIVED


def test_other_content_under_a_used_control_id_is_a_conflict(store: MessageStore, uid: str) -> None:
    first = store.store(b"original", "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{uid}")
    store.mark(first.id, MessageStatus.PROCESSED)
    changed = store.store(b"changed", "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{uid}")
    assert changed.is_conflict and changed.earlier_id == first.id
    assert store.search(control_id=f"C{uid}", status=MessageStatus.CONFLICT)[0].error_location == "MSH-10"
    elsewhere = store.store(b"changed", "mllp", "", "hl7v2", "DFT^P03", "OTHER-FAC", f"C{uid}")
    assert elsewhere.status is MessageStatus.RECEIVED  # control ids are unique per sender only


def test_a_corrected_message_may_reuse_the_control_id_of_a_rejected_one(store: MessageStore, uid: str) -> None:
    first = store.store(b"bad amount", "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{uid}")
    store.mark(first.id, MessageStatus.REJECTED, "bad", "FT1[5]-11")
    fixed = store.store(b"good amount", "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{uid}")
    assert fixed.status is MessageStatus.RECEIVED


def test_an_unreachable_database_is_a_transient_store_unavailable() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2})
    with pytest.raises(StoreUnavailable):
        MessageStore(sessionmaker(engine)).store(b"x", "mllp", "", "hl7v2")
    engine.dispose()
