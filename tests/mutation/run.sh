#!/usr/bin/env bash
# Mutation testing of the harness's core modules (issue 20; docs/mutation-testing.md).
#
#   tests/mutation/run.sh [MODULE...]        MODULE: statistics, compare, results (default: all)
#
# A slow job, never part of the default pytest run or .ci/run: mutmut rewrites the sources
# and writes a mutants/ folder, so every module runs in a private copy of the working tree
# (tracked and untracked, not ignored, files; uncommitted edits included) in
# $MUTATION_WORKDIR/MODULE (default: a fresh folder in /tmp; removed afterwards unless
# MUTATION_KEEP=1). Each mutant runs only the fast test files about its module, so a module
# takes minutes. Per module, $MUTATION_OUT (default: /tmp/nas-mutation-results) gets
# MODULE.json (mutants per status, the names of those not killed) and MODULE.surviving.txt
# (the diff of each mutant not killed), written by report.py.
#
# Environment: PYTHON (default: python, with mutmut installed: pip install -e '.[mutation]'),
# MUTATION_CHILDREN (parallel mutants, default 1: the development machine's cores are
# shared), MUTATION_NICE (default 10).
set -euo pipefail

REPO=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
PYTHON=${PYTHON:-python}
CHILDREN=${MUTATION_CHILDREN:-1}
NICE=${MUTATION_NICE:-10}
OUT=$(realpath -m "${MUTATION_OUT:-${TMPDIR:-/tmp}/nas-mutation-results}")
export MPLBACKEND=Agg
export NAS_HARNESS_SHARED_DATA=${NAS_HARNESS_SHARED_DATA:-$REPO/../shared/data}

# module -> the test files about it. The compare tests that run real NB201 experiments
# (minutes per mutant) are left out: the hand-made result sets decide every rule.
tests_for() {
    case "$1" in
        statistics) echo "tests/test_statistics.py" ;;
        compare) echo "tests/test_compare.py tests/test_compare_rules.py tests/test_compare_direction.py
                      --deselect tests/test_compare.py::test_cli_compare_and_baseline_files
                      --deselect tests/test_compare.py::test_baseline_of_a_real_folder_records_its_machine" ;;
        results) echo "tests/test_results_store.py" ;;
        runner) echo "tests/test_runner_trials.py tests/test_runner_counting.py tests/test_runner.py tests/test_runner_mutants.py
                      --deselect tests/test_runner.py::test_records_agree_with_the_reference_loop[every-reinforce]
                      --deselect tests/test_runner.py::test_records_agree_with_the_reference_loop[every-cadam]
                      --deselect tests/test_runner.py::test_records_agree_with_the_reference_loop[every-nao]
                      --deselect tests/test_runner_trials.py::test_an_oracle_from_a_factory_runs_in_an_experiment[ray-2]
                      --deselect tests/test_runner_trials.py::test_an_oracle_from_a_factory_runs_in_an_experiment[local-2]" ;;
        *) echo "unknown module $1 (choose statistics, compare, results, runner)" >&2; return 1 ;;
    esac
}

modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(statistics compare results)
for m in "${modules[@]}"; do tests_for "$m" >/dev/null; done
echo "mutmut $("$PYTHON" -c 'import importlib.metadata as m; print(m.version("mutmut"))')"
mkdir -p "$OUT"

base=${MUTATION_WORKDIR:-$(mktemp -d "${TMPDIR:-/tmp}/nas-mutation.XXXXXX")}
for m in "${modules[@]}"; do
    work=$base/$m
    # a fresh copy every time: mutmut keeps the verdicts of a previous run in mutants/ and
    # does not test a surviving mutant again when only the tests changed
    if [ -e "$work" ]; then echo "$work exists; remove it or choose another MUTATION_WORKDIR" >&2; exit 1; fi
    mkdir -p "$work"
    # the working tree as it is (a deleted tracked file is skipped, not an error)
    git -C "$REPO" ls-files -z --cached --others --exclude-standard \
        | tar -C "$REPO" --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -C "$work" -xf -
    # mutmut reads [mutmut] from setup.cfg when pyproject.toml has no [tool.mutmut]
    {
        echo "[mutmut]"
        echo "source_paths = harness"
        echo "only_mutate = harness/$m.py"
        # the other packages come from the copy too, not from an editable install elsewhere
        printf 'also_copy =\n    algorithms\n    oracles\n'
        echo "pytest_add_cli_args_test_selection ="
        for arg in $(tests_for "$m"); do echo "    $arg"; done
        printf 'pytest_add_cli_args =\n    -p\n    no:cacheprovider\n'
    } > "$work/setup.cfg"
    start=$(date +%s)
    (cd "$work" && nice -n "$NICE" "$PYTHON" -m mutmut run --max-children "$CHILDREN" > mutmut-run.log 2>&1) || {
        echo "mutmut run failed for $m; log: $work/mutmut-run.log" >&2; tail -30 "$work/mutmut-run.log" >&2; exit 1; }
    secs=$(( $(date +%s) - start ))
    summary=$(cd "$work" && "$PYTHON" tests/mutation/report.py "$OUT/$m")
    echo "$m: $summary (${secs} s)"
    if [ "${MUTATION_KEEP:-0}" = 1 ]; then echo "  kept $work"; else rm -rf "$work"; fi
done
[ "${MUTATION_KEEP:-0}" = 1 ] || rmdir "$base" 2>/dev/null || true
