"""Set-based checks for the Art. 11, 12 and 13 controls.

Each check is one SQL statement (or one per table for the storage scan) that returns only
the violating rows as (department, pseudonymous subject id) — never a query per customer,
never personal data. Collection and storage checks judge the vault's state at the end of
the period; the use check reviews the uses recorded during the period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, String, bindparam, inspect, text

from custos.vault.constraints import constraint_name, protected_columns
from custos.vault.models import Base


@dataclass(frozen=True)
class CheckContext:
    period: str
    start: datetime
    end: datetime
    express_channels: tuple[str, ...]
    retention_rules: tuple[str, ...]
    owner: str  # the control's owner department, for checks attributed to the owner
    policy: object = None  # the whole Policy, for checks that need thresholds or the matrix


@dataclass
class CheckOutcome:
    """Violations of one control: (department, subject id, detail) rows."""

    violations: list[tuple[str, str, str]] = field(default_factory=list)

    def extend(self, rows, detail: str) -> None:
        self.violations.extend((dept, subject, detail) for dept, subject in rows)


_ACTIVE_CUSTOMERS = "c.status = 'active' AND c.collected_at < :end"
_ACTIVE_CONSENT = "k.granted_at < :end AND (k.withdrawn_at IS NULL OR k.withdrawn_at >= :end)"


@dataclass(frozen=True)
class SqlCheck:
    """A check that is one SQL statement selecting (department, subject id) of each
    violation. ``expanding`` names parameters that are lists (``IN :name``)."""

    sql: str
    detail: str
    expanding: tuple[str, ...] = ()

    def __call__(self, conn: Connection, ctx: CheckContext) -> CheckOutcome:
        statement = text(self.sql)
        params: dict = {"start": ctx.start, "end": ctx.end}
        for name in self.expanding:
            statement = statement.bindparams(bindparam(name, expanding=True))
            params[name] = list(getattr(ctx, name))
        outcome = CheckOutcome()
        outcome.extend(conn.execute(statement, params), self.detail)
        return outcome


consent_present = SqlCheck(
    f"""SELECT c.collected_by, c.id FROM customers c
    WHERE {_ACTIVE_CUSTOMERS} AND NOT EXISTS (
        SELECT 1 FROM consents k WHERE k.customer_id = c.id AND k.subject = 'customer'
        AND {_ACTIVE_CONSENT})""",
    "no customer consent in force",
)

consent_express = SqlCheck(
    f"""SELECT c.collected_by, c.id FROM customers c
    WHERE {_ACTIVE_CUSTOMERS} AND EXISTS (
        SELECT 1 FROM consents k WHERE k.customer_id = c.id AND {_ACTIVE_CONSENT}
        AND k.channel NOT IN :express_channels)""",
    "consent in force was not given expressly",
    expanding=("express_channels",),
)

source_recorded = SqlCheck(
    f"""SELECT c.collected_by, c.id FROM customers c
    WHERE {_ACTIVE_CUSTOMERS} AND (
        c.source_system IS NULL OR c.source_system = '' OR EXISTS (
            SELECT 1 FROM consents k WHERE k.customer_id = c.id
            AND (k.source IS NULL OR k.source = '')))""",
    "source of customer data or consent not recorded",
)

minor_guardian_consent = SqlCheck(
    f"""SELECT c.collected_by, c.id FROM customers c
    WHERE {_ACTIVE_CUSTOMERS} AND c.is_minor = TRUE AND NOT EXISTS (
        SELECT 1 FROM consents k WHERE k.customer_id = c.id AND k.subject = 'guardian'
        AND {_ACTIVE_CONSENT})""",
    "minor without guardian consent in force",
)

retention_assigned = SqlCheck(
    f"""SELECT c.collected_by, c.id FROM customers c
    WHERE {_ACTIVE_CUSTOMERS} AND (
        c.retention_rule IS NULL OR c.retention_rule NOT IN :retention_rules OR EXISTS (
            SELECT 1 FROM data_keys d WHERE d.customer_id = c.id
            AND d.bucket LIKE '%/unassigned'))""",
    "no retention rule assigned",
    expanding=("retention_rules",),
)

# Uses are judged against the consents in force at the moment of use, not at period end.
use_within_consent = SqlCheck(
    """SELECT u.department_id, u.customer_id FROM data_uses u
    WHERE u.used_at >= :start AND u.used_at < :end AND NOT EXISTS (
        SELECT 1 FROM consents k
        WHERE k.customer_id = u.customer_id AND k.subject = 'customer'
        AND (';' || k.purposes || ';') LIKE ('%;' || u.purpose || ';%')
        AND k.granted_at <= u.used_at
        AND (k.withdrawn_at IS NULL OR k.withdrawn_at > u.used_at))""",
    "use for a purpose without consent in force at the time",
)


# -- storage: no plaintext personal information -------------------------------------------
SYSTEM_TABLES = {"alembic_version"}
EMAIL_LIKE = "%_@_%._%"


def _subject_column(table) -> str:
    return "customer_id" if "customer_id" in table.c else table.primary_key.columns[0].name


# An international phone number, with or without separators: +1 415-555-0100, +4915123456789.
PHONE_PATTERN = r"\+[0-9][0-9 ().-]{6,}[0-9]"


def _looks_like_pi_sql(dialect: str, column: str) -> str:
    # LIKE first: cheap, and it spares the regular expression on almost every row.
    regex = "~" if dialect == "postgresql" else "REGEXP"
    phone = f"({column} LIKE '%+%' AND {column} {regex} '{PHONE_PATTERN}')"
    return f"({column} LIKE '{EMAIL_LIKE}' OR {phone})"


def no_plaintext_pi(conn: Connection, ctx: CheckContext) -> CheckOutcome:
    """Three ways plaintext could get in: a column nobody classified; a ciphertext column
    whose database constraint (only Custos ciphertexts accepted, see
    ``custos.vault.constraints``) is missing; or a metadata text column holding an e-mail
    address or phone number (scanned)."""
    outcome = CheckOutcome()
    dialect = conn.dialect.name
    live = inspect(conn)
    declared = Base.metadata.tables
    live_tables = set(live.get_table_names())
    for table_name in sorted(live_tables - SYSTEM_TABLES):
        model = declared.get(table_name)
        known = set(model.c.keys()) if model is not None else set()
        for column in live.get_columns(table_name):
            if column["name"] not in known:
                outcome.violations.append(
                    (
                        ctx.owner,
                        f"schema:{table_name}.{column['name']}",
                        "column not classified in the vault schema (may hold plaintext)",
                    )
                )
    constraints: dict[str, set[str]] = {}
    for table_name, column in protected_columns(Base.metadata):
        if table_name not in constraints:
            constraints[table_name] = (
                {c["name"] for c in live.get_check_constraints(table_name) if c.get("name")}
                if table_name in live_tables
                else set()
            )
        if constraint_name(table_name, column) not in constraints[table_name]:
            outcome.violations.append(
                (
                    ctx.owner,
                    f"schema:{table_name}.{column}",
                    "ciphertext column lacks its format constraint: plaintext could be written",
                )
            )
    for table in declared.values():
        columns = [
            c.name for c in table.c if c.info.get("pi") == "metadata" and isinstance(c.type, String)
        ]
        if not columns:
            continue
        condition = " OR ".join(_looks_like_pi_sql(dialect, name) for name in columns)
        rows = conn.execute(
            text(f"SELECT {_subject_column(table)} FROM {table.name} WHERE {condition}")
        )
        detail = f"{table.name}: e-mail address or phone number in a plaintext column"
        outcome.violations.extend((ctx.owner, str(row[0]), detail) for row in rows)
    return outcome


CHECKS: dict[str, Callable[[Connection, CheckContext], CheckOutcome]] = {
    "consent_present": consent_present,
    "consent_express": consent_express,
    "source_recorded": source_recorded,
    "minor_guardian_consent": minor_guardian_consent,
    "retention_assigned": retention_assigned,
    "use_within_consent": use_within_consent,
    "no_plaintext_pi": no_plaintext_pi,
}
