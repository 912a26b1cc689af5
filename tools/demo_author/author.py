"""The hand-written demo "model" behind the shipped cassette. It is not a language model.

It answers each pipeline prompt from content we wrote by hand (seed features, an evolution
vocabulary, a catalogue of tasks with tests and good and bad candidate solutions), picking
deterministically, and deliberately answers some prompts badly (malformed JSON, missing
markers, missing keys) so every failure branch of the pipeline runs offline. Task statements
come from the catalogue by style: they do not follow the sampled features.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from pathlib import Path

import jinja2
import yaml

HERE = Path(__file__).parent
MODEL_NAME = "hand-written-demo-author"
# Seeds whose feature answers are deliberately broken: one loses its <end> marker, one has the
# wrong set of categories (both must be counted and dropped by extract_features).
BROKEN_FEATURE_SEEDS = {"seed-005": "missing_end_marker", "seed-014": "wrong_categories"}
# Every Nth request of a kind is answered badly (requests arrive in pipeline order, one at a time).
BROKEN_PLAN_EVERY = 10  # the plan misses a required key
BROKEN_EVOLUTION_EVERY = 9  # the answer is cut off, as when a model hits its token limit
# A re-ask (the gateway's format check failed) is answered properly, except every Nth, which gets the
# same unusable answer again, so both outcomes (recovered, failed after re-asks) appear in the demo.
REASK_PERSISTS_EVERY = 3
FORMAT_BROKEN_KINDS = {"no_code", "no_reasoning", "syntax_error", "two_blocks"}


class DemoAuthor:
    def __init__(self, seeds_path: Path):
        self.seeds = [json.loads(line) for line in seeds_path.read_text().splitlines() if line.strip()]
        self.features = yaml.safe_load((HERE / "seed_features.yaml").read_text())
        self.vocab = yaml.safe_load((HERE / "evolution_vocab.yaml").read_text())
        self.catalogue = [yaml.safe_load(p.read_text()) for p in sorted((HERE / "tasks").glob("*.yaml"))]
        self.used_tasks: Counter = Counter()
        self.calls: Counter = Counter()
        self.fixing = False  # answering a re-ask: no deliberate breakage

    def respond(self, model: str, messages: list[dict], sampling: dict) -> str:
        if len(messages) > 1:
            return self._reask(model, messages, sampling)
        prompt = messages[-1]["content"]
        if "## Reference solution" in prompt:
            return self._features(prompt)
        if prompt.startswith("You are growing a taxonomy"):
            return self._evolve(prompt)
        if prompt.startswith("You are designing a new competitive-programming problem"):
            return self._plan(prompt)
        if prompt.startswith("Write one original competitive-programming problem"):
            return self._task(prompt)
        if prompt.startswith("You write test inputs"):
            return self._tests(prompt)
        if prompt.startswith("You write a test-input generator"):
            return self._program(prompt, "generator", "It draws each case from the seed and writes one file per"
                                 " characteristic, covering the smallest and largest sizes and values.")
        if prompt.startswith("You write an input validator"):
            return self._program(prompt, "validator", "It parses the input strictly and checks every stated"
                                 " bound, exiting with status 1 and a reason on the first violation.")
        if prompt.startswith("Solve the following competitive-programming problem"):
            return self._solution(prompt, model, sampling.get("seed", 0))
        raise ValueError(f"the demo author has no answer for this prompt: {prompt[:120]!r}")

    def _reask(self, model: str, messages: list[dict], sampling: dict) -> str:
        self.calls["reask"] += 1
        if self.calls["reask"] % REASK_PERSISTS_EVERY == 0:
            return messages[-2]["content"]
        self.fixing = True
        try:
            return self.respond(model, messages[:1], sampling)
        finally:
            self.fixing = False

    # -- extract_features
    def _features(self, prompt: str) -> str:
        seed = next(s for s in self.seeds if s["statement"].strip() in prompt)
        features = self.features[seed["seed_id"]]
        broken = None if self.fixing else BROKEN_FEATURE_SEEDS.get(seed["seed_id"])
        if broken == "wrong_categories":
            features = {k: v for k, v in features.items() if k != "optimization_techniques"} | {"misc": {"other": ["x"]}}
        body = json.dumps(features, indent=1)
        if broken == "missing_end_marker":
            return f"Here are the features.\n<begin>\n{body[: len(body) // 2]}"
        return f"<begin>\n{body}\n<end>"

    # -- evolve_features
    def _evolve(self, prompt: str) -> str:
        category = re.search(r'in the category "([^"]+)"', prompt).group(1)
        tree = set(re.search(r"```text\n(.*?)```", prompt, re.S).group(1).split())
        tree_names = {part for path in tree for part in path.split("/")}
        widen, deepen = (json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", prompt, re.S))
        rng = _rng(_seed_prompt("evolve_features", category=category, tree=_text_block(prompt), widen=widen,
                                deepen=deepen, min_new=int(re.search(r"at least (\d+) new siblings", prompt).group(1))))
        vocab = self.vocab[category]
        fresh = lambda names: [n for n in names if n.lower() not in tree_names]  # noqa: E731
        breadth = []
        for node in widen:
            pool = fresh(vocab["subcategories"]) if node.count("/") == 1 else fresh(vocab["leaves"])
            breadth.append({"node": node, "siblings": rng.sample(pool, min(3, len(pool)))})
        depth = []
        for leaf in deepen:
            name = leaf.rsplit("/", 1)[-1]
            children = vocab.get("refinements", {}).get(name) or [f"{name} {m}" for m in rng.sample(MODIFIERS, 2)]
            depth.append({"leaf": leaf, "children": children})
        answer = json.dumps({"breadth": breadth, "depth": depth})
        self.calls["evolve"] += 1
        broken = self.calls["evolve"] % BROKEN_EVOLUTION_EVERY == 0 and not self.fixing
        return answer[: len(answer) // 3] if broken else answer

    # -- generate_tasks, stage 1
    def _plan(self, prompt: str) -> str:
        self.calls["plan"] += 1
        subtree = json.loads(re.search(r"```json\n(.*?)\n```", prompt, re.S).group(1))
        rng = _rng(_seed_prompt("plan_task", subtree=subtree))
        roles = {c: {s: {leaf: {"potential_use": _use(c, leaf, rng)} for leaf in leaves} for s, leaves in g.items()}
                 for c, g in subtree.items()}
        leaves = [(c, s, leaf) for c, g in subtree.items() for s, ls in g.items() for leaf in ls]
        keep = [x for x in leaves if x[0] in ("algorithm", "data_structures")]
        others = [x for x in leaves if x not in keep]
        keep += rng.sample(others, max(0, min(len(others), 4 - len(keep))))
        selected: dict = {}
        for c, s, leaf in keep:
            selected.setdefault(c, {}).setdefault(s, []).append(leaf)
        names = [leaf.rsplit("/", 1)[-1] for _, _, leaf in keep]
        plan = {"feature_roles_tree": roles, "selected_features_tree": selected,
                "integration_strategy": (f"The core of the solution combines {names[0]} with {names[1]}: "
                                         f"the first organises the data so that the second can answer each step "
                                         f"quickly; {', '.join(names[2:]) or 'careful input handling'} keeps the "
                                         f"whole within the limits.")}
        if self.calls["plan"] % BROKEN_PLAN_EVERY == 0 and not self.fixing:
            del plan["integration_strategy"]
        return json.dumps(plan)

    # -- generate_tasks, stage 2
    def _task(self, prompt: str) -> str:
        style = re.search(r"Target style: (\w+)\.", prompt).group(1)
        entries = [t for t in self.catalogue if t["style"] == style]
        entry = entries[self.used_tasks[style] % len(entries)]
        self.used_tasks[style] += 1
        statement = entry["statement"].strip()
        return statement if statement.startswith("# ") else f"# {entry['title']}\n\n{statement}"

    def _entry_for(self, prompt: str) -> dict:
        return next(t for t in self.catalogue if t["statement"].strip() in prompt)

    # -- generate_tests
    def _tests(self, prompt: str) -> str:
        entry = self._entry_for(prompt)
        if entry.get("tests_malformed") and not (self.fixing and entry.get("tests")):
            return "Sure! Here are some tests:\n- n = 3, values 1 2 3\n- n = 1 (edge)\nLet me know if you need more."
        return json.dumps({"test_cases": [{"idx": i, "description": t["description"], "input_string": t["input"]}
                                          for i, t in enumerate(entry["tests"], 1)]}, indent=1)

    # -- generate_tests, tool-based generator and validator
    def _program(self, prompt: str, field: str, plan: str) -> str:
        return f"{plan}\n\n```python\n{self._entry_for(prompt)[field].rstrip()}\n```\n"

    # -- generate_solutions
    def _solution(self, prompt: str, model: str, sample: int) -> str:
        entry = self._entry_for(prompt)
        model_no = 0 if model.endswith("-a") else 1
        candidate = entry["candidates"][(model_no * 4 + sample) % len(entry["candidates"])]
        if self.fixing and candidate["kind"] in FORMAT_BROKEN_KINDS:
            candidate = next(c for c in entry["candidates"] if c["kind"] == "correct")
        return candidate["response"]


MODIFIERS = ["on trees", "with updates", "in two dimensions", "over a circular array", "with modular arithmetic",
             "under memory limits", "on sparse inputs", "with multiple test cases"]
USES = ["to organise the input so that repeated questions are cheap", "to bound the search space",
        "to decide each step greedily", "to combine partial answers", "to keep the running state small"]


def _use(category: str, leaf: str, rng: random.Random) -> str:
    return f"Use {leaf.rsplit('/', 1)[-1]} {rng.choice(USES)}."


def _rng(prompt: str) -> random.Random:
    return random.Random(hashlib.sha256(prompt.encode()).hexdigest())


def _seed_prompt(template: str, **values) -> str:
    """The prompt as the first shipped wording of `template` renders these values: the author's random
    choices are keyed on it, so rewording the live prompts (src/synthsmith/prompts/) leaves the demo's
    answers, and so its results, as they were. The frozen wording is in seed_prompts/."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "seed_prompts"),
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
    return environment.get_template(f"{template}.j2").render(**values).strip()


def _text_block(prompt: str) -> list[str]:
    """The lines of the prompt's first ```text block (the tree of an evolution prompt)."""
    return re.search(r"```text\n(.*?)```", prompt, re.S).group(1).splitlines()
