"""The sandbox: untrusted programs (candidates, generators, validators) run in isolated workers.

`runner.run_jobs` is the interface; `harness` is the worker process (stdlib only, run as a script
without site-packages) and `isolation` the namespaces, mounts and uids it enters.
"""
