"""compare on a minimised metric (perplexity): lower is better, and the effect is in the
metric's own unit, not in percentage points."""

import numpy as np

from harness.compare import compare, format_comparison
from harness.metrics import OracleInfo, ResultSet
from test_compare import cell

PPL = 80.0 + 0.01 * np.arange(40)          # a baseline's final validation perplexities


def sets(base_q, cand_q, direction):
    info = {"o": OracleInfo("o", "abc", optimum_search=60.0, best_report=59.0, search_metric="valid_ppl",
                            report_metric="test_ppl", direction=direction)}
    return (ResultSet("b", "baseline", [cell("m", quality=base_q)], info),
            ResultSet("c", "baseline", [cell("m", quality=cand_q)], info))


def verdict(base_q, cand_q, direction):
    c = compare(*sets(base_q, cand_q, direction), metrics=["best_search"])
    return c.pairs[0].metrics[0]


def test_higher_perplexity_is_worse_and_lower_is_better():
    worse = verdict(PPL, PPL + 5, "min")
    assert worse.verdict == "worse" and worse.a12_worse == 1.0
    assert abs(worse.effect - 5.0) < 1e-9           # 5 perplexity points, not 500 "pp"
    assert verdict(PPL, PPL - 5, "min").verdict == "better"


def test_the_same_numbers_read_the_other_way_round_when_maximised():
    assert verdict(PPL, PPL + 5, "max").verdict == "better"
    assert verdict(PPL, PPL - 5, "max").verdict == "worse"


def test_a_tiny_perplexity_change_is_below_the_minimum_difference():
    # every candidate run worse than every baseline run (A12 = 1, significant), but by 0.01
    # perplexity points only, under min_diff (0.05 in the metric's unit)
    tight = 80.0 + 1e-4 * np.arange(40)
    m = verdict(tight, tight + 0.01, "min")
    assert m.a12_worse == 1.0 and m.p_worse_adj < 0.01 and m.verdict == "indistinguishable"


def test_the_table_shows_perplexity_as_plain_numbers():
    text = format_comparison(compare(*sets(PPL, PPL + 5, "min"), metrics=["best_search"]))
    assert "80.2" in text and "%" not in text.split("\n")[1] and " pp" not in text.split("\n")[1]
