"""The README's memory flywheel example: starting from a rule, a few rounds of the flywheel learn a policy that earns
more on memories it never saw, by the simulator's own expected rewards (seeded: the same figures every run)."""

import importlib.util
import sys
from pathlib import Path

import rolloutdb

EXAMPLE = Path(__file__).parent.parent / "examples" / "memory_flywheel.py"


def load_example():
    spec = importlib.util.spec_from_file_location("memory_flywheel", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_the_learned_policy_beats_the_starting_rule_on_held_out_traffic(fresh_database_url):
    lines = []
    rounds, start, end = load_example().run(fresh_database_url, rounds=3, per_round=600, seed=1, report=lines.append)
    assert end > start + 0.3  # per decision, on 3,000 held-out memories
    assert rounds[0].policy == "rule/length" and rounds[0].activated
    assert rounds[1].policy == "memory/v1" and rounds[1].truth > rounds[0].truth
    assert rounds[1].mean_reward > rounds[0].mean_reward  # and the decisions it took earned more
    assert [line.split(":")[0] for line in lines] == ["round 0", "round 1", "round 2"]
    with rolloutdb.connect(fresh_database_url, project="memory-flywheel-1") as store:
        advised = store.decisions.query(policy_version="memory/v1", limit=5)
        assert advised and all(0 < d.propensity <= 1 and d.reward is not None for d in advised)
        versions = store.policies.list("memory")
        assert [c.version for c in versions] == [3, 2, 1]
        assert sum(c.active for c in versions) == 1
        assert all({"dr", "gain", "logging", "ips", "samples"} <= set(c.metrics) for c in versions)
