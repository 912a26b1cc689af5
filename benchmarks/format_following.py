"""How often a live model answers each pipeline prompt in the format its stage parses.

    python benchmarks/format_following.py --api-base http://127.0.0.1:8090/v1 \
        [--cassette data/shipped/cassette.jsonl] [--per-kind 4] [--max-tokens 400] [--model NAME]

(from the project root, in the project's venv). The prompts are the real rendered ones: the first
`--per-kind` original requests (not re-asks) of each request kind in the cassette, told apart by
prompt prefix as tools/demo_author/author.py does. Each is re-sent live through our own
`synthsmith.llm.gateway.Gateway` (mode live, a scratch cache under /tmp, so nothing is reused
between runs) with the stage's format validator, the one its flow passes as `validator=`, and
`reask` 1. The first attempt of a reask-1 call is exactly the reask-0 call (same key), so one call
gives both columns: parsed first try (reask 0) and parsed after at most one re-ask (reask 1).
The task statement has no gateway validator (the pipeline never re-asks it): it is sent with reask
0 and parsed afterwards by generate_tasks' own statement checks, against the plan in its prompt.

Sampling: the stage's temperature, `max_tokens` capped by `--max-tokens`, and `seed` (the
request's own, else 0) so a rerun against the same server and prompts asks the same thing.
`--model` replaces the cassette's model names (a server that serves one model accepts any name).
Printed per kind: asked, parsed first try, parsed after one re-ask, the first-try rejection
reasons (most frequent first) and those left after the re-ask, mean completion tokens, seconds.
`--dump answers.jsonl` keeps each final answer (the re-ask's when there was one) to read.
`--json-output json_object` (llama.cpp, vLLM) or `json_schema` (OpenAI) has the server keep the
JSON-speaking kinds to their stage's schema, as `llm.models.<model>.json_output` does in a run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import polars as pl

from synthsmith.contract.params import LLMParams
from synthsmith.contract.values import JSON_OUTPUTS
from synthsmith.llm.answers import Rejected
from synthsmith.llm.gateway import Gateway, load_named
from synthsmith.llm.requests import make_request
from synthsmith.stages import answer_schemas, generate_tasks

# The JSON Schema its flow passes, per kind that answers in JSON (sent with --json-output).
SCHEMAS = {"feature extraction": "FEATURES", "feature evolution": "EVOLUTION", "task plan": "PLAN",
           "test inputs": "TEST_CASES"}
# (kind, prompt prefix or marker, the validator its flow passes; None: parsed after the call)
KINDS = (
    ("feature extraction", "## Reference solution", "synthsmith.stages.extract_features:check_extraction"),
    ("feature evolution", "You are growing a taxonomy", "synthsmith.stages.evolve_features:check_evolution"),
    ("task plan", "You are designing a new competitive-programming problem",
     "synthsmith.stages.generate_tasks:check_plan"),
    ("task statement", "Write one original competitive-programming problem", None),
    ("test inputs", "You write test inputs", "synthsmith.stages.generate_tests:check_test_cases"),
    ("tool generator", "You write a test-input generator", "synthsmith.stages.tool_inputs:check_program"),
    ("input validator", "You write an input validator", "synthsmith.stages.tool_inputs:check_program"),
    ("candidate solution", "Solve the following competitive-programming problem",
     "synthsmith.stages.generate_solutions:check_solution"),
)


def kind_of(prompt: str) -> str | None:
    for kind, marker, _ in KINDS:
        if (marker in prompt) if marker.startswith("##") else prompt.startswith(marker):
            return kind
    return None


def pick_requests(cassette: Path, per_kind: int) -> dict[str, list[dict]]:
    """The first `per_kind` original requests of each kind, in cassette order."""
    picked: dict[str, list[dict]] = {kind: [] for kind, _, _ in KINDS}
    for line in cassette.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        if len(entry["messages"]) != 1:  # a re-ask: its conversation belongs to the demo author
            continue
        kind = kind_of(entry["messages"][0]["content"])
        if kind is not None and len(picked[kind]) < per_kind:
            picked[kind].append(entry)
    return picked


def statement_check(prompt: str, min_tokens: int):
    """generate_tasks' statement checks, with the plan (style, selected features) read from the prompt."""
    plan = json.loads(re.search(r"```json\n(.*?)\n```", prompt, re.S).group(1))
    style = re.search(r"Target style: (\w+)\.", prompt).group(1)
    features = sorted({leaf for groups in plan["selected_features_tree"].values() for leaves in groups.values()
                       for leaf in leaves})
    row = {"task_id": "bench", "style": style, "features": features,
           "integration_strategy": plan.get("integration_strategy", "")}
    settings = SimpleNamespace(min_tokens=min_tokens)
    return lambda content: generate_tasks._task(row, content, settings)


def recording(check, seen: list[str | None]):
    """`check`, noting each attempt's outcome: None when it passed, else the rejection reason."""
    def validator(content: str):
        try:
            value = check(content)
        except ValueError as rejected:
            seen.append(getattr(rejected, "reason", str(rejected)))
            raise
        seen.append(None)
        return value
    return validator


def run_kind(gateway: Gateway, kind: str, validator_spec: str | None, entries: list[dict], max_tokens: int,
             model: str | None, min_tokens: int, dump=None) -> dict:
    first_ok = after_ok = 0
    first_reasons: Counter = Counter()
    final_reasons: Counter = Counter()
    completion_tokens, errors = [], 0
    start = time.perf_counter()
    for entry in entries:
        sampling = dict(entry["sampling"])
        sampling["max_tokens"] = min(int(sampling.get("max_tokens") or max_tokens), max_tokens)
        sampling.setdefault("seed", 0)
        request = make_request(model or entry["model"], entry["messages"], **sampling)
        seen: list[str | None] = []
        if validator_spec is None:
            check, reask = statement_check(entry["messages"][0]["content"], min_tokens), 0
            validator = None
        else:
            check, reask = load_named(validator_spec), 1
            validator = recording(check, seen)
        schema = getattr(answer_schemas, SCHEMAS[kind]) if kind in SCHEMAS else None
        row = gateway.complete(pl.DataFrame([request]), validator, reask, schema).row(0, named=True)
        if dump is not None:
            dump.write(json.dumps({"kind": kind, "attempts": row["attempts"], "format_error": row["format_error"],
                                   "content": row["content"], "error": row["error"]}) + "\n")
        completion_tokens.append(row["completion_tokens"] / max(1, row["attempts"]))
        if row["error"] is not None:
            errors += 1
            first_reasons[f"call failed: {row['error'][:60]}"] += 1
            final_reasons[f"call failed: {row['error'][:60]}"] += 1
            continue
        if validator is None:  # the statement: checked after the call, never re-asked
            try:
                check(row["content"])
                seen.append(None)
            except Rejected as rejected:
                seen.append(rejected.reason)
        first = seen[0] if seen else "no answer"
        first_ok += first is None
        if first is not None:
            first_reasons[first] += 1
        final = seen[-1] if seen else "no answer"
        after_ok += final is None
        if final is not None:
            final_reasons[final] += 1
    return {"kind": kind, "asked": len(entries), "first": first_ok,
            "after": after_ok if validator_spec is not None else None, "first_reasons": first_reasons,
            "final_reasons": final_reasons if validator_spec is not None else None, "errors": errors,
            "tokens": sum(completion_tokens) / max(1, len(completion_tokens)), "seconds": time.perf_counter() - start}


def reasons(counter: Counter | None) -> str:
    if counter is None:
        return "(not re-asked)"
    return ", ".join(f"{reason} x{n}" for reason, n in counter.most_common(3)) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-base", required=True, help="an OpenAI-compatible server, e.g. http://127.0.0.1:8090/v1")
    parser.add_argument("--cassette", default="data/shipped/cassette.jsonl", type=Path)
    parser.add_argument("--per-kind", type=int, default=4, help="requests of each kind (the first N in the cassette)")
    parser.add_argument("--max-tokens", type=int, default=400, help="cap on every request's max_tokens")
    parser.add_argument("--model", default=None, help="model name sent instead of the cassette's")
    parser.add_argument("--min-tokens", type=int, default=200, help="generate_tasks.min_tokens for statements")
    parser.add_argument("--kinds", default=None, help="comma-separated subset of kinds (default: all)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per call")
    parser.add_argument("--dump", type=Path, default=None, help="write every answer here (JSONL) to read them")
    parser.add_argument("--json-output", default="off", choices=JSON_OUTPUTS,
                        help="constrain JSON answers to the stage's schema on the server (llm.models.<m>.json_output)")
    args = parser.parse_args()
    picked = pick_requests(args.cassette, args.per_kind)
    wanted = set(args.kinds.split(",")) if args.kinds else None
    dump = args.dump.open("w", encoding="utf-8") if args.dump else None
    with tempfile.TemporaryDirectory(prefix="format-bench-", dir="/tmp") as scratch:
        params = LLMParams(mode="live", cache_dir=str(Path(scratch) / "llm-cache"), progress=False, max_retries=1,
                           endpoints={"default": {"api_base": args.api_base, "concurrency": 1,
                                                  "timeout_s": args.timeout}},
                           models={model: {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0,
                                           "json_output": args.json_output}
                                   for model in {args.model or e["model"] for es in picked.values() for e in es}})
        gateway = Gateway(params, project_root=scratch, progress_label="format bench", use_cache=False)
        print(f"cassette {args.cassette}, up to {args.per_kind} requests per kind, max_tokens <= {args.max_tokens}, "
              f"seed = the request's or 0, api_base {args.api_base}, json_output {args.json_output}", flush=True)
        results = []
        for kind, _, validator_spec in KINDS:
            if wanted and kind not in wanted:
                continue
            result = run_kind(gateway, kind, validator_spec, picked[kind], args.max_tokens, args.model,
                              args.min_tokens, dump)
            results.append(result)
            print(f"  ... {kind}: {result['first']}/{result['asked']} first try, {result['seconds']:.0f} s",
                  file=sys.stderr, flush=True)
    if dump is not None:
        dump.close()
    header = f"{'kind':<19} {'asked':>5} {'1st try':>7} {'<=1 reask':>9} {'tok/ans':>7} {'s':>5}  rejections"
    print(header)
    print("-" * len(header))
    for r in results:
        after = "-" if r["after"] is None else str(r["after"])
        print(f"{r['kind']:<19} {r['asked']:>5} {r['first']:>7} {after:>9} {r['tokens']:>7.0f} {r['seconds']:>5.0f}  "
              f"first try: {reasons(r['first_reasons'])}; after re-ask: {reasons(r['final_reasons'])}")
    asked = sum(r["asked"] for r in results)
    first = sum(r["first"] for r in results)
    after = sum(r["first"] if r["after"] is None else r["after"] for r in results)
    print(f"{'total':<19} {asked:>5} {first:>7} {after:>9}   (task statement counts its first try in <=1 reask)")


if __name__ == "__main__":
    main()
