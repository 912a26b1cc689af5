"""The `synthsmith` command. Heavy imports stay inside commands so `--help` is instant."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command()
def demo(
    force: bool = typer.Option(False, "--force", help="Rerun every stage (dvc repro --force)."),
) -> None:
    """Build the demo dataset offline: start a local Prefect server, run `dvc repro`, print the funnel."""
    import json
    import os
    import subprocess
    import sys

    from synthsmith.prefect_server import prefect_api

    if not Path("dvc.yaml").exists():
        raise typer.BadParameter("run this from the SynthSmith project root (where dvc.yaml is)")
    # dvc runs each stage's `python -m flows.<stage>` with this interpreter.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    with prefect_api(Path(".synthsmith/prefect-home")) as prefect_env:
        command = ["dvc", "repro", *(["--force"] if force else [])]
        code = subprocess.call(command, env=os.environ | prefect_env | {"PATH": path})
    if code:
        raise typer.Exit(code)
    metrics = json.loads(Path("reports/metrics.json").read_text())
    for stage, counts in metrics["funnel"].items():
        typer.echo(f"{stage:>20}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    tasks = metrics["tasks"]
    typer.echo(f"verified tasks: {tasks['verified']} of {tasks['generated']} (keep rate {tasks['keep_rate']:.0%}); "
               "data/export/sft.parquet and data/export/rl.parquet")


@app.command()
def verify(
    runs: Path = typer.Option(..., "--runs", exists=True, dir_okay=False,
                              help="RUNS Parquet: task_id, solution_id, test_id, status, output."),
    tests: Path = typer.Option(..., "--tests", exists=True, dir_okay=False,
                               help="TESTS Parquet: task_id, test_id, input, weight (optional)."),
    out: Path = typer.Option(..., "--out", help="Where to write the VERDICTS Parquet."),
    seed: int = typer.Option(0, "--seed", help="Seed of the golden/validation split."),
    method: str = typer.Option("paper", "--method", help="Verification method (see stages.verify.METHODS)."),
) -> None:
    """Dual-verify tasks: vote expected outputs, keep tasks whose golden and validation winners agree."""
    import os
    import tempfile

    import polars as pl

    from synthsmith import schemas
    from synthsmith.stages.verify import verify as dual_verify

    frames = []
    for path, table in ((runs, schemas.RUNS), (tests, schemas.VERIFY_TESTS)):
        try:
            frames.append(schemas.conform(pl.read_parquet(path), table))
        except (schemas.ContractError, pl.exceptions.PolarsError, OSError) as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            raise typer.Exit(2) from exc
    try:
        verdicts, _ = dual_verify(*frames, seed=seed, method=method)
    except ValueError as exc:  # unknown method, duplicate rows, negative weights
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    # Write beside the target, then rename: readers never see a half-written file.
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        verdicts.write_parquet(tmp)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    dropped = verdicts.filter(~pl.col("kept"))["reason"].value_counts().sort("reason").iter_rows()
    detail = ", ".join(f"{reason}={n}" for reason, n in dropped)
    typer.echo(f"verify: kept {verdicts['kept'].sum()}/{verdicts.height} tasks"
               + (f" (dropped: {detail})" if detail else "") + f" -> {out}")
