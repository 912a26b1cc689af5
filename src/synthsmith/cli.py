"""The `synthsmith` command. Heavy imports stay inside commands so `--help` is instant."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
sandbox_app = typer.Typer(no_args_is_help=True, help="Run untrusted programs in the isolated sandbox.")
app.add_typer(sandbox_app, name="sandbox")


@app.command()
def demo(
    force: bool = typer.Option(False, "--force", help="Rerun every stage (dvc repro --force)."),
) -> None:
    """Build the demo dataset offline: start a local Prefect server, run `dvc repro`, print the funnel."""
    if not Path("dvc.yaml").exists():
        raise typer.BadParameter("run this from the SynthSmith project root (where dvc.yaml is)")
    typer.echo("synthsmith demo: starting a local Prefect server, then `dvc repro` (offline, from the shipped "
               "cassette; a few minutes on 2 cores)", err=True)
    import json
    import os
    import subprocess
    import sys

    from synthsmith.contract.metrics import MetricsError
    from synthsmith.contract.metrics import parse as parse_metrics
    from synthsmith.contract.values import CHECKPOINTS
    from synthsmith.runtime.server import prefect_api

    # dvc runs each stage's `python -m flows.<stage>` with this interpreter.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    with prefect_api(Path(".synthsmith/prefect-home")) as prefect_env:
        command = ["dvc", "repro", *(["--force"] if force else [])]
        code = subprocess.call(command, env=os.environ | prefect_env | {"PATH": path})
    if code:
        raise typer.Exit(code)
    try:
        metrics = parse_metrics(Path("reports/metrics.json").read_bytes())
    except MetricsError as exc:
        typer.echo(f"error: reports/metrics.json: {exc}", err=True)
        raise typer.Exit(2) from None
    for stage, counts in metrics.funnel.items():
        typer.echo(f"{stage:>20}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    for number, step in (metrics.rounds or {}).items():
        typer.echo(f"verification round {number}: {step.tasks} tasks with {step.samples_per_model} samples per model: "
                   f"{step.kept} kept, {step.discarded} discarded, {step.undecided} undecided; {step.requests} "
                   f"requests, {step.prompt_tokens + step.completion_tokens} tokens, ${step.cost_usd:.4f}")
    tasks = metrics.tasks
    typer.echo(f"verified tasks: {tasks.verified} of {tasks.generated} (keep rate {tasks.keep_rate:.0%}); "
               "data/export/sft.parquet and data/export/rl.parquet")
    evaluation = Path("reports/evaluate.json")
    if evaluation.exists():
        for benchmark, models in sorted(json.loads(evaluation.read_text()).items()):
            for model, figures in ((m, models[m]) for m in CHECKPOINTS if m in models and benchmark != "settings"):
                typer.echo(f"{model:>5} on {benchmark}: pass@1 {figures['pass@1']:.3f} "
                           f"[{figures['pass@1_ci_low']:.3f}, {figures['pass@1_ci_high']:.3f}] "
                           f"over {figures['problems']} problems")


@app.command()
def verify(
    runs: Path = typer.Option(..., "--runs", exists=True, dir_okay=False,
                              help="RUNS Parquet: task_id, solution_id, test_id, status, output."),
    tests: Path = typer.Option(..., "--tests", exists=True, dir_okay=False,
                               help="TESTS Parquet: task_id, test_id, input, weight (optional)."),
    out: Path = typer.Option(..., "--out", help="Where to write the VERDICTS Parquet."),
    seed: int = typer.Option(0, "--seed", help="Seed of the golden-test split."),
    method: str = typer.Option("strict", "--method",
                               help="strict: keep a task when a group of candidates agreeing on every test is large "
                                    "enough and leads every other group by 2; calibrated: keep it when the estimated "
                                    "chance that the leading group is wrong is at most --threshold; paper: the "
                                    "X-Coder paper's Algorithm 1 (per-test votes, golden and validation halves)."),
    threshold: float = typer.Option(None, "--threshold", min=0, max=1,
                                    help="calibrated only: the highest estimated chance of a wrong golden solution "
                                         "kept (default: the method's)."),
    max_candidates: int = typer.Option(None, "--max-candidates", min=1,
                                       help="Tasks with fewer candidates than this that the method cannot decide yet "
                                            "are written as outcome 'undecided' (ask for more), not discarded."),
    float_tol: float = typer.Option(1e-6, "--float-tol", min=0, help="Tolerance for float tokens (rel/abs)."),
) -> None:
    """Verify tasks from their candidates' runs: label expected outputs, pick a golden solution, and
    write one verdict per task (outcome kept, undecided or discarded, with its reason)."""
    import polars as pl

    from synthsmith.contract import tables
    from synthsmith.contract.values import DISCARDED, UNDECIDED
    from synthsmith.stages.verify import verify as verify_tasks

    frames = []
    for path, table in ((runs, tables.RUNS), (tests, tables.VERIFY_TESTS)):
        try:
            frames.append(tables.conform(pl.read_parquet(path), table))
        except (tables.ContractError, pl.exceptions.PolarsError, OSError) as exc:
            typer.echo(f"error: {path}: {exc}", err=True)
            raise typer.Exit(2) from exc
    more = None
    if max_candidates is not None:
        counts = frames[0].group_by("task_id").agg(pl.col("solution_id").n_unique())
        more = counts.filter(pl.col("solution_id") < max_candidates)["task_id"]
    try:
        verdicts, _ = verify_tasks(*frames, seed=seed, method=method, float_tol=float_tol, threshold=threshold,
                                   more_possible=more)
    except ValueError as exc:  # unknown method, a threshold for another method, duplicate rows, negative weights
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    _write_atomically(verdicts, out)
    parts = []
    for outcome, said in ((UNDECIDED, "undecided"), (DISCARDED, "dropped")):
        rows = verdicts.filter(pl.col("outcome") == outcome)["reason"].value_counts().sort("reason").iter_rows()
        if detail := ", ".join(f"{reason}={n}" for reason, n in rows):
            parts.append(f"{said}: {detail}")
    typer.echo(f"verify: kept {verdicts['kept'].sum()}/{verdicts.height} tasks"
               + (f" ({'; '.join(parts)})" if parts else "") + f" -> {out}")


@app.command("plan")
def plan_command(
    params_path: Path = typer.Option(Path("params.yaml"), "--params", help="The params the run would use."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object for scripts instead of the table."),
    run: Path = typer.Option(Path("."), "--run", file_okay=False,
                             help="The project directory whose data/ holds the last run (e.g. a pilot run's copy)."),
) -> None:
    """Before any call: the calls, tokens and dollars per stage and model the params will cost (token
    sizes and rates from the last run's data/ when there is one, else stated defaults). After a run,
    each row's estimate beside the last run's actual usage and their ratio."""
    import json

    from synthsmith.contract.params import UserError, load_params
    from synthsmith.stages import plan

    root = run
    try:
        params = load_params(params_path)
        rates = plan.read_rates(root)
        seeds, seeds_from = plan.count_seeds(params, rates)
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    rates = rates or plan.Rates()
    estimate = plan.estimate(params, seeds, rates)
    facts = plan.assumptions(params, seeds, rates) | {"seeds_from": seeds_from}
    actual = plan.read_actual(root)
    compared = plan.beside(estimate, actual) if actual is not None else None
    if as_json:
        result = {"assumptions": facts, "estimate": estimate.to_dicts(), "total": plan.totals(estimate),
                  "unpriced_models": sorted(estimate.filter(~estimate["priced"])["model"].unique())}
        if compared is not None:
            result["beside_actual"] = compared.to_dicts()
            result["beside_actual_total"] = plan.totals(compared)
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(plan.render_text(estimate, facts, compared))


@sandbox_app.command("run")
def sandbox_run(
    jobs_path: Path = typer.Argument(..., exists=True, dir_okay=False, metavar="JOBS.parquet",
                                     help="job_id, code, mode (stdio|function), entry, input, time_limit_s, memory_mb."),
    out: Path = typer.Argument(..., metavar="OUT.parquet",
                               help="Written: job_id, status, output, stderr, exit_code, wall_ms, cpu_ms."),
    workers: int = typer.Option(2, "--workers", min=1, help="Isolated worker processes (one per core)."),
) -> None:
    """Run every job in the sandbox: one OUT row per JOBS row, whatever the job does."""
    import time

    from synthsmith.sandbox.runner import SandboxError, prestart, probe_isolation, run_jobs

    prestart(workers)  # the workers start (namespaces, mounts) while polars is imported and JOBS read

    import polars as pl

    from synthsmith.contract import tables

    try:
        jobs = tables.conform(pl.read_parquet(jobs_path), tables.SANDBOX_JOBS)
    except (tables.ContractError, pl.exceptions.PolarsError, OSError) as exc:
        typer.echo(f"error: {jobs_path}: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        _echo_isolation(probe_isolation())
        start = time.perf_counter()
        results = run_jobs(jobs, workers=workers)
    except SandboxError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    elapsed = time.perf_counter() - start
    _write_atomically(results, out)
    counts = ", ".join(f"{status}={n}" for status, n in results["status"].value_counts().sort("status").iter_rows())
    typer.echo(f"sandbox: {results.height} jobs in {elapsed:.1f} s ({results.height / max(elapsed, 1e-9):.0f}/s; "
               f"{counts}) -> {out}")


@sandbox_app.command("check")
def sandbox_check() -> None:
    """Show which protections the sandbox gets on this machine; exit 1 if any is off."""
    from synthsmith.sandbox.runner import probe_isolation

    report = probe_isolation()
    _echo_isolation(report)
    if any(not state.startswith("on") for state in report.values()):
        raise typer.Exit(1)


def _echo_isolation(report: dict[str, str]) -> None:
    for name, state in report.items():
        typer.echo(f"isolation {name:>10}: {state}", err=True)


def _write_atomically(frame, out: Path) -> None:
    """Write beside the target, then rename: readers never see a half-written file."""
    import os
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        frame.write_parquet(tmp)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's file is 0600: give it the mode a plain open() would
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


llm_app = typer.Typer(no_args_is_help=True, help="The LLM gateway.")
app.add_typer(llm_app, name="llm")


@llm_app.command("bench")
def llm_bench(
    api_base: str = typer.Option(..., "--api-base", help="An OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."),
    model: str = typer.Option(..., "--model"),
    requests: int = typer.Option(..., "--requests", min=1, help="Exactly this many distinct small prompts."),
    concurrency: int = typer.Option(..., "--concurrency", min=1),
    timeout: float = typer.Option(60.0, "--timeout", min=0.001, help="Per-request timeout, seconds."),
    transport: str = typer.Option("auto", "--transport", help="auto | openai (lean aiohttp) | litellm."),
    max_retries: int = typer.Option(5, "--max-retries", min=0),
) -> None:
    """Drive the real gateway (cache bypassed) and print one JSON line of throughput."""
    import json
    import time

    import polars as pl

    from synthsmith.contract import tables
    from synthsmith.contract.params import EndpointParams, LLMParams, ModelParams
    from synthsmith.llm.gateway import Gateway
    from synthsmith.llm.requests import make_request

    endpoint = EndpointParams(api_base=api_base, transport=transport, concurrency=concurrency, timeout_s=timeout)
    params = LLMParams(mode="live", max_retries=max_retries, progress=False, endpoints={"default": endpoint},
                       models={model: ModelParams(input_usd_per_mtok=0, output_usd_per_mtok=0)})
    asks = pl.DataFrame([make_request(model, [{"role": "user", "content": f"Say the number {i}."}], max_tokens=16)
                         for i in range(requests)], schema=tables.LLM_REQUESTS.columns)
    gateway = Gateway(params, use_cache=False)
    started = time.monotonic()
    answers = gateway.complete(asks)
    stats = gateway.stats
    wall = stats["last_answer"] - stats["first_sent"] if stats["last_answer"] else time.monotonic() - started
    completed = int(answers["error"].is_null().sum())
    typer.echo(json.dumps({"completed": completed, "failed": answers.height - completed,
                           "retries": int(stats["retries"]), "wall_s": round(wall, 4),
                           "requests_per_s": round(completed / wall, 2) if wall > 0 else None}))


@app.command("diff")
def diff_command(
    a: str = typer.Argument(..., metavar="A", help="A git revision, a DVC experiment name, or an export directory."),
    b: str = typer.Argument(..., metavar="B", help="The same kinds as A."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object for scripts instead of the table."),
    show_all: bool = typer.Option(False, "--all", help="Show every metric row, not only headline and changed ones."),
    repo: Path = typer.Option(Path("."), "--repo", help="The git + DVC repository revisions are looked up in."),
) -> None:
    """Compare two dataset versions: tasks added/removed/changed, funnel, keep rate, style mix, features, labeling."""
    import json

    from synthsmith.versions.diff import DiffError, diff_specs, render_text

    try:
        result = diff_specs(a, b, repo)
    except DiffError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(result, indent=2) if as_json else render_text(result, show_all=show_all))


@app.command("explain")
def explain_command(
    task_id: str = typer.Argument(..., metavar="TASK_ID", help="A task_id, as in data/generate_tasks/tasks.parquet."),
    rev: str | None = typer.Option(None, "--rev", help="A git revision, a DVC experiment name, or a project "
                                                        "directory (default: the workspace)."),
    as_json: bool = typer.Option(False, "--json", help="The lineage as one JSON object for scripts."),
    repo: Path = typer.Option(Path("."), "--repo", help="The git + DVC repository (and workspace) to read."),
) -> None:
    """The lineage of one task: seeds and features, plan, statement, hygiene, tests, candidates and
    their clusters, verdicts with golden tests, export rows; for a dropped task, where and why."""
    import json

    from synthsmith.versions.diff import DiffError
    from synthsmith.versions.explain import ExplainError, explain, render_text

    try:
        lineage = explain(task_id, rev, repo)
    except (DiffError, ExplainError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(lineage, indent=2) if as_json else render_text(lineage))


@app.command("serve")
def serve_command(
    cron: str | None = typer.Option(None, "--cron", help="Cron schedule, e.g. '0 3 * * *' (default: serve.cron)."),
    no_schedule: bool = typer.Option(False, "--no-schedule", help="No schedule: runs start only from the UI/API."),
    name: str | None = typer.Option(None, "--name", help="Deployment name, pipeline/NAME (default: serve.name)."),
    start_server: bool = typer.Option(False, "--start-server",
                                      help="Also run a Prefect server with the UI on 127.0.0.1:PORT "
                                           "(PREFECT_HOME=.synthsmith/prefect-home) for as long as this runs."),
    port: int = typer.Option(4200, "--port", min=1, max=65535, help="The --start-server port."),
) -> None:
    """Serve the pipeline as a Prefect deployment: scheduled and UI-triggered runs execute `dvc repro`
    (or `dvc exp run -S k=v ...` with set_params) here, against the server at PREFECT_API_URL."""
    import contextlib
    import os

    from synthsmith.contract.params import UserError, load_params
    from synthsmith.runtime.server import local_server, project_server_url

    if not Path("dvc.yaml").exists():
        raise typer.BadParameter("run this from the SynthSmith project root (where dvc.yaml is)")
    try:
        settings = load_params("params.yaml").serve
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    with contextlib.ExitStack() as stack:
        server = None
        if start_server:
            try:
                server = stack.enter_context(local_server(port=port, echo=lambda line: typer.echo(line, err=True)))
            except RuntimeError as exc:  # the port is taken, or the server died on start: its log says why
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(1) from exc
        api_url = server.api_url if server else os.environ.get("PREFECT_API_URL") or project_server_url()
        if not api_url:
            typer.echo("error: no Prefect server to serve on: start one and set PREFECT_API_URL "
                       "(see docs/ui.md), or pass --start-server", err=True)
            raise typer.Exit(2)
        os.environ["PREFECT_API_URL"] = api_url  # before Prefect is imported: its settings are read once
        from synthsmith.runtime.deployment import pipeline_runner, run_until_stopped, stop_without_pausing

        schedule = None if no_schedule else (cron or settings.cron)
        name = name or settings.name
        try:
            runner, deployment_id = pipeline_runner(name=name, cron=schedule, timezone=settings.timezone)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if server:
            server.on_exit = lambda code: stop_without_pausing(runner)
        typer.echo(f"serving pipeline/{name} on {api_url} from {Path.cwd()}; "
                   f"schedule: {schedule or 'none'}" + (f" ({settings.timezone})" if schedule else "")
                   + "; Ctrl-C pauses the schedule and stops", err=True)
        # The whole command, server address included: pasted into a new shell it must reach this server.
        typer.echo(f"  run it now: PREFECT_API_URL={api_url} prefect deployment run 'pipeline/{name}', or from "
                   f"the UI: {api_url.removesuffix('/api')}/deployments/deployment/{deployment_id}", err=True)
        run_until_stopped(runner)
    if server and server.exit_code is not None:
        raise typer.Exit(1)
