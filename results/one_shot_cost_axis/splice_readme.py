"""Copy the tables of report.md into README.md between its markers, so the README's tables are
analyse.py's output, never typed by hand (run by regenerate.sh after analyse.py)."""
from pathlib import Path

d = Path(__file__).resolve().parent
rep = (d / "report.md").read_text().splitlines()


def section(start, stop):
    i = next(k for k, l in enumerate(rep) if l.startswith(start))
    j = next(k for k in range(i + 1, len(rep)) if rep[k].startswith(stop))
    return rep[i:j]


every = [l for l in section("## Every method", "Supernet oracle") if l.startswith("|")]
# compact: method, kind, seeds, true test, top 1 %, search CPU, algo CPU, final training
keep = [1, 2, 3, 5, 8, 9, 10, 12]
compact = []
for l in every:
    cells = l.split("|")
    compact.append("|" + "|".join(cells[k] for k in keep) + "|")
notes = [l for l in section("## Every method", "Supernet oracle") if l.startswith("One seed a query") or l.startswith("Table charge")]
lanas = [l for l in section("## LaNAS", "## At each") if l.startswith("|")]
fixed = [l for l in section("## At fixed", "| reference") if l.startswith("|")]
block = (["### The LaNAS rows: LaNAS's incumbent at each one-shot method's own search cost", "",
          "True test accuracy [%], median [95 %] over seeds; p: two-sided Mann-Whitney against the "
          "one-shot method's finals, Holm-adjusted over all sample-based rows of that one-shot method "
          "(`report.md`, one block per one-shot method, with every search and the CPU at which each "
          "first reaches the one-shot median).", ""] + lanas +
         ["", "### Every method at the end of its runs", ""] + compact + [""] + notes +
         ["", "### At fixed CPU budgets (true test accuracy [%], median [95 %])", ""] + fixed)
text = (d / "README.md").read_text()
a, b = "<!-- tables from report.md: begin -->", "<!-- tables from report.md: end -->"
if a not in text or b not in text:
    raise SystemExit(f"README.md lacks the markers {a!r} and {b!r}")
text = text[:text.index(a)] + a + "\n" + "\n".join(block) + "\n" + text[text.index(b):]
(d / "README.md").write_text(text)
print("spliced", len(block), "lines")
