"""Hostile inputs: every way a user or a file can be wrong gets one clear line and a non-zero
exit -- never a traceback, never damage to existing results.

Covered here:

* string parsers and spec validators, property-based (hypothesis): NB201 strings, NB101
  strings and cells, ConvNet strings, algorithm specs (``algorithms.parse_spec`` and
  ``make_algorithm``), oracle names (``oracles.registry.parse_name`` and ``load_oracle``);
* command-line budgets, seeds, workers, executors, flags of the wrong type;
* TOML experiment files with wrong types, unknown keys, bad syntax, binary garbage;
* data tables: truncated, bit-flipped, tampered-with-a-matching-checksum (pickled arrays),
  structurally damaged manifests, missing files;
* results folders: written by another configuration, damaged ``experiment.json`` (garbage,
  wrong structure), damaged run files (truncated, metadata not an object), read-only, full
  disk (``ENOSPC`` raised inside the atomic write);
* pickle: the project's own tables and results hold none (loaded with ``allow_pickle=False``,
  scanned for pickle streams); official fast-mode pickles are read by a restricted unpickler
  that refuses any other class; ``.pth`` files need ``--trust-pickle``.
"""

from __future__ import annotations

import bz2
import errno
import functools
import json
import os
import pickle
import re
import shutil
import string
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main as cli
from oracles.errors import InvalidArchitecture, UserError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line_error(capsys, args, code=2):
    rc = cli(args)
    out, err = capsys.readouterr()
    assert rc == code, (rc, err)
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("nas-harness: "), err
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


# --- parsers, property-based ---------------------------------------------------------------
from oracles.nb201_space import NB201Space, OPS as NB201_OPS  # noqa: E402


def assert_parses_or_refuses_in_one_line(space, text, expected=None):
    """``text`` is either refused with a one-line InvalidArchitecture, or parses to an
    architecture whose printed form parses back to the same identity. ``expected(text)``,
    written without the space's parser, gives what a valid text must parse to (None: the
    text is not a valid architecture, so the parser must refuse it)."""
    want = expected(text) if expected else None
    try:
        arch = space.parse(text)
    except InvalidArchitecture as exc:
        assert "\n" not in str(exc)
        assert want is None, (text, want, str(exc))
        return
    assert space.identity(space.parse(space.to_string(arch))) == space.identity(arch)
    if expected:
        assert want is not None and arch == want, (text, arch, want)


NB201 = NB201Space()
junk = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
nb201_like = st.lists(st.sampled_from(["|", "~", "+", "0", "1", "2", "3", *NB201_OPS, "conv", " ", "\n"]),
                      max_size=30).map("".join)


def nb201_expected(text):
    """The op indices an NB201 string names, read with a regular expression: exactly the
    official form ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (surrounding whitespace aside)."""
    if not isinstance(text, str):
        return None
    ops = "|".join(map(re.escape, NB201_OPS))
    m = re.fullmatch(r"\|({0})~0\|\+\|({0})~0\|({0})~1\|\+\|({0})~0\|({0})~1\|({0})~2\|".format(ops),
                     text.strip())
    return None if m is None else tuple(NB201_OPS.index(op) for op in m.groups())


#: NB201-like texts that must parse (every op, whitespace around), so that the property's
#: success branch is reached whatever hypothesis draws
nb201_valid = st.builds(lambda ops, pre, post: pre + "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops) + post,
                        st.lists(st.sampled_from(NB201_OPS), min_size=6, max_size=6),
                        st.sampled_from(["", " ", "\n\t"]), st.sampled_from(["", " ", "\n"]))


@SETTINGS
@given(st.one_of(junk, nb201_like, nb201_valid))
def test_nb201_parse_accepts_or_refuses_cleanly(text):
    assert_parses_or_refuses_in_one_line(NB201, text, nb201_expected)


def test_nb201_expected_parse_by_hand():
    text = "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    assert NB201_OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert NB201.parse(" " + text + "\n") == nb201_expected(text) == (0, 1, 2, 3, 4, 0)
    for bad in (text.replace("~2", "~1"), text[:-1], text + "+", text.replace("none", "None", 1)):
        assert nb201_expected(bad) is None
        with pytest.raises(InvalidArchitecture):
            NB201.parse(bad)


@SETTINGS
@given(st.lists(st.sampled_from(NB201_OPS), min_size=6, max_size=6))
def test_nb201_every_valid_string_round_trips(ops):
    text = "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)
    assert NB201.to_string(NB201.parse(text)) == text


@SETTINGS
@given(st.one_of(st.integers(), st.floats(), st.none(), st.lists(st.integers(-3, 8), max_size=8),
                 st.binary(max_size=10)))
def test_nb201_non_strings_refused(value):
    with pytest.raises(InvalidArchitecture):
        NB201.parse(value)


from oracles import nb101_space  # noqa: E402

nb101_like = st.builds(
    lambda bits, ops, sep: bits + sep + ",".join(ops),
    st.text(alphabet="01x ", max_size=60), st.lists(st.sampled_from([*nb101_space.OPS, "input", "output", "",
                                                                     "conv5x5"]), max_size=9),
    st.sampled_from([";", ":", ""]))


def nb101_reference(matrix, ops):
    """The NB101 paper's rules applied to a raw (matrix, ops), written apart from the
    module: None when they make it no model, else the pruned :class:`Cell`.

    A cell is a square 0/1 strictly upper-triangular matrix with ops ``input``, interior
    ops of :data:`OPS`, ``output``; vertices off every input->output path are dropped
    (here found by a Warshall transitive closure, not the module's bit sweeps), and the
    rest must be connected, at most 7 vertices and at most 9 edges."""
    m = np.asarray(matrix)
    n = len(ops)
    if m.ndim != 2 or m.shape != (n, n) or n < 2:
        return None
    if not np.isin(m, (0, 1)).all() or any(m[i, j] for i in range(n) for j in range(i + 1)):
        return None
    if ops[0] != "input" or ops[-1] != "output" or any(o not in nb101_space.OPS for o in ops[1:-1]):
        return None
    reach = m.astype(bool) | np.eye(n, dtype=bool)
    for k in range(n):
        reach |= reach[:, [k]] & reach[[k], :]
    if not reach[0, n - 1]:
        return None
    keep = [v for v in range(n) if reach[0, v] and reach[v, n - 1]]
    sub = m[np.ix_(keep, keep)]
    if len(keep) > 7 or sub.sum() > 9:
        return None
    return nb101_space.Cell(tuple(tuple(int(x) for x in row) for row in sub), tuple(ops[v] for v in keep))


def nb101_expected(text):
    """What ``<n*n bits>;<op>,...,<op>`` must parse to (None: no model)."""
    if not isinstance(text, str):
        return None
    m = re.fullmatch(r"([01]*)\s*;(.*)", text.strip(), re.S)
    if m is None:
        return None
    names = [o.strip() for o in m.group(2).split(",")]
    n = len(names)
    if len(m.group(1)) != n * n:
        return None
    return nb101_reference(np.array([int(c) for c in m.group(1)], dtype=np.int64).reshape(n, n), names)


def test_nb101_reference_by_hand():
    c3, c1, mp = nb101_space.OPS
    # input -> conv3 -> output, plus a dangling maxpool fed by the input: pruned away
    cell = nb101_expected("0110 0001 0000 0000".replace(" ", "") + f";input,{c3},{mp},output")
    assert cell == nb101_space.Cell(((0, 1, 0), (0, 0, 1), (0, 0, 0)), ("input", c3, "output"))
    assert nb101_space.NB101Space().parse("0110000100000000" + f"; input ,{c3},{mp}, output ") == cell
    assert nb101_expected(f"0000000000000000;input,{c3},{c1},output") is None          # disconnected
    eight = "".join("1" if j == i + 1 else "0" for i in range(8) for j in range(8))   # a chain of 8
    assert nb101_expected(eight + ";input," + ",".join([c3] * 6) + ",output") is None  # 8 vertices
    full7 = "".join("1" if j > i else "0" for i in range(7) for j in range(7))        # 21 edges
    assert nb101_expected(full7 + ";input," + ",".join([c1] * 5) + ",output") is None
    # 9 edges on 7 vertices is the limit: a chain of 6 edges plus 3 skips
    nine = np.zeros((7, 7), dtype=np.int64)
    for i in range(6):
        nine[i, i + 1] = 1
    nine[0, 2] = nine[0, 3] = nine[0, 4] = 1
    text = "".join(map(str, nine.ravel())) + ";input," + ",".join([mp] * 5) + ",output"
    assert nb101_expected(text).n_edges == 9 and nb101_space.NB101Space().parse(text) == nb101_expected(text)
    nine[0, 5] = 1
    assert nb101_expected("".join(map(str, nine.ravel())) + ";input," + ",".join([mp] * 5) + ",output") is None


def _nb101_text(spec):
    n, bits, ops, skew = spec
    m = np.zeros((n, n), dtype=np.int64)
    m[np.triu_indices(n, 1)] = bits[: n * (n - 1) // 2]
    names = ["input", *ops[: n - 2], "output"]
    if skew == 1:            # one entry below the diagonal
        m[n - 1, 0] = 1
    elif skew == 2:          # an unknown op
        names[-2 if n > 2 else 0] = "conv5x5"
    return "".join(map(str, m.ravel())) + ";" + ",".join(names)


#: well-formed cell strings (every size up to 8 vertices, random edges): the parser's
#: pruning and limits, not only its refusals
nb101_cells = st.tuples(st.integers(2, 8), st.lists(st.integers(0, 1), min_size=28, max_size=28),
                        st.lists(st.sampled_from(nb101_space.OPS), min_size=6, max_size=6),
                        st.sampled_from([0, 0, 0, 1, 2])).map(_nb101_text)


@SETTINGS
@given(st.one_of(junk, nb101_like, nb101_cells))
def test_nb101_strings_accept_or_refuse_cleanly(text):
    assert_parses_or_refuses_in_one_line(nb101_space.NB101Space(), text, nb101_expected)


upper = st.integers(2, 8).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 1), min_size=n * n, max_size=n * n).map(
        lambda b: (np.triu(np.array(b, dtype=np.int64).reshape(n, n), 1)).tolist()),
    st.lists(st.sampled_from(nb101_space.OPS), min_size=n - 2, max_size=n - 2).map(
        lambda o: ["input", *o, "output"])))


@SETTINGS
@given(st.one_of(st.integers(0, 8).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.integers(-1, 2), min_size=n, max_size=n), min_size=n, max_size=n),
    st.lists(st.sampled_from([*nb101_space.OPS, "input", "output", "pool"]), min_size=0, max_size=n + 1))),
    upper))
def test_nb101_cell_validation(spec):
    matrix, ops = spec
    m = np.array(matrix, dtype=np.int64).reshape(len(matrix), -1) if matrix else np.zeros((0, 0), dtype=np.int64)
    want = nb101_reference(m, ops)
    try:
        cell = nb101_space.validate(nb101_space.make_cell(m, ops))
    except InvalidArchitecture as exc:
        assert "\n" not in str(exc)
        assert want is None, (matrix, ops, str(exc))
        return
    assert cell == want, (matrix, ops)
    assert nb101_space.is_valid(cell) and nb101_space.prune(cell) == cell


from oracles.convnet_space import ConvNetSpace  # noqa: E402

CONVNET = ConvNetSpace.from_preset("digits")
convnet_like = st.lists(st.sampled_from(["3", "5", "x", "-", "8", "16", "32", "1", "0", " ", "²", "٣"]),
                        max_size=20).map("".join)


def convnet_expected(text):
    """The layers a ``KxC-KxC...`` string names in the digits preset (kernels 3 and 5,
    8 or 16 channels, 1 to 5 layers: LaNAS §2's space at digits scale), read with a
    regular expression; None when it names no network of the space."""
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]+x[0-9]+(-[0-9]+x[0-9]+)*", text.strip()):
        return None
    layers = tuple((int(k), int(c)) for k, c in re.findall(r"([0-9]+)x([0-9]+)", text))
    ok = 1 <= len(layers) <= 5 and all(k in (3, 5) and c in (8, 16) for k, c in layers)
    return layers if ok else None


convnet_valid = st.lists(st.tuples(st.sampled_from(["3", "5", "03", "4"]), st.sampled_from(["8", "16", "016", "32"])),
                         min_size=0, max_size=6).map(lambda ls: " " + "-".join(f"{k}x{c}" for k, c in ls) + "\n")


@SETTINGS
@given(st.one_of(junk, convnet_like, convnet_valid))
def test_convnet_strings_accept_or_refuse_cleanly(text):
    assert_parses_or_refuses_in_one_line(CONVNET, text, convnet_expected)


from algorithms import REGISTRY, algorithm_class, make_algorithm, parse_spec  # noqa: E402


def _importable(name):
    try:
        algorithm_class(name)
        return True
    except ImportError:  # an algorithm whose module is not installed in this checkout
        return False


ALGOS = sorted(n for n in REGISTRY if _importable(n))
values = st.one_of(st.text(max_size=12), st.sampled_from(["0", "-1", "1e308", "nan", "inf", "-inf", "1e-300",
                                                          "true", "none", "3/4", "9" * 5000, " 5 "]))


@SETTINGS
@given(st.sampled_from(ALGOS).flatmap(lambda n: st.tuples(
    st.just(n), st.dictionaries(st.sampled_from([*algorithm_class(n).default_params(), "bogus"]), values,
                                max_size=3))))
def test_algorithm_specs_build_or_refuse_cleanly(spec):
    name, params = spec
    try:
        algo = make_algorithm(name, params)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    cls = algorithm_class(name)
    defaults = cls.default_params()
    got = algo.get_params()
    # a parameter may be missing only if the class says it leaves it out at a legacy value
    # (added after runs were recorded, whose fingerprints must not change)
    legacy = getattr(cls, "legacy_params", {})
    assert set(got) <= set(defaults) and set(defaults) - set(got) <= set(legacy)
    got = {**{k: legacy[k] for k in set(defaults) - set(got)}, **got}
    # every value given is the value the algorithm runs with (a parameter dropped or
    # mis-typed on the way would pass the line above)
    assert "bogus" not in params
    for key, text in params.items():
        default = defaults[key]
        if isinstance(default, bool):
            assert got[key] is (text.strip().lower() in ("1", "true", "yes", "on")), (key, text, got[key])
        elif isinstance(default, (int, float)):
            assert got[key] == float(text) and type(got[key]) is type(default), (key, text, got[key])
        elif isinstance(default, str):
            assert got[key] == text, (key, text, got[key])


@SETTINGS
@given(st.one_of(junk, st.lists(st.sampled_from(["random", ":", ",", "=", "k", "v", " "]), max_size=12)
                 .map("".join)))
def test_parse_spec_and_parse_name(text):
    from oracles.registry import parse_name
    for parse in (parse_spec, parse_name):
        # both strip the whole spec first, so "name: " has no options
        want = spec_expected(text.strip())
        try:
            got = parse(text)
        except UserError as exc:
            assert "\n" not in str(exc)
            assert want is None, (text, want, str(exc))
            continue
        assert got == want, (parse.__name__, text, got, want)


def spec_expected(text):
    """``name[:key=value,...]`` read with regular expressions: the name and each key and
    value without surrounding whitespace, a later key overriding an earlier one; None when
    an option is not key=value with a non-empty key."""
    m = re.fullmatch(r"([^:]*)(?::(.*))?", text, re.S)
    params = {}
    if m.group(2):
        for part in re.split(",", m.group(2)):
            kv = re.fullmatch(r"([^=]*)=(.*)", part, re.S)
            if kv is None or not kv.group(1).strip():
                return None
            params[kv.group(1).strip()] = kv.group(2).strip()
    return m.group(1).strip(), params


@SETTINGS
@given(st.text(alphabet="abc_/", min_size=1, max_size=8),
       st.dictionaries(st.text(alphabet="xyz_", min_size=1, max_size=4), st.text(alphabet="0123.e-/=", max_size=5),
                       max_size=4), st.sampled_from(["", " "]))
def test_parse_spec_and_parse_name_read_back_what_was_written(name, params, pad):
    from oracles.registry import parse_name
    text = name + (":" + ",".join(f"{pad}{k}{pad}={pad}{v}{pad}" for k, v in params.items()) if params else "")
    for parse in (parse_spec, parse_name):
        assert parse(text) == (name, params), (parse.__name__, text)


def test_spec_expected_by_hand():
    assert spec_expected(" lanas : c = 0.5 ,split=lstsq,c=1") == ("lanas", {"c": "1", "split": "lstsq"})
    assert spec_expected("random") == ("random", {}) == spec_expected("random:")
    assert spec_expected("x:a=b=c") == ("x", {"a": "b=c"})
    assert spec_expected("x:a=1,") is None and spec_expected("x: =1") is None and spec_expected("x:a") is None


def test_oracle_names_load_or_refuse_cleanly(nb201_env):
    from oracles.registry import load_oracle

    @settings(max_examples=60, deadline=None)
    @given(st.one_of(junk, st.builds(lambda o, opt: o + opt,
                                     st.sampled_from(["nb201/cifar10", "nb201-12ep/imagenet16", "nb101", "x"]),
                                     st.sampled_from(["", ":", ":runs=random", ":runs=sometimes", ":fidelity=7",
                                                      ":fidelity=twelve", ":search=nope", ":report=cifar10_test",
                                                      ":=", ":a=1,b"]))))
    def check(spec):
        try:
            oracle = load_oracle(spec)
        except UserError as exc:
            assert "\n" not in str(exc)
            return
        assert_oracle_is_what_the_spec_says(oracle, spec)

    check()


#: what the NB201 oracles serve by default (ours: the NB201 paper's validation/test
#: accuracies, 200 epochs or the 12-epoch slice), and their optima from the shared CSVs
NB201_DEFAULTS = {f"{prefix}/{ds}": (f"{ds}_valid", f"{ds}_test", epochs)
                  for prefix, epochs in (("nb201", 200), ("nb201-12ep", 12))
                  for ds in ("cifar10", "cifar100", "imagenet16")}


@functools.lru_cache(maxsize=None)
def _csv_optimum(metric, epochs):
    import pandas as pd
    from conftest import NB201_DIR
    return pd.read_csv(NB201_DIR / f"nb201_{epochs}ep.csv", usecols=[metric])[metric].max() / 100


def assert_oracle_is_what_the_spec_says(oracle, spec):
    """An oracle ``load_oracle(spec)`` built serves what ``spec`` asks, option by option."""
    base, _, opts = spec.partition(":")
    assert base.strip() in NB201_DEFAULTS, spec   # the only installed table here
    search, report, epochs = NB201_DEFAULTS[base.strip()]
    runs = "mean"
    options = dict(part.split("=", 1) for part in opts.split(",")) if opts.strip() else {}
    options = {k.strip(): v.strip() for k, v in options.items()}
    search, report = options.get("search", search), options.get("report", report)
    epochs, runs = int(options.get("fidelity", epochs)), options.get("runs", runs)
    assert oracle.name == (spec if options else base.strip())
    assert (oracle.search_metric, oracle.report_metric, oracle.fidelity, oracle.runs) == (search, report, epochs, runs)
    assert oracle.optimum.value == pytest.approx(_csv_optimum(search, epochs), abs=1e-9)


@pytest.mark.parametrize("spec", ["nb201/cifar10", "nb201/cifar10:", "nb201-12ep/imagenet16:report=cifar10_test",
                                  "nb201/cifar100: search = cifar100_test ,fidelity=12", "nb201/cifar10:runs=random"])
def test_oracle_options_take_effect(nb201_env, spec):
    from oracles.registry import load_oracle
    assert_oracle_is_what_the_spec_says(load_oracle(spec), spec)


# --- algorithms fed extreme (but parseable) values, through a real run ------------------------
EXTREMES = ["-1", "1e308"]  # 0 is left to the constructors' own tests (it is slow for some)


def _numeric_cases():
    cases = []
    for name in ALGOS:
        for key, default in algorithm_class(name).default_params().items():
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                for v in EXTREMES:
                    cases.append(pytest.param(name, key, v, id=f"{name}-{key}={v}"))
    return cases


@pytest.mark.slow  # an extra (pytest -m slow): ~120 short runs, torch ones included; ~2 min
@pytest.mark.parametrize("name, key, value", _numeric_cases())
def test_extreme_hyper_parameters_refused_or_harmless(nb201_oracle, name, key, value):
    import torch
    torch.set_num_threads(1)
    from harness.runner import RunConfig, run_one
    # the one line names the parameter, or its group ("adam epochs", "pretraining sizes")
    words = [w for w in key.split("_") if len(w) > 2] + [key]
    try:
        algo = make_algorithm(name, {key: value})
    except UserError as exc:
        assert "\n" not in str(exc) and any(w in str(exc) for w in words), str(exc)
        return
    records, summary = run_one(RunConfig(name, algo.get_params(), "nb201/cifar10", budget=12), nb201_oracle, 0)
    # a run the value breaks fails alone, saying in one line which setting to change
    if "failed" in summary:
        assert "\n" not in summary["failed"] and any(w in summary["failed"] for w in words), summary["failed"]
        return
    assert summary["stopped"] is None and summary["n_distinct"] == 12 == len(set(records["arch_id"]))
    assert np.isfinite(records["search"]).all()


@pytest.mark.parametrize("spec, message", [
    ("cadam:actor_lr=-1", "actor_lr and critic_lr must be positive"),
    ("cadam:beta2=1", "must be in [0, 1)"),
])
def test_settings_that_would_blow_up_a_run_stop_it_with_one_line(nb201_env, tmp_path, capsys, spec, message):
    err = one_line_error(capsys, ["run", "--oracle", "nb201/cifar10", "--algorithm", spec, "--budget", "12",
                                  "--seeds", "1", "--quiet", "--out", str(tmp_path / "o")])
    assert message in err


@pytest.mark.parametrize("spec, message", [
    ("reinforce:lr=1e308", "probabilities (after 1 updates) became non-finite: lower lr (now 1e+308)"),
    ("reinforce:entropy_weight=1e308", "or entropy_weight (now 1e+308)"),
])
def test_a_run_that_diverges_is_reported_not_a_traceback(nb201_env, tmp_path, capsys, spec, message):
    # finite but absurd learning rates used to reach torch's samplers as NaN probabilities
    # and end in a RuntimeError traceback mid-run; a run that fails no longer takes the
    # experiment down (issue 12, item 3): the summary names it and the exit status is 4
    rc = cli(["run", "--oracle", "nb201/cifar10", "--algorithm", spec, "--budget", "12",
              "--seeds", "1", "--quiet", "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert rc == 4 and "Traceback" not in out + err
    assert message in out and "1 run(s) failed" in out


# --- command line ----------------------------------------------------------------------------
RUN = ["run", "--oracle", "nb201/cifar10", "--algorithm", "random", "--quiet"]


@pytest.mark.parametrize("extra, message", [
    (["--budget", "0"], "budget must be"),
    (["--budget", "-5"], "budget must be"),
    (["--budget", "1.5"], "budget must be a whole number of archs, got 1.5"),
    (["--budget", ""], "--budget: not a number: ''"),
    (["--seeds", "0"], "seeds must be"),
    (["--seeds", "ten"], "invalid int value"),
    (["--seed-start", "-1"], "seed_start must be"),
    (["--workers", "0"], "workers must be"),
    (["--max-repeats", "0"], "max_repeats must be"),
    (["--executor", "dask"], "invalid choice"),
    (["--address", "127.0.0.1:1"], "--address is for the ray executor"),
    (["--format", "xml"], "invalid choice"),
    (["--no-such-flag"], "unrecognized arguments"),
])
def test_bad_run_flags(nb201_env, tmp_path, capsys, extra, message):
    err = one_line_error(capsys, [*RUN, "--out", str(tmp_path / "o"), *extra])
    assert message in err
    assert not (tmp_path / "o" / "runs").exists()


BASE = 'oracles = ["nb201/cifar10"]\nalgorithms = ["random"]\n'


@pytest.mark.parametrize("text, message", [
    (BASE + 'budget = 1.5\n', "budget must be a whole number of archs, got 1.5"),
    (BASE + 'budget = true\n', "budget must be an integer or a number, got True"),
    (BASE + 'seeds = "3"\n', "seeds must be an integer"),
    (BASE + 'workers = [2]\n', "workers must be an integer"),
    (BASE + 'executor = "dask"\n', "executor must be"),
    (BASE + 'executor = 1\n', "executor must be a string"),
    (BASE + 'address = 5\n', "address must be a string"),
    (BASE + 'out = 3\n', "out must be a string"),
    (BASE + 'charge_repeats = "no"\n', "true or false"),
    (BASE + 'seed = 3\n', "unknown key(s) seed"),
    (BASE + '[experiment]\nseeds = 3\n', "unknown key"),
    (BASE + 'seeds = 3\nseeds = 4\n', "not valid TOML"),
    ('algorithms = "random"\noracles = [["nb201/cifar10"]]\n', "list of strings"),
    ('oracles = ["nb201/cifar10"\n', "not valid TOML"),
    ('', "no oracle given"),
    ('oracles = ["nb201/cifar10"]\nalgorithms = ["random", "random"]\n', "listed twice"),
])
def test_bad_toml_files(nb201_env, tmp_path, capsys, text, message):
    f = tmp_path / "e.toml"
    f.write_text(text)
    err = one_line_error(capsys, ["run", str(f), "--quiet", "--out", str(tmp_path / "o")])
    assert message in err


def test_toml_binary_garbage_and_directory(nb201_env, tmp_path, capsys):
    f = tmp_path / "e.toml"
    f.write_bytes(b"\xff\xfe\x00garbage\x80")
    assert "cannot read experiment file" in one_line_error(capsys, ["run", str(f), "--out", str(tmp_path / "o")])
    assert "cannot read experiment file" in one_line_error(capsys, ["run", str(tmp_path), "--out",
                                                                    str(tmp_path / "o")])


# --- data tables -------------------------------------------------------------------------------
@pytest.fixture
def data_copy(nb201_data_dir, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(nb201_data_dir, data)
    monkeypatch.setenv("NAS_HARNESS_DATA", str(data))
    return data / "nb201"


def _edit_manifest(table_dir, edit, resign=True):
    """Edit the manifest as someone who also recomputes its own checksum would (so the check
    behind it is the one tested); ``resign=False``: a plain edit, refused by that checksum."""
    from oracles.table import CHECKSUM_FIELD, manifest_digest
    m = json.loads((table_dir / "manifest.json").read_text())
    edit(m)
    if resign and isinstance(m, dict):
        m[CHECKSUM_FIELD] = manifest_digest(m)
    (table_dir / "manifest.json").write_text(json.dumps(m))


def _tamper_pickled_values(table_dir):
    """Replace values.npy by a pickled object array AND fix its checksum in the manifest."""
    from oracles.table import file_sha256
    path = table_dir / "values.npy"
    np.save(path, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    _edit_manifest(table_dir, lambda m: m["files"]["values.npy"].update(sha256=file_sha256(path)))


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "values.npy").write_bytes((d / "values.npy").read_bytes()[:1000]), "checksum"),
    (lambda d: (d / "archs.npy").unlink(), "missing"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "not valid JSON"),
    (lambda d: (d / "manifest.json").write_bytes(b"\xff\xfe"), "not valid JSON"),
    (lambda d: _edit_manifest(d, lambda m: m.pop("files")), "damaged"),
    (lambda d: _edit_manifest(d, lambda m: m.update(meta=5)), "damaged"),
    (lambda d: _edit_manifest(d, lambda m: m.update(axes=[])), "damaged"),
    (lambda d: _edit_manifest(d, lambda m: m["files"].update({"../../x.npy": {"sha256": "0", "shape": [1]}})),
     "bad file name"),
    (lambda d: _edit_manifest(d, lambda m: m["axes"]["metrics"].pop()), "inconsistent"),
    (lambda d: _edit_manifest(d, lambda m: m["files"]["values.npy"].update(shape=[3])), "manifest says"),
    (lambda d: _edit_manifest(d, lambda m: m.update(format="other/9")), "manifest"),
    (lambda d: _edit_manifest(d, lambda m: m["meta"]["space"].update(kind="klein-bottle")), "space kind"),
    (_tamper_pickled_values, "not a valid .npy"),
    (lambda d: _edit_manifest(d, lambda m: m["axes"]["metrics"].reverse(), resign=False),
     "does not match its own checksum"),
])
def test_damaged_tables_are_refused(data_copy, tmp_path, capsys, damage, message):
    from oracles import registry
    registry._CACHE.clear()
    damage(data_copy)
    err = one_line_error(capsys, [*RUN, "--budget", "5", "--seeds", "1", "--out", str(tmp_path / "o")])
    assert message in err
    err = one_line_error(capsys, ["oracles", "info", "nb201/cifar10"])
    assert message in err


# --- results folders ---------------------------------------------------------------------------
@pytest.fixture
def results(nb201_env, tmp_path, capsys):
    out = tmp_path / "res"
    assert cli([*RUN, "--budget", "30", "--seeds", "2", "--out", str(out)]) == 0
    capsys.readouterr()
    return out


def test_other_configuration_refused_untouched(results, capsys):
    before = snapshot(results)
    err = one_line_error(capsys, [*RUN, "--budget", "31", "--seeds", "2", "--out", str(results)])
    assert "different configuration" in err and "budget" in err
    assert snapshot(results) == before


@pytest.mark.parametrize("content", [b"garbage{", b"\x00\xff", b"[]", b'{"format": "nas-harness-results/1"}',
                                     b'{"format": "nas-harness-results/1", "cells": {"a": 5}}',
                                     b'{"format": "nas-harness-results/1", "cells": {"a": {"label": "x"}}}',
                                     b'{"format": "other", "cells": {}}'])
def test_damaged_experiment_json(results, capsys, content):
    (results / "experiment.json").write_bytes(content)
    before = snapshot(results)
    for args in ([*RUN, "--budget", "30", "--seeds", "2", "--out", str(results)], ["report", str(results)]):
        err = one_line_error(capsys, args)
        assert "experiment.json" in err
    assert snapshot(results) == before


def _runs(out):
    return sorted(out.glob("runs/*/*/seed-*.parquet"))


def test_damaged_run_files_are_recomputed_not_trusted(results, capsys):
    a, b = _runs(results)
    good = pq.read_table(a).drop_columns(["algo_cpu_s"])
    a.write_bytes(a.read_bytes()[:-40])  # truncated: footer gone
    t = pq.read_table(b)  # metadata that is JSON but not an object
    pq.write_table(t.replace_schema_metadata({b"nas_harness": b"[1, 2]"}), b)
    capsys.readouterr()
    assert cli(["report", str(results), "--format", "json"]) == 0  # damaged runs are not counted
    assert [c["runs"] for c in json.loads(capsys.readouterr().out)["cells"]] == [0]
    assert cli([*RUN, "--budget", "30", "--seeds", "2", "--out", str(results)]) == 0
    capsys.readouterr()
    assert cli(["report", str(results), "--format", "json"]) == 0  # both recomputed
    assert [c["runs"] for c in json.loads(capsys.readouterr().out)["cells"]] == [2]
    assert pq.read_table(a).drop_columns(["algo_cpu_s"]).equals(good)
    assert json.loads(pq.read_schema(b).metadata[b"nas_harness"])["seed"] == 1


def test_read_only_output(nb201_env, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a path below a regular file cannot be created, even by root
    err = one_line_error(capsys, [*RUN, "--budget", "5", "--seeds", "1", "--out", str(blocker / "sub")])
    assert "cannot write" in err
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert "cannot write" in one_line_error(capsys, [*RUN, "--budget", "5", "--out", str(ro)])


@pytest.mark.parametrize("where", ["fsync", "write"])
def test_full_disk_keeps_existing_results(results, capsys, monkeypatch, where):
    before = snapshot(results)
    failed = []   # where the full disk struck: the error must come from there

    def full(*args, **kwargs):
        failed.append(where)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "fsync":
        monkeypatch.setattr(os, "fsync", full)
    else:  # the parquet writer itself fails half-way through the temporary file
        import harness.results as hr

        def half(table, fh, **kw):
            fh.write(b"PAR1 partial")
            full()
        monkeypatch.setattr(hr.pq, "write_table", half)
    err = one_line_error(capsys, [*RUN, "--budget", "30", "--seeds", "4", "--workers", "1", "--out", str(results)])
    assert failed, f"the run never reached {where}: the error came from somewhere else"
    assert "No space left on device" in err and "disk is not full" in err
    assert snapshot(results) == before  # nothing half-written (no temporary left), old runs untouched


# --- pickle ------------------------------------------------------------------------------------
PICKLE_PROTOCOLS = [bytes([0x80, p]) for p in range(2, 6)]


def _assert_no_pickle(folder: Path):
    n = 0
    for p in sorted(folder.rglob("*")):
        if not p.is_file():
            continue
        raw = p.read_bytes()
        assert raw[:2] not in PICKLE_PROTOCOLS, f"{p} is a pickle"
        if p.suffix == ".npy":
            arr = np.load(p, allow_pickle=False)  # raises on object arrays
            assert arr.dtype != object
        elif p.suffix == ".json":
            json.loads(raw)
        elif p.suffix == ".parquet":
            t = pq.read_table(p)
            assert all(not str(f.type).startswith("extension") for f in t.schema)
            assert set(t.schema.metadata) == {b"nas_harness"}  # no pandas metadata (may pickle)
            json.loads(t.schema.metadata[b"nas_harness"])
        elif p.name == ".lock":
            assert raw == b""
        else:
            raise AssertionError(f"unexpected file {p}")
        n += 1
    return n


def test_project_formats_hold_no_pickle(nb201_data_dir, results):
    assert _assert_no_pickle(nb201_data_dir) >= 3
    assert _assert_no_pickle(results) >= 3


def test_fast_mode_pickle_with_foreign_class_is_refused(tmp_path, capsys, empty_data_env, shared_data):
    src = shared_data / "nb201" / "NATS-tss-v1_0-3ffb9-simple"
    d = tmp_path / "fast"
    shutil.copytree(src, d)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    victim = sorted(d.glob("0*.pickle.pbz2"))[0]
    victim.write_bytes(bz2.compress(pickle.dumps({"12": Evil()})))
    err = one_line_error(capsys, ["oracles", "import", "nb201", str(d)])
    assert "refusing to unpickle" in err
    assert not (tmp_path / "pwned").exists()


def test_pth_needs_trust_pickle(tmp_path, capsys, empty_data_env):
    f = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    f.write_bytes(pickle.dumps({"x": 1}))
    assert "--trust-pickle" in one_line_error(capsys, ["oracles", "import", "nb201", str(f)])


def test_nothing_is_written_for_unknown_names(nb201_env, tmp_path, capsys):
    for args, msg in [(["--oracle", "nb201/cifar11", "--algorithm", "random"], "unknown oracle"),
                      (["--oracle", "nb201/cifar10", "--algorithm", "randon"], "unknown algorithm"),
                      (["--oracle", "nb201/cifar10", "--algorithm", "random:replace"], "key=value"),
                      (["--oracle", "nb201/cifar10:runs", "--algorithm", "random"], "key=value")]:
        err = one_line_error(capsys, ["run", *args, "--out", str(tmp_path / "o"), "--quiet"])
        assert msg in err
    assert not (tmp_path / "o" / "experiment.json").exists()


def test_printable_garbage_everywhere(nb201_env, tmp_path, capsys):
    """Control characters, huge and empty values in every text flag: one line each."""
    for bad in ["", " ", "\x00", "\n", "x" * 10_000, "../../etc/passwd", "nb201/cifar10\nrandom",
                string.punctuation]:
        for flag in ("--oracle", "--algorithm"):
            args = ["run", "--oracle", "nb201/cifar10", "--algorithm", "random", "--budget", "3", "--seeds", "1",
                    "--out", str(tmp_path / "o"), "--quiet"]
            args[args.index(flag) + 1] = bad
            rc = cli(args)
            _, err = capsys.readouterr()
            assert rc == 2 and "Traceback" not in err and err.count("\n") == 1, (flag, bad, err)
            # the line says which value is wrong (printable: repr, so a newline cannot split it)
            what = flag[2:]
            assert err.startswith(f"nas-harness: error: unknown {what}"), (flag, bad, err)
            if bad.strip() and bad != string.punctuation:
                assert repr(bad.strip())[:60] in err, (flag, bad, err)
