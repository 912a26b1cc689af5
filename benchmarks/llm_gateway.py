"""LLM gateway throughput against its concurrency bound, and response-cache lookups, in one run.

    python benchmarks/llm_gateway.py [--requests 2000] [--concurrency 64] [--latency 0.1]

A stub OpenAI-compatible server with fixed latency runs in its own process on 127.0.0.1 (the
machine has 2 cores: one for it, one for us). `synthsmith llm bench` drives the real gateway
(retries, limits, accounting; cache bypassed) through each transport. The bound is the time a
perfect client needs, N * latency / C; the ratio bound / wall is 1.0 for a perfect client
(goal >= 0.8 with the lean transport). Then the durable cache: lookups/s of cached responses
(goal >= 20k/s), batched as a stage looks them up and one by one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthsmith.llm.cache import Answer, ResponseCache
from synthsmith.llm.requests import make_request


def bench(api_base: str, requests: int, concurrency: int, transport: str) -> dict:
    command = [str(Path(sys.executable).with_name("synthsmith")), "llm", "bench", "--api-base", api_base,
               "--model", "bench/model", "--requests", str(requests), "--concurrency", str(concurrency),
               "--timeout", "30", "--transport", transport]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cache_lookups(entries: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as scratch:
        cache = ResponseCache(scratch)
        keys = [make_request("m", [{"role": "user", "content": f"prompt {i}"}])["request_id"] for i in range(entries)]
        for key in keys:
            cache.put(key, "m", Answer(f"answer {key[:8]} " * 20, 10, 40, 0.0))
        start = time.perf_counter()
        found = cache.get_many(keys)
        batched = len(found) / (time.perf_counter() - start)
        start = time.perf_counter()
        single = sum(cache.get(key) is not None for key in keys[:5000]) / (time.perf_counter() - start)
        cache.close()
    assert len(found) == entries
    return batched, single


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-m", "tools.stub_server", "--latency", str(args.latency)],
                              stdout=subprocess.PIPE, text=True)
    try:
        api_base = json.loads(server.stdout.readline())["api_base"]
        bound = args.requests * args.latency / args.concurrency
        print(f"{args.requests} requests, concurrency {args.concurrency}, server latency {args.latency} s: "
              f"bound {bound:.2f} s")
        for transport in ("openai", "litellm"):
            result = bench(api_base, args.requests, args.concurrency, transport)
            print(f"{transport:>8}: {json.dumps(result)}  ratio bound/wall = {bound / result['wall_s']:.2f}")
    finally:
        server.terminate()
        server.wait()
    batched, single = cache_lookups(20_000)
    print(f"cache hits: {batched:,.0f} lookups/s batched (as stages look up), {single:,.0f}/s one by one")


if __name__ == "__main__":
    main()
