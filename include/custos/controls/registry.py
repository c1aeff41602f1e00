"""Every check a control in controls.yaml may name, whichever module implements it."""

from __future__ import annotations


def all_checks() -> dict:
    from custos.access.review import REVIEWS
    from custos.access.watch import DETECTORS
    from custos.controls.checks import CHECKS

    return CHECKS | DETECTORS | REVIEWS
