"""Reference results in reports and figures (harness.summary: write_references and the
"Reference results" block; harness.figures: horizontal lines): a result that is not a search
algorithm (scikit-learn's MLPClassifier beside MLPNAS, Minutoli & Ciranni §5.2) is shown on
its oracle's metrics, and a folder without references reports exactly as before."""

import json

import numpy as np
import pytest

from harness.cli import main as cli
from harness.figures import Figures
from harness.metrics import load_folder
from harness.summary import (REFERENCES_FILE, read_references, reference_entry, reference_summary, references_of,
                             write_references)
from oracles.errors import UserError

ORACLE = "convnet-digits"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from harness.experiment import Experiment, execute
    d = tmp_path_factory.mktemp("refs") / "runs"
    execute(Experiment(oracles=[ORACLE], algorithms=["random", "evolution:population=10,sample_size=3"],
                       seeds=3, budget=40, out=str(d)), progress=False)
    return d


def reports(folder, capsys) -> dict[str, str]:
    out = {}
    for fmt in ("text", "json", "md"):
        assert cli(["report", str(folder), "--format", fmt, "--no-figures"]) == 0
        out[fmt] = capsys.readouterr().out
    return out


def test_entries_are_checked_and_replaced_by_oracle_and_name(tmp_path):
    assert read_references(tmp_path) == [] and read_references(tmp_path / "missing") == []
    with pytest.raises(UserError, match="no value"):
        reference_entry(ORACLE, "nothing", None, [float("nan")])
    with pytest.raises(UserError, match="oracle and a name"):
        reference_entry("", "x", 0.5, 0.5)
    write_references(tmp_path, [reference_entry(ORACLE, "a", 0.9, [0.8, None]),
                                reference_entry("other", "a", [0.1], 0.2)])
    refs = write_references(tmp_path, [reference_entry(ORACLE, "a", [0.7, 0.75], 0.6, {"how": "again"})])
    assert [(e["oracle"], e["name"]) for e in refs] == [("other", "a"), (ORACLE, "a")]
    back = read_references(tmp_path)
    assert back == refs and back[1]["search"] == [0.7, 0.75] and back[1]["provenance"] == {"how": "again"}
    assert read_references(tmp_path)[0]["report"] == [0.2]   # a number is a list of one
    (tmp_path / REFERENCES_FILE).write_text("{not json")
    with pytest.raises(UserError, match="not a references file"):
        read_references(tmp_path)


def test_reports_add_a_reference_block_and_change_nothing_else(folder, capsys):
    before = reports(folder, capsys)
    assert "reference" not in before["text"].lower() and "Reference results" not in before["md"]
    assert "references" not in json.loads(before["json"])
    search, report = [0.95, 0.97, 0.96], [0.94, 0.93, 0.96]
    write_references(folder, [reference_entry(ORACLE, "hand-made net", search, report, {"by": "test"},
                                              note="trained by hand")])
    try:
        after = reports(folder, capsys)
    finally:
        (folder / REFERENCES_FILE).unlink()
    # text: one more note line, nothing else changed
    extra = [line for line in after["text"].splitlines() if line not in before["text"].splitlines()]
    assert extra == [f"reference on {ORACLE}: hand-made net: search 96.00 [95.00, 97.00] (n=3) %, "
                     "report 94.00 [93.00, 96.00] (n=3) % (median [min, max] over repetitions)"]
    assert after["text"].replace("\n" + extra[0], "") == before["text"]
    # json: the same report plus "references", the values summarised as the runs are
    rep, rep0 = json.loads(after["json"]), json.loads(before["json"])
    (ref,) = rep.pop("references")
    assert rep == rep0
    assert ref["name"] == "hand-made net" and ref["provenance"] == {"by": "test"}
    assert ref["search"]["median"] == pytest.approx(0.96) and ref["search"]["n"] == 3
    assert ref["report"]["mean"] == pytest.approx(np.mean(report))
    assert (ref["report"]["min"], ref["report"]["max"]) == (0.93, 0.96)
    # markdown: a block of its own between the quality table and what follows it
    block = after["md"].split("## Reference results")[1].split("\n## ")[0]
    assert f"| {ORACLE} | hand-made net | valid_acc [%]: 96.00 [95.00, 97.00] (n=3) | " \
           "test_acc [%]: 94.00 [93.00, 96.00] (n=3) | trained by hand |" in block
    md = after["md"][:-1]   # the command prints the report (which ends in a newline)
    start = md.index("## Reference results")
    end = md.find("\n## ", start)
    without = md[:start].rstrip() + "\n" if end < 0 else md[:start] + md[end + 1:]
    assert without == before["md"][:-1]


def test_a_single_value_prints_alone_and_summaries_match_estimates():
    e = reference_summary(reference_entry(ORACLE, "one", 0.5, None))
    assert e["search"]["median"] == 0.5 and e["search"]["n"] == 1 and e["report"]["n"] == 0
    from harness.summary import reference_notes
    assert reference_notes([e]) == [f"reference on {ORACLE}: one: search 50.00 %, report –"]


def test_figures_draw_each_reference_as_a_line_at_its_median(folder):
    rs = load_folder(folder)
    assert references_of(rs) == []
    label = "reference: hand-made net"
    plain = Figures(rs)
    fig = plain.build("fig5")
    assert not [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_label() == label]
    refs = [reference_entry(ORACLE, "hand-made net", [0.95, 0.97, 0.96], [0.90, 0.93, 0.91])]
    figs = Figures(rs, references=refs)
    fig = figs.build("fig5")
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == label]
    assert np.allclose(line.get_ydata(), 96.0)
    lo, hi = fig.axes[0].get_ylim()
    assert lo < 96.0 < hi
    assert label in [t.get_text() for t in fig.legends[0].get_texts()]
    fig = figs.build("curves_mean")
    ys = sorted(float(ln.get_ydata()[0]) for ax in fig.axes for ln in ax.get_lines() if ln.get_label() == label)
    assert np.allclose(ys, [91.0, 96.0])   # report metric below, search metric on top
    # a reference of another oracle draws nothing here
    other = Figures(rs, references=[reference_entry("elsewhere", "x", 0.9, 0.9)]).build("fig5")
    assert not [ln for ax in other.axes for ln in ax.get_lines() if str(ln.get_label()).startswith("reference:")]


def test_report_md_draws_the_folder_references(folder, tmp_path, capsys):
    write_references(folder, [reference_entry(ORACLE, "hand-made net", 0.96, 0.94)])
    try:
        md = tmp_path / "r.md"
        assert cli(["report", str(folder), "--format", "md", "--output", str(md)]) == 0
        assert "## Reference results" in md.read_text()
        # the figures the report drew read the folder's references themselves
        fig = Figures(load_folder(folder)).build("fig5")
        assert any(ln.get_label() == "reference: hand-made net" for ln in fig.axes[0].get_lines())
    finally:
        (folder / REFERENCES_FILE).unlink()
