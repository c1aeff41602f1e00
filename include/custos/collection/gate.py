"""The consent gate and minimisation (Art. 11), second layer of the collection pipeline.

Pure functions over rows that :func:`custos.collection.validate.validate_row` has already
normalised (countries upper-case, aware date-times, ``birth_date`` as ``date``, consent
purposes as a tuple). Nothing here touches a database, the vault, files or Airflow, so the
rules can be tested exhaustively and reused by ``custos ingest`` and the DAG alike.

Art. 11 asks for three things this module decides per customer:

- **consent**: data is collected only with an *express* consent (a channel listed in
  ``policy.express_channels``) that names at least one purpose of the vocabulary
  (``include/policy/purposes.yaml``), otherwise ``NO_CONSENT``;
- **minors**: a customer younger than ``policy.minor_age_for(country)`` also needs an
  express guardian consent, otherwise ``MINOR_WITHOUT_GUARDIAN_CONSENT``; only purposes
  both the minor and the guardian agreed to are in force;
- **minimisation**: only the fields the purposes in force need (plus the identifiers the
  pipeline cannot work without) are stored; the names of the others are reported.

A withdrawn consent stops its purposes; when a withdrawal leaves no purpose at all, the
customer is scheduled for deletion (:attr:`GateDecision.delete_requested`).

Nothing produced here carries a value from the input: decisions, tallies and error
messages hold reason codes, purpose ids, field names and counts only, so they can go to
logs and evidence as they are.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from custos.collection import contract as c
from custos.policy import Policy

CUSTOMER, GUARDIAN = "customer", "guardian"

# Kept whatever the purposes: without them a stored item has no key (external_id), no
# lineage (source_system, collected_at, consent_id) and no jurisdiction (country, which
# decides the minor age and the applicable law).
ALWAYS_KEPT: tuple[str, ...] = (
    "external_id",
    "source_system",
    "collected_at",
    "country",
    "consent_id",
)


class _HasFields(Protocol):
    """Anything naming the customer fields it needs (a :class:`custos.policy.Purpose`)."""

    @property
    def fields(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class ConsentView:
    """What the gate needs of one validated consent row, and nothing more.

    The gate does not need the notice version or any lineage, so it does not see them;
    keeping the view small also keeps it free of anything worth leaking. ``purposes`` is
    always a tuple (a ``;``-separated string is split, as in the landing contract).
    """

    consent_id: str
    external_id: str
    subject: str  # "customer" or "guardian"
    channel: str
    purposes: tuple[str, ...]
    granted_at: datetime | date
    withdrawn_at: datetime | date | None = None

    def __post_init__(self) -> None:
        purposes: Any = self.purposes
        if isinstance(purposes, str):
            purposes = (p.strip() for p in purposes.split(";") if p.strip())
        object.__setattr__(self, "purposes", tuple(purposes))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ConsentView:
        """The view of a normalised ``consents`` row (extra keys are ignored)."""
        return cls(
            consent_id=row["consent_id"],
            external_id=row["external_id"],
            subject=row["subject"],
            channel=row["channel"],
            purposes=row["purposes"],
            granted_at=row["granted_at"],
            withdrawn_at=row.get("withdrawn_at"),
        )

    def is_express(self, policy: Policy) -> bool:
        """Express means one of the policy's channels; compared case-insensitively because
        the contract leaves ``channel`` free text and platforms differ in spelling."""
        return (self.channel or "").strip().casefold() in _casefolded(policy.express_channels)

    def granted_by(self, today: date) -> bool:
        """A consent dated after ``today`` is not (yet) a consent."""
        return _day(self.granted_at) <= today

    def withdrawn_by(self, today: date) -> bool:
        """Withdrawn on or before ``today``: from that day on its purposes are stopped."""
        return self.withdrawn_at is not None and _day(self.withdrawn_at) <= today


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on one customer row: codes, purpose ids and field names only.

    It holds no value of the row on purpose, so it can be logged and kept as evidence.
    ``kept_fields`` / ``dropped_fields`` are empty when the row is not accepted: nothing
    of it is stored in the vault (it goes to quarantine whole, under ``reason``).
    """

    accepted: bool
    reason: str | None  # a contract reason code (GATE_REASONS) when not accepted
    purposes: tuple[str, ...] = ()  # purposes in force, in vocabulary order
    minor: bool = False
    delete_requested: bool = False
    kept_fields: tuple[str, ...] = ()
    dropped_fields: tuple[str, ...] = ()


@functools.lru_cache(maxsize=16)
def _casefolded(channels: frozenset[str]) -> frozenset[str]:
    return frozenset(ch.casefold() for ch in channels)


def _day(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _today(today: date | datetime) -> date:
    return today.date() if isinstance(today, datetime) else today


def _birth_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def age_on(birth_date: date, today: date) -> int:
    """Completed years on ``today``: the birthday itself counts (the age goes up that day).

    Someone born on 29 February turns a year older on 1 March in common years, the usual
    legal reading and what the tuple comparison below gives.
    """
    return (
        today.year
        - birth_date.year
        - ((today.month, today.day) < (birth_date.month, birth_date.day))
    )


def is_minor(customer: Mapping[str, Any], *, policy: Policy, today: date | datetime) -> bool:
    """Whether the customer is below the minor age of their country on ``today``.

    An unknown (absent or unreadable) birth date means *not a minor*: the contract makes
    ``birth_date`` optional and only ``marketing`` needs it, so demanding it would make the
    platforms collect more than the purposes need. The platforms' own age checks cover
    that case; the gate applies the rule whenever the age is known.
    """
    born = _birth_date(customer.get("birth_date"))
    if born is None:
        return False
    country = customer.get("country") or ""
    return age_on(born, _today(today)) < policy.minor_age_for(country)


def _purposes_of(
    consents: Iterable[ConsentView],
    *,
    external_id: Any,
    subject: str,
    policy: Policy,
    today: date,
    count_withdrawn: bool,
) -> set[str]:
    """Vocabulary purposes of the subject's express consents granted by ``today``;
    withdrawn ones only when ``count_withdrawn`` (to tell a withdrawal from no consent)."""
    found: set[str] = set()
    for consent in consents:
        if consent.external_id != external_id or consent.subject != subject:
            continue
        if not consent.is_express(policy) or not consent.granted_by(today):
            continue
        if consent.withdrawn_by(today) and not count_withdrawn:
            continue
        found.update(p for p in consent.purposes if p in policy.purposes)
    return found


def _in_vocabulary_order(purposes: set[str], policy: Policy) -> tuple[str, ...]:
    return tuple(p for p in policy.purposes if p in purposes)


def minimise(
    customer: Mapping[str, Any], purposes: Iterable[_HasFields]
) -> tuple[dict[str, Any], list[str]]:
    """Keep only what the purposes need (Art. 11: collect the minimum necessary).

    ``purposes`` are the policy's :class:`~custos.policy.Purpose` objects in force (their
    ``fields`` come from ``purposes.yaml``); :data:`ALWAYS_KEPT` is kept too. Returns the
    kept row and the names of the dropped fields that held a value, in row order — an
    empty field carried no data, so not storing it is not a drop worth reporting.
    """
    needed = set(ALWAYS_KEPT)
    for purpose in purposes:
        needed.update(purpose.fields)
    kept = {name: value for name, value in customer.items() if name in needed}
    dropped = [
        name
        for name, value in customer.items()
        if name not in needed and value is not None and value != ""
    ]
    return kept, dropped


def purposes_in_force(
    consents: Sequence[ConsentView],
    *,
    external_id: Any,
    minor: bool,
    policy: Policy,
    today: date | datetime,
) -> tuple[tuple[str, ...], str | None, bool]:
    """``(purposes, reason, delete_requested)`` for one customer, by the rules of
    :func:`decide_customer`: purposes in force in vocabulary order, or ``()`` with the reason
    code (NO_CONSENT, MINOR_WITHOUT_GUARDIAN_CONSENT) and whether withdrawals are what left
    none. Used on its own for customers already in the vault (``minor`` as stored)."""
    day = _today(today)

    def of(subject: str, *, count_withdrawn: bool) -> set[str]:
        return _purposes_of(
            consents,
            external_id=external_id,
            subject=subject,
            policy=policy,
            today=day,
            count_withdrawn=count_withdrawn,
        )

    own_now = of(CUSTOMER, count_withdrawn=False)
    if not own_now:
        return (), c.NO_CONSENT, bool(of(CUSTOMER, count_withdrawn=True))
    purposes = own_now
    if minor:
        purposes = own_now & of(GUARDIAN, count_withdrawn=False)
        if not purposes:
            before = of(CUSTOMER, count_withdrawn=True) & of(GUARDIAN, count_withdrawn=True)
            return (), c.MINOR_WITHOUT_GUARDIAN_CONSENT, bool(before)
    return _in_vocabulary_order(purposes, policy), None, False


def decide_customer(
    customer: Mapping[str, Any],
    consents: Sequence[ConsentView],
    *,
    policy: Policy,
    today: date | datetime,
) -> GateDecision:
    """Decide whether a validated customer row may be stored, for which purposes, and how.

    - Purposes in force are those of the customer's express consents (``subject`` customer,
      channel in ``policy.express_channels``) that are in the vocabulary, granted by
      ``today`` and not withdrawn by ``today``. None → ``NO_CONSENT``.
    - A minor (see :func:`is_minor`; unknown birth date → not a minor) also needs an
      express guardian consent in force; the purposes in force are then those both agreed
      to. None in common → ``MINOR_WITHOUT_GUARDIAN_CONSENT``.
    - ``delete_requested`` is set when purposes existed before withdrawals and none are
      left after them: processing must stop and any stored copy be deleted. Such a row is
      not accepted either (no purpose, no lawful basis to store it).
    - Accepted rows are minimised (:func:`minimise`) and the decision names the kept and
      dropped fields.

    Consents of another ``external_id`` are ignored, so a caller may pass a whole batch.
    """
    day = _today(today)
    minor = is_minor(customer, policy=policy, today=day)
    in_force, reason, delete_requested = purposes_in_force(
        consents, external_id=customer.get("external_id"), minor=minor, policy=policy, today=day
    )
    if reason is not None:
        return GateDecision(
            accepted=False, reason=reason, minor=minor, delete_requested=delete_requested
        )
    kept, dropped = minimise(customer, (policy.purposes[p] for p in in_force))
    return GateDecision(
        accepted=True,
        reason=None,
        purposes=in_force,
        minor=minor,
        kept_fields=tuple(kept),
        dropped_fields=tuple(dropped),
    )


@dataclass
class GateTally:
    """Counts for the batch summary and evidence: nothing is lost, nothing is hidden.

    Every row the batch received ends up either accepted or quarantined under exactly one
    reason code; :meth:`reconciles` checks ``received == accepted + sum(quarantined)``.
    Dropped field names are counted over accepted rows (the data that was not stored).
    """

    accepted: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    dropped_fields: Counter[str] = field(default_factory=Counter)
    delete_requested: int = 0

    def add(self, decision: GateDecision) -> None:
        """Count one gate decision."""
        if decision.delete_requested:
            self.delete_requested += 1
        if decision.accepted:
            self.accepted += 1
            self.dropped_fields.update(decision.dropped_fields)
        else:
            self.quarantine(decision.reason or c.NO_CONSENT)

    def quarantine(self, code: str, count: int = 1) -> None:
        """Count rows quarantined before the gate (validation codes, UNKNOWN_CUSTOMER)."""
        if code not in c.REASONS:
            raise ValueError("not a reason code of the landing contract")
        if count < 0:
            raise ValueError("a quarantine count cannot be negative")
        self.quarantined[code] += count

    def reconciles(self, received: int) -> bool:
        """True when every received row is accounted for; otherwise raise.

        Raising (not returning False, not a bare ``assert`` that ``python -O`` removes)
        because a lost row must stop the batch before anything is committed.
        """
        total = self.accepted + sum(self.quarantined.values())
        if received != total:
            raise AssertionError(
                f"tally does not reconcile: received {received} != accepted {self.accepted}"
                f" + quarantined {total - self.accepted}"
            )
        return True

    def as_dict(self) -> dict[str, Any]:
        """The counts as the ``--json`` summary shows them (sorted, zero counts left out)."""
        return {
            "accepted": self.accepted,
            "quarantined": {k: v for k, v in sorted(self.quarantined.items()) if v},
            "dropped_fields": {k: v for k, v in sorted(self.dropped_fields.items()) if v},
            "delete_requested": self.delete_requested,
        }
