"""The company's policy-as-data (``include/policy/*.yaml``) loaded into typed models.

Every number here has a ``source`` so Legal can see where it comes from and change it
without a release. A bad file is rejected with the file name, the key path and the
reason; cross-file references (a control owned by an unknown department) are checked too.
"""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path
from typing import Literal

import pycountry
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from custos.errors import PolicyError

CATEGORIES = ("basic", "identity", "transaction", "behaviour")
Category = Literal["basic", "identity", "transaction", "behaviour"]
Severity = Literal["high", "medium", "low"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Department(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z_]*$")
    name_en: str
    name_zh: str
    articles: list[str] = []


class DepartmentsFile(_Strict):
    source: str
    departments: list[Department] = Field(min_length=1)


class Purpose(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z_]*$")
    name_en: str
    name_zh: str
    categories: list[Category] = Field(min_length=1)
    fields: list[str]


class PurposesFile(_Strict):
    source: str
    purposes: list[Purpose] = Field(min_length=1)


def _country(code: str) -> str:
    # pycountry matches any case; policy files must say exactly what lookups will use.
    if not (len(code) == 2 and code.isascii() and code.isupper()) or (
        pycountry.countries.get(alpha_2=code) is None
    ):
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


class MinorAgeOverride(_Strict):
    countries: list[str] = Field(min_length=1)
    age: int = Field(ge=1, le=25)
    source: str

    @field_validator("countries")
    @classmethod
    def _iso_countries(cls, value: list[str]) -> list[str]:
        return [_country(code) for code in value]


class MinorAge(_Strict):
    default: int = Field(ge=1, le=25)
    source: str
    overrides: list[MinorAgeOverride] = []


class ExpressChannels(_Strict):
    values: list[str] = Field(min_length=1)
    source: str


class Quarantine(_Strict):
    """Quarantined landing rows: encrypted, kept this long, reviewed by these departments."""

    retention_days: int = Field(gt=0, le=366)
    reviewers: list[str] = Field(min_length=1)
    source: str


class QualityGate(_Strict):
    """The file-level data-quality gate (Great Expectations): a file whose share of
    unreadable lines, or of invalid values in any column, is above these limits is held."""

    max_unreadable_share: float = Field(ge=0, le=1)
    max_invalid_share: float = Field(ge=0, le=1)
    # Below this many data lines a share says little: the gate still runs (evidence) but
    # does not hold the file; every row is still validated on its own.
    min_lines: int = Field(ge=1)
    source: str


class IngestDefaults(_Strict):
    """What a platform export does not say: the department that collects through the
    platforms and the retention rule new customers are under."""

    collected_by: str
    retention_rule: str
    source: str


class CollectionFile(_Strict):
    express_channels: ExpressChannels
    minor_age: MinorAge
    quarantine: Quarantine
    quality_gate: QualityGate
    ingest: IngestDefaults


class RetentionPeriod(_Strict):
    months: int = Field(gt=0, le=600)
    source: str


class RetentionRule(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    categories: dict[Category, RetentionPeriod]

    @field_validator("categories")
    @classmethod
    def _all_categories(cls, value: dict[str, RetentionPeriod]) -> dict[str, RetentionPeriod]:
        missing = [c for c in CATEGORIES if c not in value]
        if missing:
            raise ValueError(f"a retention rule must give every category; missing {missing}")
        return value


class RetentionFile(_Strict):
    rules: list[RetentionRule] = Field(min_length=1)


class DueDays(_Strict):
    days: int = Field(gt=0, le=365)
    source: str


class FindingsFile(_Strict):
    due_days: dict[Severity, DueDays]


class Control(_Strict):
    id: str = Field(pattern=r"^ART\d+-[A-Z0-9-]+$")
    article: str = Field(pattern=r"^Art\. \d+$")
    owner: str
    frequency: Literal["hourly", "daily", "weekly", "monthly", "quarterly", "semiannual", "annual"]
    severity: Severity
    check: str
    # The task that runs it: the monthly check's collection/storage/use/access groups,
    # or the hourly access watch.
    group: Literal["collection", "storage", "use", "access", "watch"]
    attributed_to: Literal["collecting_department", "using_department", "owner", "staff_department"]
    title_en: str
    title_zh: str


class SourcedInt(_Strict):
    value: int = Field(gt=0)
    source: str


class RefusedBurst(_Strict):
    count: int = Field(gt=0)
    minutes: int = Field(gt=0, le=1440)
    source: str


class HoursRange(_Strict):
    start: int = Field(ge=0, le=23)
    end: int = Field(ge=1, le=24)
    source: str


class WorkingHours(_Strict):
    default: HoursRange
    timezones: dict[str, str] = {}

    @field_validator("timezones")
    @classmethod
    def _valid_zones(cls, value: dict[str, str]) -> dict[str, str]:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        for country, zone in value.items():
            _country(country)
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{zone!r} (for {country}) is not an IANA time zone") from None
        return value


class AccessWatch(_Strict):
    bulk_read_customers_per_hour: SourcedInt
    refused_burst: RefusedBurst
    working_hours: WorkingHours


class LogCheckpoint(_Strict):
    every_entries: int = Field(gt=0)
    every_minutes: int = Field(gt=0)
    source: str


class AccessFile(_Strict):
    source: str
    log_checkpoint: LogCheckpoint
    # department → purpose → categories it may read for that purpose
    matrix: dict[str, dict[str, list[Category]]]
    watch: AccessWatch


class ControlsFile(_Strict):
    controls: list[Control] = Field(min_length=1)


class Policy(_Strict):
    """All policy files, validated together."""

    directory: Path
    departments: dict[str, Department]
    purposes: dict[str, Purpose]
    express_channels: frozenset[str]
    minor_age: MinorAge
    quarantine: Quarantine
    quality_gate: QualityGate
    ingest: IngestDefaults
    retention_rules: dict[str, RetentionRule]
    due_days: dict[str, DueDays]
    controls: dict[str, Control]
    access_matrix: dict[str, dict[str, frozenset[str]]]
    access_watch: AccessWatch
    log_checkpoint: LogCheckpoint

    def allowed_categories(self, department: str, purpose: str) -> frozenset[str]:
        """What the matrix lets ``department`` read for ``purpose`` (empty: nothing)."""
        return self.access_matrix.get(department, {}).get(purpose, frozenset())

    def minor_age_for(self, country: str) -> int:
        for override in self.minor_age.overrides:
            if country in override.countries:
                return override.age
        return self.minor_age.default

    def retention_months(self, rule_id: str, category: str) -> int:
        return self.retention_rules[rule_id].categories[category].months

    def due_date(self, severity: str, found_on: date) -> date:
        from datetime import timedelta

        return found_on + timedelta(days=self.due_days[severity].days)


_FILES: dict[str, type[BaseModel]] = {
    "departments.yaml": DepartmentsFile,
    "purposes.yaml": PurposesFile,
    "collection.yaml": CollectionFile,
    "retention.yaml": RetentionFile,
    "findings.yaml": FindingsFile,
    "controls.yaml": ControlsFile,
    "access.yaml": AccessFile,
}


def _key_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice (plain YAML keeps the last one silently)."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _load_file(path: Path, model: type[BaseModel]) -> BaseModel:
    if not path.is_file():
        raise PolicyError(f"{path}: policy file is missing")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"{path}: (top level): expected a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{_key_path(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise PolicyError(f"{path}: {reasons}") from None


def _unique(path: Path, what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, item_id in enumerate(ids):
        if item_id in seen:
            raise PolicyError(f"{path}: {what}[{i}].id: duplicate id {item_id!r}")
        seen.add(item_id)


def load_policy(directory: Path) -> Policy:
    """Load and cross-check every policy file in ``directory``."""
    directory = Path(directory)
    files = {name: _load_file(directory / name, model) for name, model in _FILES.items()}
    departments: DepartmentsFile = files["departments.yaml"]  # type: ignore[assignment]
    purposes: PurposesFile = files["purposes.yaml"]  # type: ignore[assignment]
    collection: CollectionFile = files["collection.yaml"]  # type: ignore[assignment]
    retention: RetentionFile = files["retention.yaml"]  # type: ignore[assignment]
    findings: FindingsFile = files["findings.yaml"]  # type: ignore[assignment]
    controls: ControlsFile = files["controls.yaml"]  # type: ignore[assignment]
    access: AccessFile = files["access.yaml"]  # type: ignore[assignment]

    _unique(directory / "departments.yaml", "departments", [d.id for d in departments.departments])
    _unique(directory / "purposes.yaml", "purposes", [p.id for p in purposes.purposes])
    _unique(directory / "retention.yaml", "rules", [r.id for r in retention.rules])
    _unique(directory / "controls.yaml", "controls", [c.id for c in controls.controls])
    department_ids = {d.id for d in departments.departments}
    for i, control in enumerate(controls.controls):
        if control.owner not in department_ids:
            raise PolicyError(
                f"{directory / 'controls.yaml'}: controls[{i}].owner: {control.owner!r} is not a "
                f"department in departments.yaml"
            )
    from custos.controls.registry import all_checks

    known_checks = all_checks()
    for i, control in enumerate(controls.controls):
        if control.check not in known_checks:
            raise PolicyError(
                f"{directory / 'controls.yaml'}: controls[{i}].check: {control.check!r} is not a "
                f"known check (known: {', '.join(sorted(known_checks))})"
            )
    access_path = directory / "access.yaml"
    for department, purposes_map in access.matrix.items():
        if department not in department_ids:
            raise PolicyError(f"{access_path}: matrix.{department}: not a department")
        for purpose in purposes_map:
            if purpose not in {p.id for p in purposes.purposes}:
                raise PolicyError(
                    f"{access_path}: matrix.{department}.{purpose}: not a purpose in purposes.yaml"
                )
    collection_path = directory / "collection.yaml"
    for i, reviewer in enumerate(collection.quarantine.reviewers):
        if reviewer not in department_ids:
            raise PolicyError(f"{collection_path}: quarantine.reviewers[{i}]: not a department")
    if collection.ingest.collected_by not in department_ids:
        raise PolicyError(f"{collection_path}: ingest.collected_by: not a department")
    if collection.ingest.retention_rule not in {r.id for r in retention.rules}:
        raise PolicyError(f"{collection_path}: ingest.retention_rule: not a rule in retention.yaml")
    missing = [s for s in ("high", "medium", "low") if s not in findings.due_days]
    if missing:
        raise PolicyError(f"{directory / 'findings.yaml'}: due_days: missing severities {missing}")
    return Policy(
        directory=directory,
        departments={d.id: d for d in departments.departments},
        purposes={p.id: p for p in purposes.purposes},
        express_channels=frozenset(collection.express_channels.values),
        minor_age=collection.minor_age,
        quarantine=collection.quarantine,
        quality_gate=collection.quality_gate,
        ingest=collection.ingest,
        retention_rules={r.id: r for r in retention.rules},
        due_days=dict(findings.due_days),
        controls={c.id: c for c in controls.controls},
        access_matrix={
            dept: {purpose: frozenset(cats) for purpose, cats in purposes_map.items()}
            for dept, purposes_map in access.matrix.items()
        },
        access_watch=access.watch,
        log_checkpoint=access.log_checkpoint,
    )


@functools.cache
def _cached(directory: str, stamp: tuple) -> Policy:
    return load_policy(Path(directory))


def current_policy() -> Policy:
    """The policy from ``CUSTOS_POLICY_DIR``, re-read when a file changes."""
    from custos.settings import get_settings

    directory = get_settings().policy_dir
    stamp = tuple(
        (name, (directory / name).stat().st_mtime_ns if (directory / name).exists() else 0)
        for name in sorted(_FILES)
    )
    return _cached(str(directory), stamp)
