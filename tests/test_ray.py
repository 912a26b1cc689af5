"""Scale-out on Ray: the same flow on the local runner and on a local Ray instance of 2 CPUs gives
identical results, for a pure shard function and for the sandbox running inside a Ray worker."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synthsmith.contract.params import RunnerParams, UserError
from synthsmith.runtime.runners import task_runner

needs_prefect_ray = pytest.mark.skipif(importlib.util.find_spec("prefect_ray") is None,
                                       reason="prefect-ray is not installed (the optional extra `ray`)")


@needs_prefect_ray
@pytest.mark.slow
def test_ray_runner_gives_the_local_results(prefect_server, tmp_path):
    """tests/scale_out.py's check, in an interpreter of its own as a stage runs: once imported, Ray
    leaves process-wide state behind (filelock's fork guard) that breaks later tests of this
    session which fork from threads."""
    # Ray workers import shard functions by module name, as Dask's do, but get only the working
    # directory on sys.path, not the tests'; the local Ray instance inherits this environment.
    python_path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    check = ("import pathlib, sys, scale_out; from synthsmith.contract.params import RunnerParams; "
             "scale_out.runner_gives_the_local_results(RunnerParams(kind='ray', workers=2), pathlib.Path(sys.argv[1]))")
    run = subprocess.run([sys.executable, "-c", check, str(tmp_path)], capture_output=True, text=True, timeout=300,
                         env=os.environ | {"PYTHONPATH": python_path})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-6000:]
    print(*(line for line in run.stdout.splitlines() if line.startswith("local runner")))  # the wall times
    ray_pids = (tmp_path / "pids.txt").read_text().split()  # the Ray run's, checked there: not the stage's
    assert len(set(ray_pids)) >= 2, ray_pids  # shards ran in more than one Ray worker process


@needs_prefect_ray
def test_ray_runner_starts_a_local_instance_or_connects(monkeypatch):
    from prefect_ray import RayTaskRunner

    local = task_runner(RunnerParams(kind="ray", workers=3))
    assert isinstance(local, RayTaskRunner) and local.address is None
    assert local.init_kwargs["address"] == "local" and local.init_kwargs["num_cpus"] == 3
    assert local.init_kwargs["include_dashboard"] is False
    monkeypatch.setenv("PREFECT_API_URL", "http://10.0.0.1:4200/api")
    remote = task_runner(RunnerParams(kind="ray", address="ray://10.0.0.5:10001"))
    assert remote.address == "ray://10.0.0.5:10001" and "num_cpus" not in remote.init_kwargs
    assert task_runner(RunnerParams(kind="ray", address="auto")).init_kwargs["address"] == "auto"


def test_remote_ray_cluster_needs_a_shared_prefect_server(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(UserError, match="PREFECT_API_URL"):
        task_runner(RunnerParams(kind="ray", address="ray://10.0.0.5:10001"))


def test_ray_without_prefect_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "prefect_ray", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "synthsmith.runtime.ray_runner", raising=False)
    with pytest.raises(UserError, match=r"\[ray\]"):
        task_runner(RunnerParams(kind="ray"))
