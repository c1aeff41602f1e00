"""Validation of what a task says about an artifact: its name, controls and articles.

Evidence is indexed by control and article, so these are checked when written, not when an
auditor first goes looking for them.
"""

from __future__ import annotations

from typing import Any

from custos.errors import EvidenceError
from custos.evidence.layout import ARTIFACTS_INDEX_NAME
from custos.evidence.store import validate_key


def artifact_name(name: str) -> str:
    """An artifact name is a relative key inside the task folder, not the task's index file."""
    validate_key(name, what="artifact name")
    if name.rsplit("/", 1)[-1] == ARTIFACTS_INDEX_NAME:
        raise EvidenceError(
            f"artifact name {name!r} is invalid: {ARTIFACTS_INDEX_NAME} is reserved"
        )
    return name


def tag_list(values: list[str], field: str, name: str, *, require: bool = False) -> list[str]:
    """Return the stripped, de-duplicated tags in the caller's order.

    A bare string is refused: ``controls="ART16-X"`` would otherwise become one tag per letter.
    """
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise EvidenceError(f"artifact {name!r}: {field} must be a list of strings")
    tags: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise EvidenceError(
                f"artifact {name!r}: {field} entry {value!r} is not a non-empty string"
            )
        if value.strip() not in tags:
            tags.append(value.strip())
    if require and not tags:
        raise EvidenceError(
            f"artifact {name!r}: {field} is empty; evidence must name at least one control"
        )
    return tags


def index_controls(item: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    """Controls and articles recorded for an artifact; empty for unrecorded files."""
    if item is None:
        return [], []
    return list(item.get("controls") or []), list(item.get("articles") or [])
