"""ADT/BAR registrations and SIU appointments through the intake into the database (SQLite and PostgreSQL)."""

from __future__ import annotations

from decimal import Decimal

from hl7_factory import Dft, Ft1
from hl7_samples import sample, unique
from sqlalchemy import func, select

from api.bootstrap import Hub
from connectors.intake import Status
from router.adapters.orm import AccountRow, AppointmentRow, CoverageRow, PatientRow
from router.domain.model import Coverage
from router.queries import account_view


def coverages(hub: Hub, account: str) -> list[Coverage]:
    with hub.uow_factory() as uow:
        return uow.accounts.coverages(account)


def test_an_adt_a04_registers_patient_guarantor_and_coverages(hub: Hub, uid: str) -> None:
    assert hub.intake.receive_hl7(unique("ADT01-23.hl7", uid)).status is Status.ACCEPTED
    assert [(c.sequence, c.payer_id, c.member_id) for c in coverages(hub, f"A{uid}")] == [
        (1, "3", "123121234A"), (2, "9", "056269770")]
    with hub.sessions() as s:
        account = s.scalars(select(AccountRow).where(AccountRow.number == f"A{uid}")).one()
        patient = s.scalars(select(PatientRow).where(PatientRow.mrn == f"M{uid}")).one()
    assert account.guarantor == "DUCK, DONALD"
    assert (patient.family, patient.given, patient.account_id) == ("DUCK", "DONALD", account.id)


def test_a08_updates_coverage_in_place_and_never_duplicates_it(hub: Hub, uid: str) -> None:
    account = f"A{uid}"
    hub.intake.receive_hl7(sample("ADT-A04-01.hl7", control_id=f"C1{uid}", account=account, mrn=f"M{uid}"))
    update = sample("ADT-A08-01.hl7", control_id=f"C2{uid}", account=account, mrn=f"M{uid}")
    changed = update.replace(b"IC-1.31", b"AET-9").replace(b"Blue Cross Blue Shield of Texas", b"Aetna")
    for n, message in enumerate([update, changed, changed]):  # each under its own control id
        result = hub.intake.receive_hl7(message.replace(f"C2{uid}".encode(), f"C2{uid}-{n}".encode()))
        assert result.status is Status.ACCEPTED
    assert [(c.sequence, c.payer_id, c.payer_name) for c in coverages(hub, account)] == [(1, "AET-9", "Aetna")]
    with hub.sessions() as s:
        rows = s.scalar(select(func.count()).select_from(CoverageRow).join(AccountRow)
                        .where(AccountRow.number == account))
    assert rows == 1


def test_an_a08_without_insurance_leaves_coverage_alone_and_one_with_other_insurance_replaces_it(
        hub: Hub, uid: str) -> None:
    account = f"A{uid}"
    hub.intake.receive_hl7(unique("ADT01-23.hl7", uid))  # two coverages
    hub.intake.receive_hl7(sample("ADT-A08-02.hl7", control_id=f"C2{uid}", account=account, mrn=f"M{uid}"))
    assert len(coverages(hub, account)) == 2
    hub.intake.receive_hl7(sample("ADT-A08-01.hl7", control_id=f"C3{uid}", account=account, mrn=f"M{uid}"))
    assert [(c.sequence, c.payer_id) for c in coverages(hub, account)] == [(1, "IC-1.31")]


def test_charges_after_a_registration_bill_the_insurance_on_file(hub: Hub, uid: str) -> None:
    hub.intake.receive_hl7(unique("ADT-A04-01.hl7", uid))
    hub.intake.receive_hl7(Dft(f"D{uid}", f"A{uid}", visit=f"V{uid}", lines=[Ft1("90.00")]).er7())
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None
    assert (view.balances.insurance, view.balances.patient) == (Decimal("90.00"), Decimal("0.00"))


def test_siu_messages_keep_one_appointment_that_follows_its_status(hub: Hub, uid: str) -> None:
    for n, (name, status) in enumerate([("SIU-S12-01.hl7", "booked"), ("SIU-S14-01.hl7", "rescheduled"),
                                        ("SIU-S15-01.hl7", "cancelled")]):
        message = sample(name, control_id=f"C{n}{uid}", account=f"A{uid}", mrn=f"M{uid}", appointment=f"S{uid}")
        assert hub.intake.receive_hl7(message).status is Status.ACCEPTED
        with hub.sessions() as s:
            rows = s.execute(select(AppointmentRow.status, AccountRow.number).join(AccountRow)
                             .where(AppointmentRow.external_id == f"GHHSFacility:S{uid}")).all()
        assert [tuple(r) for r in rows] == [(status, f"A{uid}")]


def test_every_stored_registration_is_searchable_by_account(hub: Hub, uid: str) -> None:
    hub.intake.receive_hl7(unique("BAR-P01-01.hl7", uid))
    assert hub.intake.store is not None
    [stored] = hub.intake.store.search(account=f"A{uid}")
    assert (stored.message_type, stored.status.value, stored.control_id) == ("BAR^P01", "processed", f"C{uid}")
