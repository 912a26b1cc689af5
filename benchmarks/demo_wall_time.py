"""Demo wall time from a clean clone, and a no-op `dvc repro` against `dvc status`, in one run.

    python benchmarks/demo_wall_time.py      (from the project root, in the project's venv)

Goals (issue 3): demo from clean <= 120 s on 2 cores; no-op repro <= 1.5x `dvc status`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    bin_dir = Path(sys.executable).parent
    env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PREFECT_API_URL", None)
    with tempfile.TemporaryDirectory() as scratch:
        clone = Path(scratch) / "clone"
        subprocess.run(["git", "clone", "-q", str(Path.cwd()), str(clone)], check=True)
        demo = timed([str(bin_dir / "synthsmith"), "demo"], clone, env)
        status = min(timed(["dvc", "status"], clone, env) for _ in range(5))
        noop = min(timed(["dvc", "repro"], clone, env) for _ in range(5))
    print(f"demo from clean: {demo:.1f} s (goal <= 120 s)")
    print(f"dvc status: {status:.2f} s; no-op dvc repro: {noop:.2f} s; ratio {noop / status:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
