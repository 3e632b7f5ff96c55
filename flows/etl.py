"""`etl-pipeline`: extract, then three child flows in turn — validate, calculate, save — with a
person asked before storage when validation found too many problems.

Each child takes its input as parameters and returns a model, so it runs alone as well
(`await validate_records(records)`), and the parent passes one child's output to the next.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import statistics as stats
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

from prefect import flow, task
from prefect.runtime import flow_run as current_flow_run
from pydantic import Field

from .gates import approval_gate
from .hooks import APPROVAL_HOOKS
from .params import RequestedParams
from .results import FrozenModel, GateResult
from .services import flow_config

REGIONS = ("north", "south", "east", "west")
# Share of invalid records above which a person must approve storing the valid ones. The
# flow's own rule, not a parameter: a caller who could raise it would skip the approval.
PROBLEM_THRESHOLD = 0.02
FIRST_DAY = date(2025, 1, 1)


class SalesRecord(FrozenModel):
    """One row as extracted: not yet trusted, so every field may be wrong."""

    id: int
    day: str
    region: str
    amount: float | None
    quantity: int | None


class Problem(FrozenModel):
    record_id: int
    field: str
    message: str


class ValidationReport(FrozenModel):
    total: int
    valid: list[SalesRecord]
    problems: list[Problem]

    @property
    def invalid(self) -> int:
        return self.total - len(self.valid)

    @property
    def problem_rate(self) -> float:
        return self.invalid / self.total if self.total else 0.0


class RegionStatistics(FrozenModel):
    count: int
    units: int
    total_amount: float


class Statistics(FrozenModel):
    count: int
    units: int
    total_amount: float
    mean_amount: float
    median_amount: float
    by_region: dict[str, RegionStatistics]


class SaveReport(FrozenModel):
    database: str
    batch_id: str
    rows_written: int
    rows_in_batch: int


class EtlParams(RequestedParams):
    # Records travel as child-flow parameters, which the Prefect server caps at 512 KB.
    rows: Annotated[int, Field(ge=1, le=2000)] = 200
    error_rate: Annotated[float, Field(ge=0, le=1)] = 0.05
    seed: int = 7
    database: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}\.(sqlite3|db)$")] = (
        "etl.sqlite3")


class EtlResult(FrozenModel):
    rows: int
    invalid: int
    problem_rate: float
    statistics: Statistics
    approval: GateResult | None
    stored: SaveReport | None


# -- extract -----------------------------------------------------------------------------------


def generate_records(rows: int, error_rate: float, seed: int) -> list[SalesRecord]:
    """Synthetic sales with one defect in about `error_rate` of the rows; same seed, same rows."""
    rng = random.Random(seed)
    records = []
    for i in range(1, rows + 1):
        day = (FIRST_DAY + timedelta(days=rng.randrange(365))).isoformat()
        region = rng.choice(REGIONS)
        amount: float | None = round(rng.uniform(5, 500), 2)
        quantity: int | None = rng.randint(1, 20)
        if rng.random() < error_rate:
            defect = rng.randrange(4)
            if defect == 0:
                amount = None
            elif defect == 1:
                quantity = -quantity if quantity else -1
            elif defect == 2:
                region = "atlantis"
            else:
                day = "2025-02-30"
        records.append(SalesRecord(id=i, day=day, region=region, amount=amount, quantity=quantity))
    return records


# Cached by its inputs within the run, its result persisted: a run resumed after a suspended
# gate does not extract again.
@task(name="extract-records")
async def extract_records(rows: int, error_rate: float, seed: int) -> list[SalesRecord]:
    return generate_records(rows, error_rate, seed)


# -- validate ----------------------------------------------------------------------------------


def check_record(record: SalesRecord) -> list[Problem]:
    found = []
    if record.amount is None:
        found.append(Problem(record_id=record.id, field="amount", message="missing"))
    elif record.amount <= 0:
        found.append(Problem(record_id=record.id, field="amount", message="not positive"))
    if record.quantity is None or record.quantity <= 0:
        found.append(Problem(record_id=record.id, field="quantity", message="not a positive count"))
    if record.region not in REGIONS:
        found.append(Problem(record_id=record.id, field="region",
                             message=f"unknown region {record.region!r}"))
    try:
        date.fromisoformat(record.day)
    except ValueError:
        found.append(Problem(record_id=record.id, field="day", message=f"not a date: {record.day!r}"))
    return found


@flow(name="validate-records", persist_result=True,
      description="Split records into valid ones and problems.")
async def validate_records(records: list[SalesRecord]) -> ValidationReport:
    valid, problems = [], []
    for record in records:
        found = check_record(record)
        problems += found
        if not found:
            valid.append(record)
    return ValidationReport(total=len(records), valid=valid, problems=problems)


# -- calculate ---------------------------------------------------------------------------------


@flow(name="calculate-statistics", persist_result=True,
      description="Totals, mean, median and per-region figures.")
async def calculate_statistics(records: list[SalesRecord]) -> Statistics:
    amounts = [r.amount for r in records if r.amount is not None]
    units = sum(r.quantity or 0 for r in records)
    by_region = {}
    for region in sorted({r.region for r in records}):
        mine = [r for r in records if r.region == region]
        by_region[region] = RegionStatistics(
            count=len(mine), units=sum(r.quantity or 0 for r in mine),
            total_amount=round(sum(r.amount or 0.0 for r in mine), 2))
    return Statistics(
        count=len(records), units=units, total_amount=round(sum(amounts), 2),
        mean_amount=round(stats.fmean(amounts), 2) if amounts else 0.0,
        median_amount=round(stats.median(amounts), 2) if amounts else 0.0,
        by_region=by_region)


# -- save --------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS sales (
    batch_id TEXT NOT NULL, record_id INTEGER NOT NULL, day TEXT NOT NULL, region TEXT NOT NULL,
    amount REAL NOT NULL, quantity INTEGER NOT NULL, PRIMARY KEY (batch_id, record_id));
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY, saved_at TEXT NOT NULL, count INTEGER NOT NULL,
    total_amount REAL NOT NULL, statistics TEXT NOT NULL);
"""


def write_batch(path: Path, records: list[SalesRecord], statistics: Statistics,
                batch_id: str) -> SaveReport:
    """One transaction; keyed by batch and record, so saving a batch again replaces it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.executescript(SCHEMA)
            connection.executemany(
                "INSERT OR REPLACE INTO sales VALUES (?, ?, ?, ?, ?, ?)",
                [(batch_id, r.id, r.day, r.region, r.amount, r.quantity) for r in records])
            connection.execute(
                "INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?, ?)",
                (batch_id, datetime.now(UTC).isoformat(), statistics.count,
                 statistics.total_amount, json.dumps(statistics.model_dump(mode="json"))))
        (in_batch,) = connection.execute("SELECT count(*) FROM sales WHERE batch_id = ?",
                                         (batch_id,)).fetchone()
    finally:
        connection.close()
    return SaveReport(database=str(path), batch_id=batch_id, rows_written=len(records),
                      rows_in_batch=in_batch)


@flow(name="save-to-database", persist_result=True,
      description="Store valid records and their statistics in SQLite.")
async def save_to_database(records: list[SalesRecord], statistics: Statistics, database: str,
                           batch_id: str) -> SaveReport:
    return await asyncio.to_thread(write_batch, Path(database), records, statistics, batch_id)


# -- the pipeline ------------------------------------------------------------------------------


@flow(name="etl-pipeline", persist_result=True,
      description="Validate, summarise and store sales records; asks before storing dirty data.",
      **APPROVAL_HOOKS)
async def etl_pipeline(params: EtlParams | None = None) -> EtlResult:
    p = params or EtlParams()
    records = await extract_records(p.rows, p.error_rate, p.seed)
    report = await validate_records(records)
    statistics = await calculate_statistics(report.valid)
    approval = None
    if report.problem_rate > PROBLEM_THRESHOLD:
        fields = sorted({problem.field for problem in report.problems})
        decision = await approval_gate(
            "store-despite-problems",
            f"Store {len(report.valid)} sales records despite {report.invalid} invalid ones?",
            summary=(f"Validation rejected {report.invalid} of {report.total} records "
                     f"({report.problem_rate:.1%}), above the {PROBLEM_THRESHOLD:.1%} threshold."),
            facts={"Invalid records": f"{report.invalid} of {report.total}",
                   "Problem fields": ", ".join(fields),
                   "Valid total": f"{statistics.total_amount:,.2f}"},
            requester=p.requester, params={**p.matched(), "problem_rate": report.problem_rate})
        approval = GateResult.of("store-despite-problems", decision)
        if not decision.approved:
            return EtlResult(rows=report.total, invalid=report.invalid,
                             problem_rate=report.problem_rate, statistics=statistics,
                             approval=approval, stored=None)
    batch_id = current_flow_run.id or str(uuid.uuid4())
    stored = await save_to_database(report.valid, statistics,
                                    str(flow_config().data_dir / p.database), batch_id)
    return EtlResult(rows=report.total, invalid=report.invalid, problem_rate=report.problem_rate,
                     statistics=statistics, approval=approval, stored=stored)
