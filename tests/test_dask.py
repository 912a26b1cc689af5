"""Scale-out: the same flow on the local runner and on Dask (a LocalCluster of 2 worker processes)
gives identical results, for a pure shard function and for the sandbox running inside a worker."""

from __future__ import annotations

import pytest
from scale_out import runner_gives_the_local_results

from synthsmith.contract.params import RunnerParams

pytest.importorskip("prefect_dask")


@pytest.mark.slow
def test_dask_runner_gives_the_local_results(prefect_server, tmp_path):
    dask_pids = runner_gives_the_local_results(RunnerParams(kind="dask", workers=2, threads_per_worker=1), tmp_path)
    assert len(set(dask_pids)) == 2, dask_pids  # both worker processes ran shards


def test_runner_params_default_to_local_and_choose_the_task_runner():
    from prefect_dask import DaskTaskRunner

    from synthsmith.runtime.runners import task_runner

    assert RunnerParams().kind == "local" and task_runner(RunnerParams()) is None
    local_cluster = task_runner(RunnerParams(kind="dask", workers=3, threads_per_worker=2))
    assert isinstance(local_cluster, DaskTaskRunner) and local_cluster.address is None
    assert local_cluster.cluster_kwargs["n_workers"] == 3 and local_cluster.cluster_kwargs["threads_per_worker"] == 2


def test_remote_scheduler_needs_a_shared_prefect_server(monkeypatch):
    from synthsmith.contract.params import UserError
    from synthsmith.runtime.runners import task_runner

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(UserError, match="PREFECT_API_URL"):
        task_runner(RunnerParams(kind="dask", address="tcp://10.0.0.5:8786"))
    monkeypatch.setenv("PREFECT_API_URL", "http://10.0.0.1:4200/api")
    assert task_runner(RunnerParams(kind="dask", address="tcp://10.0.0.5:8786")).address == "tcp://10.0.0.5:8786"
