"""The consent gate and minimisation (issue 4, Art. 11): exact outcomes for every rule."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from custos.collection import contract as c
from custos.collection.gate import (
    ALWAYS_KEPT,
    ConsentView,
    GateDecision,
    GateTally,
    age_on,
    decide_customer,
    is_minor,
    minimise,
)
from custos.collection.validate import validate_row
from custos.policy import load_policy

POLICY = load_policy(Path(__file__).resolve().parents[1] / "include" / "policy")
TODAY = date(2026, 6, 15)
GRANTED = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)


def customer(external_id: str = "C1", **overrides) -> dict:
    """A normalised customer row (as validate_row returns it) with every field set."""
    row = {
        "external_id": external_id,
        "source_system": "shopify",
        "collected_at": datetime(2026, 1, 10, 9, 0, tzinfo=UTC),
        "country": "DE",
        "name": "Erika Mustermann",
        "gender": "f",
        "email": "erika@example.de",
        "phone": "+4930123456",
        "address_line": "Heidestr. 17",
        "city": "Berlin",
        "postal_code": "10557",
        "birth_date": date(1980, 5, 1),
        "passport_number": "C01X00T47",
        "national_id": "T220001293",
        "consent_id": "K1",
    }
    row.update(overrides)
    return row


def consent(
    purposes: tuple[str, ...] | str = ("order_fulfilment",),
    *,
    external_id: str = "C1",
    subject: str = "customer",
    channel: str = "popup",
    consent_id: str = "K1",
    granted_at: datetime = GRANTED,
    withdrawn_at: datetime | None = None,
) -> ConsentView:
    return ConsentView(
        consent_id=consent_id,
        external_id=external_id,
        subject=subject,
        channel=channel,
        purposes=purposes,
        granted_at=granted_at,
        withdrawn_at=withdrawn_at,
    )


def decide(row: dict, consents: list[ConsentView], today: date = TODAY) -> GateDecision:
    return decide_customer(row, consents, policy=POLICY, today=today)


def born_years_ago(years: int, today: date = TODAY) -> date:
    return today.replace(year=today.year - years)


# ---- consent ------------------------------------------------------------------------------


def test_adult_with_express_consent_is_accepted() -> None:
    decision = decide(customer(), [consent(("order_fulfilment", "payment"))])
    assert decision == GateDecision(
        accepted=True,
        reason=None,
        purposes=("order_fulfilment", "payment"),
        minor=False,
        delete_requested=False,
        kept_fields=(
            "external_id",
            "source_system",
            "collected_at",
            "country",
            "name",
            "email",
            "phone",
            "address_line",
            "city",
            "postal_code",
            "consent_id",
        ),
        dropped_fields=("gender", "birth_date", "passport_number", "national_id"),
    )


@pytest.mark.parametrize("channel", ["popup", "agreement", "checkbox", " Checkbox "])
def test_every_express_channel_counts(channel: str) -> None:
    decision = decide(customer(), [consent(channel=channel)])
    assert (decision.accepted, decision.reason) == (True, None)


@pytest.mark.parametrize("channel", ["implied", "browsing", "pre-ticked", ""])
def test_implied_channel_is_no_consent(channel: str) -> None:
    decision = decide(customer(), [consent(channel=channel)])
    assert decision == GateDecision(accepted=False, reason=c.NO_CONSENT)


def test_no_consent_at_all_is_no_consent() -> None:
    assert decide(customer(), []) == GateDecision(accepted=False, reason=c.NO_CONSENT)


def test_unknown_purpose_only_is_no_consent() -> None:
    decision = decide(customer(), [consent(("selling_to_third_parties",))])
    assert decision == GateDecision(accepted=False, reason=c.NO_CONSENT)


def test_unknown_purposes_are_ignored_next_to_known_ones() -> None:
    decision = decide(customer(), [consent(("selling_to_third_parties", "payment"))])
    assert (decision.accepted, decision.purposes) == (True, ("payment",))


def test_guardian_consent_alone_is_not_the_customers_consent() -> None:
    decision = decide(customer(), [consent(subject="guardian")])
    assert decision == GateDecision(accepted=False, reason=c.NO_CONSENT)


def test_consents_of_other_customers_are_ignored() -> None:
    decision = decide(customer("C1"), [consent(external_id="C2")])
    assert decision == GateDecision(accepted=False, reason=c.NO_CONSENT)


def test_consent_granted_after_today_is_not_in_force() -> None:
    later = datetime(2026, 6, 16, tzinfo=UTC)
    decision = decide(customer(), [consent(granted_at=later)])
    assert decision == GateDecision(accepted=False, reason=c.NO_CONSENT)


def test_purposes_are_the_union_of_express_consents_in_vocabulary_order() -> None:
    consents = [
        consent(("marketing",), consent_id="K1"),
        consent(("payment", "order_fulfilment"), consent_id="K2"),
        consent(("customs_clearance",), consent_id="K3", channel="implied"),
    ]
    decision = decide(customer(), consents)
    assert decision.purposes == ("order_fulfilment", "payment", "marketing")


def test_purposes_given_as_a_string_are_split() -> None:
    assert consent("payment; marketing").purposes == ("payment", "marketing")


def test_consent_view_from_a_validated_row() -> None:
    row, findings = validate_row(
        "consents",
        {
            "consent_id": "K9",
            "external_id": "C1",
            "subject": "Customer",
            "notice_version": "v3",
            "purposes": "payment;marketing",
            "channel": "popup",
            "granted_at": "2026-01-10T09:30:00",
        },
        today=TODAY,
        policy=POLICY,
    )
    assert findings == []
    view = ConsentView.from_row(row)
    assert view == ConsentView("K9", "C1", "customer", "popup", ("payment", "marketing"), GRANTED)
    assert decide(customer(), [view]).purposes == ("payment", "marketing")


# ---- withdrawal -------------------------------------------------------------------------


def test_withdrawn_consent_removes_its_purposes() -> None:
    consents = [
        consent(("order_fulfilment",), consent_id="K1"),
        consent(
            ("marketing", "personalisation"),
            consent_id="K2",
            withdrawn_at=datetime(2026, 6, 1, tzinfo=UTC),
        ),
    ]
    decision = decide(customer(), consents)
    assert decision.accepted is True
    assert decision.purposes == ("order_fulfilment",)
    assert decision.delete_requested is False
    assert "birth_date" in decision.dropped_fields  # marketing no longer in force


def test_withdrawal_takes_effect_on_its_day_not_before() -> None:
    withdrawn = consent(withdrawn_at=datetime(2026, 6, 15, 23, 0, tzinfo=UTC))
    assert decide(customer(), [withdrawn], today=date(2026, 6, 14)).accepted is True
    assert decide(customer(), [withdrawn], today=date(2026, 6, 15)).accepted is False


def test_all_consents_withdrawn_requests_deletion() -> None:
    withdrawn = datetime(2026, 6, 1, tzinfo=UTC)
    consents = [
        consent(("order_fulfilment",), consent_id="K1", withdrawn_at=withdrawn),
        consent(("marketing",), consent_id="K2", withdrawn_at=withdrawn),
    ]
    decision = decide(customer(), consents)
    assert decision == GateDecision(
        accepted=False, reason=c.NO_CONSENT, minor=False, delete_requested=True
    )


def test_withdrawn_and_never_express_is_still_a_deletion() -> None:
    consents = [
        consent(consent_id="K1", withdrawn_at=datetime(2026, 6, 1, tzinfo=UTC)),
        consent(consent_id="K2", channel="implied"),
    ]
    assert decide(customer(), consents).delete_requested is True


def test_never_consented_is_not_a_deletion() -> None:
    assert decide(customer(), [consent(channel="implied")]).delete_requested is False


# ---- minors ------------------------------------------------------------------------------


def test_minor_age_thresholds_come_from_policy() -> None:
    assert POLICY.minor_age_for("DE") == 16  # GDPR Art. 8
    assert POLICY.minor_age_for("US") == 14  # PIPL default
    assert POLICY.minor_age_for("CN") == 14


@pytest.mark.parametrize(
    ("country", "age", "minor"),
    [("DE", 15, True), ("DE", 16, False), ("US", 13, True), ("US", 14, False), ("US", 15, False)],
)
def test_minor_depends_on_country(country: str, age: int, minor: bool) -> None:
    row = customer(country=country, birth_date=born_years_ago(age))
    assert is_minor(row, policy=POLICY, today=TODAY) is minor


def test_minor_without_guardian_is_quarantined() -> None:
    row = customer(country="DE", birth_date=born_years_ago(15))
    decision = decide(row, [consent(("order_fulfilment", "payment"))])
    assert decision == GateDecision(
        accepted=False, reason=c.MINOR_WITHOUT_GUARDIAN_CONSENT, minor=True
    )


def test_us_minor_without_guardian_is_quarantined_but_us_15_is_not() -> None:
    minor = customer(country="US", phone=None, birth_date=born_years_ago(13))
    adult = customer(country="US", phone=None, birth_date=born_years_ago(15))
    assert decide(minor, [consent()]).reason == c.MINOR_WITHOUT_GUARDIAN_CONSENT
    assert decide(adult, [consent()]).accepted is True


def test_minor_with_guardian_gets_the_intersection_of_purposes() -> None:
    row = customer(country="DE", birth_date=born_years_ago(12))
    consents = [
        consent(("order_fulfilment", "payment", "marketing"), consent_id="K1"),
        consent(
            ("payment", "order_fulfilment", "customs_clearance"),
            consent_id="K2",
            subject="guardian",
            channel="agreement",
        ),
    ]
    decision = decide(row, consents)
    assert decision.accepted is True
    assert decision.reason is None
    assert decision.minor is True
    assert decision.purposes == ("order_fulfilment", "payment")
    assert "national_id" in decision.dropped_fields  # customs only by the guardian
    assert "birth_date" in decision.dropped_fields  # marketing only by the minor


def test_minor_guardian_consent_must_be_express() -> None:
    row = customer(birth_date=born_years_ago(12))
    consents = [consent(), consent(consent_id="K2", subject="guardian", channel="implied")]
    assert decide(row, consents).reason == c.MINOR_WITHOUT_GUARDIAN_CONSENT


def test_minor_guardian_consent_on_other_purposes_does_not_cover() -> None:
    row = customer(birth_date=born_years_ago(12))
    consents = [
        consent(("marketing",)),
        consent(("payment",), consent_id="K2", subject="guardian"),
    ]
    decision = decide(row, consents)
    assert decision == GateDecision(
        accepted=False, reason=c.MINOR_WITHOUT_GUARDIAN_CONSENT, minor=True
    )


def test_minor_guardian_withdrawal_requests_deletion() -> None:
    row = customer(birth_date=born_years_ago(12))
    consents = [
        consent(),
        consent(consent_id="K2", subject="guardian", withdrawn_at=datetime(2026, 6, 1, tzinfo=UTC)),
    ]
    decision = decide(row, consents)
    assert decision == GateDecision(
        accepted=False,
        reason=c.MINOR_WITHOUT_GUARDIAN_CONSENT,
        minor=True,
        delete_requested=True,
    )


def test_minor_without_any_own_consent_is_no_consent() -> None:
    row = customer(birth_date=born_years_ago(12))
    decision = decide(row, [consent(subject="guardian")])
    assert decision == GateDecision(accepted=False, reason=c.NO_CONSENT, minor=True)


@pytest.mark.parametrize("birth_date", [None, "", "not a date"])
def test_unknown_birth_date_is_not_a_minor(birth_date) -> None:
    decision = decide(customer(birth_date=birth_date), [consent()])
    assert (decision.accepted, decision.minor) == (True, False)


# ---- birthday boundaries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("born", "today", "age"),
    [
        (date(2010, 6, 15), date(2026, 6, 14), 15),  # day before the 16th birthday
        (date(2010, 6, 15), date(2026, 6, 15), 16),  # on the birthday
        (date(2010, 6, 15), date(2026, 6, 16), 16),
        (date(2010, 12, 31), date(2026, 1, 1), 15),
        (date(2008, 2, 29), date(2026, 2, 28), 17),  # leap-day birthday, common year
        (date(2008, 2, 29), date(2026, 3, 1), 18),
        (date(2008, 2, 29), date(2028, 2, 29), 20),
    ],
)
def test_age_on_birthday_boundaries(born: date, today: date, age: int) -> None:
    assert age_on(born, today) == age


def test_de_turns_adult_on_the_16th_birthday() -> None:
    row = customer(country="DE", birth_date=date(2010, 6, 15))
    assert decide(row, [consent()], today=date(2026, 6, 14)).reason == (
        c.MINOR_WITHOUT_GUARDIAN_CONSENT
    )
    assert decide(row, [consent()], today=date(2026, 6, 15)).accepted is True


def test_us_turns_adult_on_the_14th_birthday() -> None:
    row = customer(country="US", phone=None, birth_date=date(2012, 6, 15))
    assert is_minor(row, policy=POLICY, today=date(2026, 6, 14)) is True
    assert is_minor(row, policy=POLICY, today=date(2026, 6, 15)) is False
    assert is_minor(row, policy=POLICY, today=datetime(2026, 6, 15, 0, 5, tzinfo=UTC)) is False


# ---- minimisation -----------------------------------------------------------------------------


def test_national_id_dropped_without_customs_clearance() -> None:
    decision = decide(customer(), [consent(("order_fulfilment",))])
    assert "national_id" in decision.dropped_fields
    assert "passport_number" in decision.dropped_fields
    assert "national_id" not in decision.kept_fields


def test_national_id_kept_with_customs_clearance() -> None:
    decision = decide(customer(), [consent(("customs_clearance",))])
    assert decision.kept_fields == (
        "external_id",
        "source_system",
        "collected_at",
        "country",
        "name",
        "address_line",
        "city",
        "postal_code",
        "passport_number",
        "national_id",
        "consent_id",
    )
    assert decision.dropped_fields == ("gender", "email", "phone", "birth_date")


def test_personalisation_keeps_only_identifiers() -> None:
    decision = decide(customer(), [consent(("personalisation",))])
    assert decision.kept_fields == ALWAYS_KEPT
    assert decision.dropped_fields == (
        "name",
        "gender",
        "email",
        "phone",
        "address_line",
        "city",
        "postal_code",
        "birth_date",
        "passport_number",
        "national_id",
    )


def test_minimise_returns_kept_values_and_dropped_names() -> None:
    row = customer(gender=None)
    kept, dropped = minimise(row, [POLICY.purposes["fraud_prevention"]])
    assert kept == {
        "external_id": "C1",
        "source_system": "shopify",
        "collected_at": row["collected_at"],
        "country": "DE",
        "email": "erika@example.de",
        "phone": "+4930123456",
        "consent_id": "K1",
    }
    # gender was empty: nothing was dropped there
    assert dropped == [
        "name",
        "address_line",
        "city",
        "postal_code",
        "birth_date",
        "passport_number",
        "national_id",
    ]


def test_minimise_with_no_purpose_keeps_identifiers_only() -> None:
    kept, dropped = minimise(customer(), [])
    assert tuple(kept) == ALWAYS_KEPT
    assert len(dropped) == 10


def test_rejected_rows_store_nothing() -> None:
    decision = decide(customer(), [])
    assert (decision.kept_fields, decision.dropped_fields) == ((), ())


# ---- tally ------------------------------------------------------------------------------------


def test_tally_counts_accepted_reasons_and_dropped_fields() -> None:
    tally = GateTally()
    withdrawn = datetime(2026, 6, 1, tzinfo=UTC)
    minor = {"country": "DE", "birth_date": born_years_ago(15)}
    cases = [
        (customer("A"), [consent(("order_fulfilment",), external_id="A")]),
        (customer("B"), [consent(("customs_clearance",), external_id="B")]),
        (customer("C", gender=None), [consent(("order_fulfilment",), external_id="C")]),
        (customer("D"), [consent(external_id="D", channel="implied")]),
        (customer("E"), [consent(external_id="E", withdrawn_at=withdrawn)]),
        (customer("F", **minor), [consent(external_id="F")]),
    ]
    for row, consents in cases:
        tally.add(decide(row, consents))
    tally.quarantine(c.INVALID_EMAIL)
    tally.quarantine(c.UNKNOWN_CUSTOMER, 2)
    assert tally.as_dict() == {
        "accepted": 3,
        "quarantined": {
            c.INVALID_EMAIL: 1,
            c.MINOR_WITHOUT_GUARDIAN_CONSENT: 1,
            c.NO_CONSENT: 2,
            c.UNKNOWN_CUSTOMER: 2,
        },
        "dropped_fields": {
            "birth_date": 3,
            "email": 1,
            "gender": 2,
            "national_id": 2,
            "passport_number": 2,
            "phone": 1,
        },
        "delete_requested": 1,
    }
    assert tally.reconciles(9) is True


def test_tally_reconciliation_fails_loudly_without_values() -> None:
    tally = GateTally()
    tally.add(decide(customer(), [consent()]))
    tally.add(decide(customer(), []))
    assert tally.reconciles(2) is True
    with pytest.raises(AssertionError, match=r"received 3 != accepted 1 \+ quarantined 1"):
        tally.reconciles(3)


def test_empty_tally_reconciles_with_zero() -> None:
    assert GateTally().reconciles(0) is True
    with pytest.raises(AssertionError):
        GateTally().reconciles(1)


def test_tally_refuses_unknown_codes_and_negative_counts() -> None:
    tally = GateTally()
    with pytest.raises(ValueError, match="not a reason code"):
        tally.quarantine("SECRET-VALUE-123")
    with pytest.raises(ValueError, match="negative"):
        tally.quarantine(c.NO_CONSENT, -1)
    assert tally.as_dict()["quarantined"] == {}


# ---- no personal data in any message -------------------------------------------------------


CANARIES = {
    "external_id": "CANARY-EXT-7f3a",
    "source_system": "CANARY-SRC-7f3a",
    "name": "CANARY-NAME-7f3a",
    "gender": "CANARY-GENDER-7f3a",
    "email": "canary7f3a@example.de",
    "phone": "+4930999888",
    "address_line": "CANARY-STREET-7f3a",
    "city": "CANARY-CITY-7f3a",
    "postal_code": "CANARY-PC-7f3a",
    "passport_number": "CANARY-PASS-7f3a",
    "national_id": "CANARY-NID-7f3a",
    "consent_id": "CANARY-CID-7f3a",
}


def test_no_message_contains_a_value_from_the_input() -> None:
    born = date(2011, 3, 7)
    adult = customer(**CANARIES)
    minor = customer(**CANARIES, birth_date=born)
    own = consent(
        ("customs_clearance", "marketing"),
        external_id=CANARIES["external_id"],
        consent_id="CANARY-K-7f3a",
        channel="CANARY-CHANNEL-7f3a",
    )
    express = consent(
        ("customs_clearance",), external_id=CANARIES["external_id"], consent_id="CANARY-K2-7f3a"
    )
    texts: list[str] = []
    tally = GateTally()
    for row, consents in [(adult, [own]), (adult, [own, express]), (minor, [express])]:
        decision = decide(row, consents)
        tally.add(decision)
        texts += [repr(decision), str(decision)]
    texts += [repr(tally), str(tally.as_dict())]
    try:
        tally.reconciles(99)
    except AssertionError as exc:
        texts.append(str(exc))
    try:
        tally.quarantine("x")
    except ValueError as exc:
        texts.append(str(exc))
    blob = "\n".join(texts)
    for value in [*CANARIES.values(), "CANARY-K-7f3a", "CANARY-CHANNEL-7f3a", born.isoformat()]:
        assert value not in blob
    assert "CANARY" not in blob and "7f3a" not in blob
