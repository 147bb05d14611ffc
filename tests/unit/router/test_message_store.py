"""The message store on SQLite and PostgreSQL: raw kept before processing, resends and conflicts told
apart by sender + control id + digest (one by one or in a batch), status marks, search by control id,
account and claim key."""

from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy.orm import sessionmaker

from api.bootstrap import Hub
from router.adapters.db import make_engine
from router.adapters.message_store import Mark, MessageStatus, MessageStore, NewMessage
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


def _batch(uid: str) -> list[NewMessage]:
    """One sender's messages as an EMR might send them in a burst: repeats, a reuse, an unreadable one."""
    def msg(raw: bytes, control: str, error: str | None = None) -> NewMessage:
        return NewMessage(raw, "mllp", "peer", "hl7v2", "DFT^P03", "FAC", control, error=error,
                          error_location="MSH-9" if error else None)

    return [msg(b"processed before", f"P{uid}"), msg(b"first", f"C{uid}"), msg(b"other", f"C{uid}"),
            msg(b"first", f"C{uid}"), msg(b"bad type", f"R{uid}", error="ADT^A40 is not supported"),
            msg(b"after the rejected one", f"R{uid}"), msg(b"no control id", "")]


def test_a_batch_is_judged_as_the_same_messages_stored_one_by_one(store: MessageStore, uid: str) -> None:
    ones, batch = f"1{uid}", f"2{uid}"
    for run in (ones, batch):
        store.mark(store.store(b"processed before", "mllp", "", "hl7v2", "DFT^P03", "FAC", f"P{run}").id,
                   MessageStatus.PROCESSED)
    alone = [store.store_many([item])[0] for item in _batch(ones)]
    together = store.store_many(_batch(batch))
    assert [m.status for m in together] == [m.status for m in alone] == [
        MessageStatus.DUPLICATE, MessageStatus.RECEIVED, MessageStatus.CONFLICT, MessageStatus.RECEIVED,
        MessageStatus.REJECTED, MessageStatus.RECEIVED, MessageStatus.RECEIVED]
    assert [m.id for m in together] == sorted(m.id for m in together)  # ids in the items' order
    assert together[2].earlier_id == together[1].id  # the conflict points at the earlier item of its batch
    assert alone[2].earlier_id == alone[1].id
    assert (together[2].error_location, together[4].error, together[4].error_location) == (
        "MSH-10", "ADT^A40 is not supported", "MSH-9")
    kept = store.get(together[4].id)
    assert kept is not None and kept.status is MessageStatus.REJECTED and store.raw(together[4].id) == b"bad type"
    assert [m.id for m in store.search(control_id=f"C{batch}")] == [m.id for m in together[1:4]][::-1]


def test_a_batch_is_one_transaction_and_on_postgresql_one_multi_row_insert(store: MessageStore, uid: str) -> None:
    engine = store.sessions.kw["bind"]
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement.split()[0].upper())

    def commit(conn: object) -> None:
        statements.append("COMMIT")

    event.listen(engine, "before_cursor_execute", count)
    event.listen(engine, "commit", commit)
    try:
        stored = store.store_many([NewMessage(f"m{n}".encode(), "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{n}{uid}")
                                   for n in range(50)])
    finally:
        event.remove(engine, "before_cursor_execute", count)
        event.remove(engine, "commit", commit)
    # SQLite does not promise RETURNING in VALUES order, so SQLAlchemy inserts row by row there (same transaction).
    inserts = 1 if engine.dialect.name == "postgresql" else 50
    assert [s for s in statements if s in ("SELECT", "INSERT", "UPDATE", "COMMIT")] == [
        "SELECT", *["INSERT"] * inserts, "COMMIT"]
    assert len({m.id for m in stored}) == 50 and all(m.status is MessageStatus.RECEIVED for m in stored)
    assert [store.raw(m.id) for m in stored[:3]] == [b"m0", b"m1", b"m2"]


def test_mark_many_sets_every_row_in_one_update_and_only_if_spares_rows_moved_on(store: MessageStore,
                                                                                uid: str) -> None:
    stored = store.store_many([NewMessage(f"m{n}".encode(), "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{n}{uid}")
                               for n in range(3)])
    store.mark(stored[0].id, MessageStatus.PROCESSED, account=f"A{uid}")  # an intake worker got there first
    store.mark_many([m.id for m in stored], MessageStatus.RECEIVED, "broker unavailable; not forwarded", "MSH",
                    only_if=MessageStatus.RECEIVED)
    after = [store.get(m.id) for m in stored]
    assert [(m.status, m.error, m.account) for m in after if m is not None] == [
        (MessageStatus.PROCESSED, None, f"A{uid}"),
        (MessageStatus.RECEIVED, "broker unavailable; not forwarded", None),
        (MessageStatus.RECEIVED, "broker unavailable; not forwarded", None)]
    store.mark_many([m.id for m in stored[1:]], MessageStatus.PROCESSED, claim_key=f"V{uid}")
    assert [m.id for m in store.search(claim_key=f"V{uid}", status=MessageStatus.PROCESSED)] == [
        stored[2].id, stored[1].id]
    store.mark_many([], MessageStatus.PROCESSED)  # nothing to do, no statement
    assert store.store_many([]) == []


def test_mark_each_sets_each_row_its_own_status_account_and_claim_key(store: MessageStore, uid: str) -> None:
    ids = [m.id for m in store.store_many([NewMessage(f"m{n}".encode(), "amqp", "", "hl7v2", "DFT^P03", "FAC",
                                                      f"E{n}{uid}") for n in range(3)])]
    store.mark_each([Mark(ids[0], MessageStatus.PROCESSED, account=f"A{uid}", claim_key=f"V1{uid}"),
                     Mark(ids[1], MessageStatus.REJECTED, "FT1-11 is not a number", "FT1[1]-11", account=f"B{uid}"),
                     Mark(ids[2], MessageStatus.DUPLICATE, account=f"A{uid}", claim_key=f"V2{uid}")])
    views = {m.id: m for m in store.search(sender="FAC", limit=1000) if m.id in ids}
    assert [(views[i].status, views[i].account, views[i].claim_key, views[i].error_location) for i in ids] == [
        (MessageStatus.PROCESSED, f"A{uid}", f"V1{uid}", None),
        (MessageStatus.REJECTED, f"B{uid}", None, "FT1[1]-11"),
        (MessageStatus.DUPLICATE, f"A{uid}", f"V2{uid}", None)]
    assert views[ids[1]].error == "FT1-11 is not a number"


def test_nul_in_text_values_is_kept_replaced_and_the_raw_bytes_as_they_came(store: MessageStore, uid: str) -> None:
    # PostgreSQL text cannot hold NUL: hostile input must still be kept and marked, never fail the store.
    raw = f"MSH|^~\\&|EMR|FAC|||||DFT^P03|C{uid}\x00|P|2.5\r".encode()
    [stored] = store.store_many([NewMessage(raw, "mllp", "peer\x00", "hl7v2", "DFT^P03", "FAC\x00", f"C{uid}\x00")])
    store.mark(stored.id, MessageStatus.REJECTED, "bad \x00 value", "PID-18", account=f"A{uid}\x00")
    store.mark_each([Mark(stored.id, MessageStatus.REJECTED, "bad \x00 value", "PID-18", f"A{uid}\x00", "V\x00")])
    [found] = store.search(control_id=f"C{uid}\ufffd")
    assert (found.id, found.sender, found.peer, found.account, found.claim_key, found.error) == (
        stored.id, "FAC\ufffd", "peer\ufffd", f"A{uid}\ufffd", "V\ufffd", "bad \ufffd value")
    assert store.raw(stored.id) == raw


def test_reserved_ids_name_the_rows_and_messages_are_listed_in_arrival_order(store: MessageStore, uid: str) -> None:
    reserved = store.reserve_ids(3)
    if store.sessions.kw["bind"].dialect.name != "postgresql":
        assert reserved is None  # SQLite has no sequence: the forwarder publishes after the commit there
        return
    assert reserved is not None and len(set(reserved)) == 3
    late = [NewMessage(b"late", "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{uid}")]
    early = [NewMessage(b"early", "mllp", "", "hl7v2", "DFT^P03", "FAC", f"C{uid}")]
    [first] = store.store_many(early)  # a newer id from the sequence, stored first
    [second] = store.store_many(late, row_ids=reserved[:1])  # an older reserved id, stored after it
    assert second.id == reserved[0] < first.id
    assert [m.id for m in store.search(control_id=f"C{uid}")] == [second.id, first.id]  # newest first
