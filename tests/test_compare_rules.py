"""Each verdict rule of ``compare`` decided by a case that only that rule decides: mixed
verdicts in one pair, the A12 effect size against a heavy tail, Holm's adjustment over many
cells, the practical-size thresholds at their boundaries; and the must-match list driving
the refusals. Every case first asserts its premise (the other rules pass), so a change of
data that makes the case decided by another rule fails loudly instead of passing silently.
"""

import numpy as np
import pytest

from harness.compare import MUST_MATCH, Thresholds, compare
from oracles.errors import UserError
from test_compare import cell, rs

STO = ["samples_to_optimum"]
QUALITY = ["best_search"]
#: 100 baseline runs needing 200.5 ... 299.5 samples: mean exactly 250, no ties
BASE = 200.5 + np.arange(100.0)


def one(base_cell, cand_cell, metrics=STO, **thresholds):
    """The only metric of the only pair."""
    c = compare(rs(base_cell), rs(cand_cell), metrics=metrics, thresholds=Thresholds(**thresholds))
    (pair,) = c.pairs
    (m,) = pair.metrics
    return m


def above(x):
    return float(np.nextafter(x, np.inf))


# --- mixed verdicts across the metrics of one pair ----------------------------------------
def test_a_pair_is_worse_when_any_metric_is_worse_even_if_another_is_better():
    q = 0.9 + 1e-5 * np.arange(100)
    slower = BASE * 2                                          # every run needs twice the samples
    # slower to the optimum, same final quality: one metric worse, one indistinguishable
    c = compare(rs(cell("lanas", BASE, q)), rs(cell("lanas", slower, q)))
    assert [(m.metric, m.verdict) for m in c.pairs[0].metrics] == [
        ("samples_to_optimum", "worse"), ("best_search", "indistinguishable")]
    assert c.pairs[0].verdict == "worse" and c.regression
    # slower, but better final quality: worse wins over better
    c = compare(rs(cell("lanas", BASE, q)), rs(cell("lanas", slower, q + 0.01)))
    assert [m.verdict for m in c.pairs[0].metrics] == ["worse", "better"]
    assert c.pairs[0].verdict == "worse" and c.regression
    # as fast, better final quality: better, no regression
    c = compare(rs(cell("lanas", BASE, q)), rs(cell("lanas", BASE, q + 0.01)))
    assert [m.verdict for m in c.pairs[0].metrics] == ["indistinguishable", "better"]
    assert c.pairs[0].verdict == "better" and not c.regression
    # one pair worse and one better in the same comparison: a regression
    c = compare(rs(cell("a", BASE, q), cell("b", BASE, q)),
                rs(cell("a", slower, q), cell("b", BASE / 2, q)))
    assert [p.verdict for p in c.pairs] == ["worse", "better"] and c.regression


# --- A12 -----------------------------------------------------------------------------------
def test_a_heavy_tail_with_a_significant_p_and_ratio_is_decided_by_a12():
    # the candidate runs are the baseline's, except 20 of 100 never find the optimum
    # (censored at the budget, 1000): a large ratio of restricted means and a significant
    # p-value, but a random candidate run is worse than a random baseline run only 60% of
    # the time (below Vargha & Delaney's "medium" 0.64)
    cand = BASE.copy()
    cand[::5] = np.nan
    m = one(cell("lanas", BASE), cell("lanas", cand))
    assert m.p_worse_adj < 0.01 and m.effect > 1.5                 # premise: p and ratio say worse
    assert m.a12_worse == pytest.approx(0.604)
    assert m.verdict == "indistinguishable"
    assert one(cell("lanas", BASE), cell("lanas", cand), min_a12=0.60).verdict == "worse"


def test_a12_threshold_is_inclusive_in_both_directions():
    # 36 candidate runs faster than every baseline run, 64 slower than every one:
    # A12 = 6400 / 10000 = 0.64 exactly, the default threshold
    cand = np.r_[100 + np.arange(36.0), 600 + np.arange(64.0)]
    m = one(cell("lanas", BASE), cell("lanas", cand))
    assert m.a12_worse == 0.64 and m.p_worse_adj < 0.01 and m.effect > 1.1   # premise
    assert m.verdict == "worse"
    assert one(cell("lanas", BASE), cell("lanas", cand), min_a12=above(0.64)).verdict == "indistinguishable"
    # the other way round: A12 = 0.36 = 1 - 0.64 exactly, an improvement
    m = one(cell("lanas", cand), cell("lanas", BASE))
    assert m.a12_worse == 0.36 and m.p_better_adj < 0.01 and m.effect < 1 / 1.1
    assert m.verdict == "better"
    assert one(cell("lanas", cand), cell("lanas", BASE), min_a12=above(0.64)).verdict == "indistinguishable"


# --- practical size: min_ratio and min_diff -------------------------------------------------
def test_min_ratio_decides_at_its_boundary():
    # every run 25 samples slower: mean 275 / 250 = 1.1 exactly (the default), A12 0.72
    m = one(cell("lanas", BASE), cell("lanas", BASE + 25))
    assert m.effect == 1.1 and m.a12_worse > 0.7 and m.p_worse_adj < 1e-6   # premise
    assert m.verdict == "worse"
    # 24 slower: 1.096, as significant and as consistent, but below the practical size
    m = one(cell("lanas", BASE), cell("lanas", BASE + 24))
    assert m.effect < 1.1 and m.a12_worse > 0.7 and m.p_worse_adj < 1e-6
    assert m.verdict == "indistinguishable"
    assert one(cell("lanas", BASE), cell("lanas", BASE + 25), min_ratio=above(1.1)).verdict == "indistinguishable"
    # better: candidate/baseline <= 1/min_ratio, boundary included
    m = one(cell("lanas", BASE + 25), cell("lanas", BASE))
    assert m.verdict == "better" and m.effect == pytest.approx(1 / 1.1)
    r = 1 / m.effect
    assert 1 / r == m.effect                                   # premise: r is the exact boundary
    assert one(cell("lanas", BASE + 25), cell("lanas", BASE), min_ratio=r).verdict == "better"
    assert one(cell("lanas", BASE + 25), cell("lanas", BASE), min_ratio=r * (1 + 1e-12)).verdict == "indistinguishable"


def test_min_diff_decides_at_its_boundary():
    # quality of 20 runs spread over 0.02 pp, the candidate's all lower: A12 = 1, p tiny;
    # only the size of the difference (percentage points) decides
    q = 0.9 + 1e-5 * np.arange(20)
    m = one(cell("evo", quality=q), cell("evo", quality=q - 0.0006), QUALITY)
    assert m.effect == pytest.approx(0.06) and m.a12_worse == 1 and m.p_worse_adj < 1e-6   # premise
    assert m.verdict == "worse"
    m = one(cell("evo", quality=q), cell("evo", quality=q - 0.0004), QUALITY)
    assert m.effect == pytest.approx(0.04) and m.a12_worse == 1 and m.p_worse_adj < 1e-6
    assert m.verdict == "indistinguishable"
    # boundary: a difference equal to min_diff is worse, one ulp short of it is not
    e = one(cell("evo", quality=q), cell("evo", quality=q - 0.0006), QUALITY).effect
    assert one(cell("evo", quality=q), cell("evo", quality=q - 0.0006), QUALITY, min_diff=e).verdict == "worse"
    assert one(cell("evo", quality=q), cell("evo", quality=q - 0.0006), QUALITY,
               min_diff=above(e)).verdict == "indistinguishable"
    # better: baseline minus candidate <= -min_diff
    m = one(cell("evo", quality=q), cell("evo", quality=q + 0.0006), QUALITY)
    assert m.verdict == "better" and m.effect == pytest.approx(-0.06)
    assert one(cell("evo", quality=q), cell("evo", quality=q + 0.0006), QUALITY, min_diff=-m.effect).verdict == "better"
    assert one(cell("evo", quality=q), cell("evo", quality=q + 0.0006), QUALITY,
               min_diff=above(-m.effect)).verdict == "indistinguishable"


# --- Holm over many cells ------------------------------------------------------------------
#: 25 runs from 1,000 to 1,960 samples (budget 5,000); a candidate shifted by 240 has
#: one-sided p = 0.0054, A12 = 0.71 and a ratio of 1.16; shifted by 300, p = 0.0010
HOLM_BASE = 1000 + 40.0 * np.arange(25)


def holm_cells(shifts, side):
    return rs(*(cell(f"alg{i}", HOLM_BASE + (s if side == "cand" else 0), budget=5000)
                for i, s in enumerate(shifts)))


def test_holm_adjustment_over_cells_changes_the_verdict():
    single = compare(holm_cells([240], "base"), holm_cells([240], "cand"), metrics=STO)
    (m,) = single.pairs[0].metrics
    assert 0.005 < m.p_worse < 0.01 and m.a12_worse > 0.7 and m.effect > 1.1   # premise
    assert m.verdict == "worse"
    # three such cells: each p < 0.01 alone, 3 p >= 0.01 after Holm: none is a regression
    three = compare(holm_cells([240] * 3, "base"), holm_cells([240] * 3, "cand"), metrics=STO)
    ms = [p.metrics[0] for p in three.pairs]
    assert all(x.p_worse == pytest.approx(m.p_worse) and x.p_worse < 0.01 for x in ms)
    assert all(x.p_worse_adj == pytest.approx(3 * m.p_worse) for x in ms)
    assert [x.verdict for x in ms] == ["indistinguishable"] * 3 and not three.regression


def test_holm_is_step_down_not_bonferroni():
    # p = 0.0010 and 0.0054: Holm adjusts them to 0.0020 and 0.0054 (both < 0.01), while
    # Bonferroni (and Holm over both directions' four tests) would lift the second past 0.01
    c = compare(holm_cells([300, 240], "base"), holm_cells([300, 240], "cand"), metrics=STO)
    (m1,), (m2,) = (p.metrics for p in c.pairs)
    assert m1.p_worse < 0.002 and 0.005 < m2.p_worse < 0.01          # premise
    assert m1.p_worse_adj == pytest.approx(2 * m1.p_worse) and m2.p_worse_adj == pytest.approx(m2.p_worse)
    assert [p.verdict for p in c.pairs] == ["worse", "worse"]


def test_holm_counts_every_metric_of_every_pair():
    # the quality tests are in the family too: with best_search added (identical quality,
    # p = 1) the one cell at p = 0.0054 is adjusted to 2 p and is no longer a regression
    c = compare(holm_cells([240], "base"), holm_cells([240], "cand"), metrics=STO + QUALITY)
    sto, qual = c.pairs[0].metrics
    assert qual.p_worse == 1.0 and sto.p_worse < 0.01
    assert sto.p_worse_adj == pytest.approx(2 * sto.p_worse) and sto.p_worse_adj >= 0.01
    assert sto.verdict == "indistinguishable"


# --- the must-match list -------------------------------------------------------------------
def changed(value):
    """A different value of the same kind (a field the cells do not set is None)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "-changed"
    return "changed"


@pytest.mark.parametrize("field", MUST_MATCH)
def test_every_must_match_field_is_refused_in_one_line_naming_it(field):
    base = cell("lanas", BASE)
    cand = cell("lanas", BASE, **{field: changed(base.config.get(field))})
    with pytest.raises(UserError) as err:
        compare(rs(base), rs(cand))
    msg = str(err.value)
    assert "\n" not in msg and "differs" in msg and "lanas" in msg
    names = {field, field.replace("_", "-"), field.split("_")[-1]}
    assert any(n in msg for n in names), msg


#: what the module docstring promises must agree ("the same oracle data (checksum), budget,
#: protocol version, stopping rule and repeat charging"), with the words the refusal uses
DOCUMENTED = {"oracle_checksum": "oracle data (checksum) differs", "budget": "budget differs",
              "protocol": "run protocol version differs", "until_optimum": "stopping rule (--until-optimum) differs",
              "charge_repeats": "repeat charging (--charge-repeats) differs",
              "max_repeats": "stuck limit (--max-repeats) differs",
              "workers_per_run": "simulated workers per run (--workers-per-run) differs",
              "budget_kind": "budget unit (--budget-kind) differs"}


@pytest.mark.parametrize("field", sorted(DOCUMENTED))
def test_documented_must_match_fields_are_refused(field):
    base = cell("lanas", BASE)
    # settings added after the first protocol are absent from a configuration at their default
    default = {"workers_per_run": 1, "budget_kind": "archs"}.get(field)
    cand = cell("lanas", BASE, **{field: changed(base.config.get(field, default))})
    with pytest.raises(UserError) as err:
        compare(rs(base), rs(cand))
    assert DOCUMENTED[field] in str(err.value)


def test_the_must_match_list_is_the_documented_one_and_the_rest_is_compared():
    # a field added to the list would refuse comparisons that are the point of compare: a
    # changed hyper-parameter, or a variant of the algorithm matched by name
    assert set(MUST_MATCH) == set(DOCUMENTED)
    base = cell("lanas", BASE, params={"split": "adam"})
    cand = cell("lanas:split=lstsq", BASE, algorithm="lanas", params={"split": "lstsq"})
    c = compare(rs(base), rs(cand))
    assert c.pairs[0].verdict == "indistinguishable"
    assert any("hyper-parameters differ: split 'adam' -> 'lstsq'" in n for n in c.pairs[0].notes)


def test_a_configuration_without_max_repeats_meant_the_runner_default():
    """Baselines written before the stuck limit was compared carry no ``max_repeats``: they ran
    with the runner's default (10,000), so they compare with a candidate that ran with it and
    refuse one that ran with another."""
    from harness.runner import RunConfig
    from oracles.errors import UserError
    old = cell("lanas", BASE)
    del old.config["max_repeats"]
    same = cell("lanas", BASE, max_repeats=RunConfig("lanas").max_repeats)
    assert not compare(rs(old), rs(same)).regression
    with pytest.raises(UserError, match="stuck limit"):
        compare(rs(old), rs(cell("lanas", BASE, max_repeats=50)))


# --- the thresholds themselves ---------------------------------------------------------------
def test_alpha_is_a_strict_bound():
    # every candidate run slower than every baseline run: the verdict rests on p alone
    m = one(cell("lanas", BASE), cell("lanas", BASE * 2))
    assert m.verdict == "worse" and m.a12_worse == 1
    assert one(cell("lanas", BASE), cell("lanas", BASE * 2), alpha=m.p_worse_adj).verdict == "indistinguishable"
    assert one(cell("lanas", BASE), cell("lanas", BASE * 2), alpha=above(m.p_worse_adj)).verdict == "worse"
    m = one(cell("lanas", BASE * 2), cell("lanas", BASE))
    assert m.verdict == "better"
    assert one(cell("lanas", BASE * 2), cell("lanas", BASE), alpha=m.p_better_adj).verdict == "indistinguishable"
    assert one(cell("lanas", BASE * 2), cell("lanas", BASE), alpha=above(m.p_better_adj)).verdict == "better"


@pytest.mark.parametrize("field, ok, bad, words", [
    ("alpha", [1e-9, 0.5, 0.999], [0, 1, 1.5, -0.1], "--alpha must be in (0, 1), got"),
    ("min_a12", [0.5, 0.8, 1], [0.49, 1.01, 1.5], "--min-a12 must be in [0.5, 1], got"),
    ("min_ratio", [1, 1.5], [0.99, 0], "--min-ratio must be >= 1, got"),
    ("min_diff", [0, 0.5], [-0.01], "--min-diff must be >= 0, got"),
])
def test_threshold_ranges(field, ok, bad, words):
    for v in ok:
        assert Thresholds(**{field: v}).validate() == Thresholds(**{field: v})
    for v in bad:
        with pytest.raises(UserError) as err:
            Thresholds(**{field: v}).validate()
        assert str(err.value) == f"{words} {v}"
