"""How stages run on Prefect: the stage entry point, cached shard tasks, Parquet I/O, task runners
(Dask, Ray), the loopback servers and the `synthsmith serve` deployment; `code` finds the project
code a module runs (shard cache keys, DVC deps)."""
