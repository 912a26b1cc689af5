"""Parquet and JSON I/O of the stage flows: tables conformed on read and on write (against the
contract's `STAGE_OUTPUTS`), directories swapped in whole."""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl

from synthsmith.contract import tables
from synthsmith.contract.funnel import STAGE_UNITS, first_zero, zero_line
from synthsmith.contract.params import UserError

log = logging.getLogger(__name__)


def read_table(path: str | Path, table: tables.Table) -> pl.DataFrame:
    """A stage's input, conformed; a missing, unreadable or off-contract file is one line naming
    it and how to get it back (a UserError), not a traceback from deep inside Polars."""
    path = Path(path)
    try:
        return tables.conform(pl.read_parquet(path), table)
    except FileNotFoundError:
        problem = "missing"
    except (pl.exceptions.PolarsError, OSError) as exc:
        problem = f"not a readable Parquet file ({_first_line(exc)})"
    except tables.ContractError as exc:
        problem = f"does not match the contract ({exc})"
    raise UserError(f"{path}: {problem}; {_rebuild_hint(path)}")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _rebuild_hint(path: Path) -> str:
    """How to get a stage's output back: from the DVC cache, or by rerunning the stage that writes it."""
    stage = path.parent.name
    if path.stem in tables.STAGE_OUTPUTS.get(stage, {}):
        return f"restore it with `dvc checkout {path.parent}` or rebuild it with `dvc repro --force {stage}`"
    return "rebuild it by rerunning the stage that writes it"


def write_tables(directory: str | Path, frames: dict[str, pl.DataFrame]) -> None:
    """Write every table of a stage into a fresh directory, then swap it in: never half-written.

    The directory's name is the stage; it gets exactly the files `STAGE_OUTPUTS` declares for
    it (the report reads every stage's funnel), each conformed to its table, so nothing crosses
    a stage boundary unchecked. A stage whose funnel reached zero says so, in one warning line:
    its (empty) tables are still written, so the run completes and the report explains it."""
    directory = Path(directory)
    declared = tables.STAGE_OUTPUTS.get(directory.name)
    if declared is None:
        raise tables.ContractError(f"{directory}: not a stage's output directory; the contract declares "
                                   f"{', '.join(tables.STAGE_OUTPUTS)} (contract/tables.py STAGE_OUTPUTS)")
    if set(frames) != set(declared):
        raise tables.ContractError(f"{directory}: stage {directory.name} writes {', '.join(declared)} "
                                   f"(contract/tables.py STAGE_OUTPUTS), got {', '.join(frames)}")
    conformed = {name: tables.conform(frame, declared[name]) for name, frame in frames.items()}

    def fill(staging: Path) -> None:
        for name, frame in conformed.items():
            frame.write_parquet(staging / f"{name}.parquet")

    swap_in_directory(directory, fill)
    if "funnel" in conformed and (line := zero_line(directory.name, conformed["funnel"])):
        _run_logger().warning("%s", line)


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow (its UI shows the line too), else this module's."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return log


def swap_in_directory(directory: str | Path, fill: Callable[[Path], None]) -> None:
    """`fill(staging)` writes a fresh directory beside `directory`, which then replaces it whole:
    a failed or killed writer never leaves a half-written directory."""
    directory = Path(directory)
    staging = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.tmp")
    staging.mkdir(parents=True)
    try:
        fill(staging)
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def where_the_funnel_stopped(root: str | Path = ".") -> str | None:
    """The line `report` ends with when a run's funnel reached zero, from the stages' funnels as
    they are now (for a message only: a stage that reads them has them as no dep)."""
    frames = []
    for stage in STAGE_UNITS:
        try:
            frames.append(tables.conform(pl.read_parquet(Path(root) / "data" / stage / "funnel.parquet"),
                                         tables.FUNNEL))
        except (OSError, pl.exceptions.PolarsError, tables.ContractError):
            continue
    return first_zero(pl.concat(frames)) if frames else None


def write_json(path: str | Path, value: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)
