"""``nas-harness check`` (:mod:`harness.check`) fails each broken algorithm of
``tests/broken_algorithms`` for its own reason, and only that one, and passes good built-ins.

The default run uses the quick settings on the shipped convnet-digits table (about 40 s in
all); ``-m slow`` runs the full check (the NB201 table as a second table, four workers in the
stopping check, 20 seeds) on random search and regularized evolution, and a multi-fidelity
algorithm on NB201's 12 and 200 epochs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from broken_algorithms.contrarian import Contrarian
from broken_algorithms.elite_cache import EliteCache
from broken_algorithms.global_rng import GlobalRandom
from broken_algorithms.prefers_failures import CrashesOnFailures, EndsOnFailure, PrefersFailures
from broken_algorithms.reads_report import ReadsReport
from broken_algorithms.stop_iteration import StopsByRaising
from conftest import data_env
from harness import check
from harness.cli import main
from oracles.errors import UserError
from oracles.registry import load_oracle

QUICK = check.Settings.quick(statistics=False)


def outcomes(algorithm, settings=QUICK, only=None) -> dict[str, check.Outcome]:
    return {o.check: o for o in check.check(algorithm, settings=settings, only=only)}


def failed(out: dict[str, check.Outcome]) -> set[str]:
    return {name for name, o in out.items() if o.status == check.FAIL}


def test_reading_the_report_metric_fails_no_test_metric():
    out = outcomes(ReadsReport)
    # on the minimised mirror the report metric is negated too, so it climbs the other way
    assert failed(out) == {"no-test-metric", "directions"}
    reason = out["no-test-metric"].reason
    assert reason.startswith("reads the report metric (test_acc)") or reason.startswith("holds a report value")
    assert out["determinism"].status == out["stopping"].status == check.PASS


def test_a_global_generator_fails_global_rng_and_is_named():
    out = outcomes(GlobalRandom)
    assert out["global-rng"].status == check.FAIL
    assert out["global-rng"].details["generators"] == ["numpy's global np.random"]
    assert "draws from numpy's global np.random" in out["global-rng"].reason
    # with the global generators seeded alike, seeds 3 and 4 are one run: the given rng is unused
    assert "the generator given to start is not used" in out["determinism"].reason
    assert failed(out) == {"global-rng", "determinism"}


def test_ending_with_stop_iteration_fails_stopping():
    out = outcomes(StopsByRaising)
    assert failed(out) == {"stopping"}
    reason = out["stopping"].reason
    assert reason.startswith("ended its run by raising StopIteration") and "return DONE instead" in reason
    assert "stop_iteration.py" in reason


def test_state_left_by_a_killed_run_fails_resume():
    out = outcomes(EliteCache)
    assert failed(out) == {"resume"}
    assert "state outlives a run" in out["resume"].reason


def test_a_failure_taken_for_zero_fails_failed_results():
    out = outcomes(PrefersFailures)
    assert failed(out) == {"failed-results"}, {k: o.reason for k, o in out.items()}
    o = out["failed-results"]
    assert o.reason.startswith("drawn to failed results") and "algorithms.base.FailedResults" in o.reason
    d = o.details
    assert d["asked_failed"] / d["asked"] > d["failed_share"] and d["p_value"] < check.FAILED_ALPHA


def test_a_crash_or_an_end_on_a_failed_result_fails_failed_results():
    out = outcomes(CrashesOnFailures)
    assert failed(out) == {"failed-results"}, {k: o.reason for k, o in out.items()}
    assert out["failed-results"].reason.startswith("seed 0 failed: ValueError: Probabilities contain NaN")
    o = outcomes(EndsOnFailure, only=["failed-results", "stopping"])
    assert o["stopping"].status == check.PASS
    assert o["failed-results"].status == check.FAIL
    assert "with failed results among them (without them: 30)" in o["failed-results"].reason


def test_the_failing_table_fails_a_structured_neutral_third():
    """The failed cells: one or two token values, a share within FAILED_SHARE, and as good as
    the rest (median quantile near 0.5); the others keep their order as a loss in [1, 101]."""
    o = load_oracle("convnet-digits")
    bad, mask, words = check.failing(o)
    lo, hi = check.FAILED_SHARE
    assert lo <= mask.mean() <= hi and words.startswith("token ")
    tokens = np.asarray(o.space.tokens_all())
    (i, a), *rest = [tuple(int(x) for x in part.split(" = ")) for part in
                     words.removeprefix("token ").split(" or token ")]
    expected = tokens[:, i] == a
    for j, b in rest:
        expected |= tokens[:, j] == b
    assert np.array_equal(mask, expected)
    assert bad.direction == "min"
    v, w = o.search_values, bad.search_values
    assert np.all(np.isinf(w[mask])) and np.all(np.isfinite(w[~mask]))
    assert w[~mask].min() >= 1.0 and w[~mask].max() <= 101.0
    keep = ~mask
    assert np.all(np.diff(w[keep][np.argsort(-v[keep])]) >= -1e-9)      # the better, the lower
    q = np.argsort(np.argsort(v)) / (len(v) - 1)
    assert abs(np.median(q[mask]) - 0.5) < 0.1
    assert bad.query_index(int(np.flatnonzero(mask)[0])).observation.value == np.inf


def test_an_algorithm_worse_than_random_search_fails_the_comparison():
    out = outcomes(Contrarian, check.Settings.quick(seeds=6), only=["samples-to-optimum"])
    o = out["samples-to-optimum"]
    assert o.status == check.FAIL and o.reason.startswith("needs significantly more samples than random search")
    mine, rs = o.details["runs"]["contrarian"], o.details["runs"]["random"]
    assert np.mean(mine["samples"]) > 1.5 * np.mean(rs["samples"])
    ratio = o.details["ratios"]["random"]["mean"]
    assert ratio["lo"] > 1.1


@pytest.mark.parametrize("name", ["random", "evolution"])
def test_good_built_ins_pass(name):
    out = outcomes(name, check.Settings.quick())
    assert failed(out) == set(), {k: o.reason for k, o in out.items()}
    assert out["fidelities"].status == check.NA
    stats = out["samples-to-optimum"].details
    other = "evolution" if name == "random" else "random"
    assert set(stats["runs"]) == {name, other} and len(stats["runs"][name]["samples"]) == 10
    r = stats["ratios"][other]["median"]
    assert r["lo"] <= r["value"] <= r["hi"]


def test_poisoned_table_keeps_what_algorithms_see():
    o = load_oracle("convnet-digits")
    bad, sentinels = check.poisoned(o, seed=7)
    assert np.array_equal(bad.search_values, o.search_values)
    for i in (0, 5, o.space.size - 1):
        a, b = o.query_index(i), bad.query_index(i)
        assert a.observation == b.observation
        assert b.report in sentinels and b.report != a.report
    assert sorted(sentinels - check.SENTINEL) == list(range(o.space.size))


def test_minimised_mirror_and_subset_tables():
    o = load_oracle("convnet-digits")
    m = check.minimised(o)
    assert m.direction == "min" and m.optimum.identities == o.optimum.identities
    assert m.query_index(3).observation.value == -o.query_index(3).observation.value
    assert check.minimised(m).direction == "max"
    s = check.subset_oracle(o, 24)
    assert s.space.size == 24 and s.space.is_finite
    for i in range(24):
        a = s.space.arch(i)
        assert s.query(a).observation == o.query(a).observation


def test_a_class_to_check_must_be_importable_and_a_name_must_exist():
    class Local(check.SearchAlgorithm):     # defined in a function: no process can import it
        def start(self, space, rng): ...
        def ask(self): ...
        def tell(self, arch, obs): ...

    with pytest.raises(UserError, match="top level of an importable module"):
        check.Subject.of(Local)
    with pytest.raises(UserError, match="unknown algorithm"):
        check.Subject.of("no-such-algorithm")
    with pytest.raises(UserError, match="unknown check"):
        check.check("random", only=["nonsense"])
    assert check.Subject.of("evolution:population=5").params == {"population": "5"}


def test_checks_leave_the_global_generators_as_they_were():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    check.check("random", settings=QUICK, only=["global-rng", "determinism"])
    assert np.random.random() == expected


def test_the_command_exits_0_when_everything_passes(capsys):
    assert main(["check", "random", "--quick", "--no-statistics"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "check random (algorithms.random_search.RandomSearch), quick:"
    assert "  pass  determinism" in out and "  n/a   fidelities" in out
    assert "  n/a   samples-to-optimum  skipped (statistics off)" in out
    assert out.rstrip().endswith("8 passed, 0 failed, 2 not applicable")


def test_the_command_exits_1_and_says_why(capsys):
    # a class by its import path, as a user names their own
    assert main(["check", "broken_algorithms.stop_iteration.StopsByRaising", "--quick", "--only", "stopping",
                 "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["passed"] is False
    [o] = doc["checks"]
    assert o["check"] == "stopping" and o["status"] == "fail" and "StopIteration" in o["reason"]


def test_the_command_refuses_an_unknown_algorithm_in_one_line(capsys):
    assert main(["check", "no-such-algorithm", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown algorithm 'no-such-algorithm'" in err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["random", "evolution"])
def test_full_check_on_both_tables(name, nb201_data_dir):
    with data_env(nb201_data_dir):
        out = outcomes(name, check.Settings())
    assert failed(out) == set(), {k: o.reason for k, o in out.items()}
    assert "nb201/cifar10 (max)" in out["directions"].reason
    assert "1 and 4 workers" in out["stopping"].reason


@pytest.mark.slow
def test_full_check_of_a_multi_fidelity_algorithm(nb201_data_dir):
    with data_env(nb201_data_dir):
        out = outcomes("hyperband", check.Settings(statistics=False))
    assert failed(out) == set(), {k: o.reason for k, o in out.items()}
    assert out["fidelities"].status == check.PASS


# --- the pytest plugin (harness/pytest_plugin.py), as a user's suite enables it -------------
pytest_plugins = ["pytester"]

USER_CONFTEST = 'pytest_plugins = ["harness.pytest_plugin"]\n'


def test_nas_check_fixture_fails_a_test_with_the_reason(pytester):
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_user='''
        from broken_algorithms.stop_iteration import StopsByRaising

        def test_good(nas_check):
            out = nas_check("random", only=["stopping", "determinism"])
            assert [o.status for o in out] == ["pass", "pass"]

        def test_broken(nas_check):
            nas_check(StopsByRaising, only=["stopping"])
    ''')
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*nas-harness check failed:*", "*FAIL  stopping*ended its run by raising "
                                 "StopIteration*return DONE instead*"])


def test_nas_check_full_option_runs_the_full_settings(pytester):
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_user='''
        def test_stopping(nas_check):
            [o] = nas_check("random", only=["stopping"])
            assert "(1 and 4 workers)" in o.reason
    ''')
    pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider", "--nas-check-full").assert_outcomes(passed=1)
    pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider").assert_outcomes(failed=1)


def test_nas_guard_fixture_passes_a_rerun_and_fails_a_regression(pytester, tmp_path, monkeypatch):
    """A baseline of algorithm 'mine' (random search), then 'mine' made worse (Contrarian's
    argmin acquisition): the guard passes the re-run and fails the regression with compare's
    text. 6 seeds: the fewest whose one-sided exact rank test can reach p < 0.01."""
    from algorithms import REGISTRY
    monkeypatch.setitem(REGISTRY, "mine", "algorithms.random_search:RandomSearch")
    base = tmp_path / "base"
    assert main(["run", "--oracle", "convnet-digits", "--algorithm", "mine", "--seeds", "6", "--until-optimum",
                 "--out", str(base), "--quiet"]) == 0
    assert main(["baseline", str(base), str(tmp_path / "mine.json")]) == 0
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_guard=f'''
        def test_guard(nas_guard):
            result = nas_guard({str(tmp_path / "mine.json")!r}, "mine", oracle="convnet-digits")
            assert [p.verdict for p in result.pairs] == ["indistinguishable"]
    ''')
    pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    monkeypatch.setitem(REGISTRY, "mine", "broken_algorithms.contrarian:Contrarian")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*mine -> mine*samples to optimum*WORSE*", "*REGRESSION*"])


# --- docs/ci-guard.md and its workflow: every nas-harness command they show parses -----------
def guard_commands() -> list[str]:
    """The nas-harness command lines of docs/ci-guard.md's bash blocks and of the example
    workflow's steps (continuation lines joined; the workflow's variables set)."""
    import re
    from pathlib import Path

    import yaml
    docs = Path(__file__).resolve().parent.parent / "docs"
    texts = re.findall(r"```bash\n(.*?)```", (docs / "ci-guard.md").read_text(), re.S)
    flow = yaml.safe_load((docs / "examples" / "nas-harness-guard.yml").read_text())
    env = flow["jobs"]["guard"]["env"]
    texts += [step["run"] for step in flow["jobs"]["guard"]["steps"] if "run" in step]
    out = []
    for text in texts:
        for line in text.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("nas-harness "):
                for key, value in env.items():
                    line = line.replace(f'"${key}"', value)
                out.append(line)
    return out


def test_the_guard_recipe_uses_the_commands_as_they_are():
    import shlex

    from harness.cli import build_parser
    commands = guard_commands()
    assert {c.split()[1] for c in commands} == {"run", "baseline", "check", "compare"}
    parser = build_parser()
    for line in commands:
        args = parser.parse_args(shlex.split(line)[1:])     # an unknown flag exits here
        assert args.func is not None
        if args.command == "run":
            assert args.oracles == ["convnet-digits"] and args.until_optimum and args.seeds == 20
