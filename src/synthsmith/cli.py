"""The `synthsmith` command. Heavy imports stay inside commands so `--help` is instant."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def main() -> None:
    app()


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
