"""Run a set of controls over a time window and shape the results for evidence/findings."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import Engine

from custos.controls.checks import CheckContext
from custos.controls.registry import all_checks


def evaluate_controls(
    engine: Engine, policy, controls: list, period: str, start: datetime, end: datetime
) -> dict:
    """{control id: {article, owner, severity, titles, counts per department, violations}}.
    Violations carry pseudonymous subject ids (customers or staff), never personal data."""
    checks = all_checks()
    results: dict = {}
    with engine.connect() as conn:
        for control in controls:
            ctx = CheckContext(
                period=period,
                start=start,
                end=end,
                express_channels=tuple(sorted(policy.express_channels)),
                retention_rules=tuple(policy.retention_rules),
                owner=control.owner,
                policy=policy,
            )
            outcome = checks[control.check](conn, ctx)
            counts = Counter(dept for dept, _, _ in outcome.violations)
            results[control.id] = {
                "article": control.article,
                "owner": control.owner,
                "severity": control.severity,
                "title_en": control.title_en,
                "title_zh": control.title_zh,
                "counts": dict(sorted(counts.items())),
                "violations": [
                    {"department": d, "subject": s, "detail": detail}
                    for d, s, detail in sorted(outcome.violations)
                ],
            }
    return results
