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
import json
import os
import pickle
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


def assert_parses_or_refuses_in_one_line(space, text):
    """``text`` is either refused with a one-line InvalidArchitecture, or parses to an
    architecture whose printed form parses back to the same identity."""
    try:
        arch = space.parse(text)
    except InvalidArchitecture as exc:
        assert "\n" not in str(exc)
        return
    assert space.identity(space.parse(space.to_string(arch))) == space.identity(arch)


NB201 = NB201Space()
junk = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
nb201_like = st.lists(st.sampled_from(["|", "~", "+", "0", "1", "2", "3", *NB201_OPS, "conv", " ", "\n"]),
                      max_size=30).map("".join)


@SETTINGS
@given(st.one_of(junk, nb201_like))
def test_nb201_parse_accepts_or_refuses_cleanly(text):
    assert_parses_or_refuses_in_one_line(NB201, text)


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


@SETTINGS
@given(st.one_of(junk, nb101_like))
def test_nb101_strings_accept_or_refuse_cleanly(text):
    assert_parses_or_refuses_in_one_line(nb101_space.NB101Space(), text)


@SETTINGS
@given(st.integers(0, 8).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.integers(-1, 2), min_size=n, max_size=n), min_size=n, max_size=n),
    st.lists(st.sampled_from([*nb101_space.OPS, "input", "output", "pool"]), min_size=0, max_size=n + 1))))
def test_nb101_cell_validation(spec):
    matrix, ops = spec
    try:
        nb101_space.validate(nb101_space.make_cell(np.array(matrix, dtype=np.int64).reshape(len(matrix), -1)
                                                   if matrix else np.zeros((0, 0), dtype=np.int64), ops))
    except InvalidArchitecture as exc:
        assert "\n" not in str(exc)


from oracles.convnet_space import ConvNetSpace  # noqa: E402

CONVNET = ConvNetSpace.from_preset("digits")
convnet_like = st.lists(st.sampled_from(["3", "5", "x", "-", "8", "16", "32", "1", "0", " ", "²", "٣"]),
                        max_size=20).map("".join)


@SETTINGS
@given(st.one_of(junk, convnet_like))
def test_convnet_strings_accept_or_refuse_cleanly(text):
    assert_parses_or_refuses_in_one_line(CONVNET, text)


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
    assert set(algo.get_params()) == set(algorithm_class(name).default_params())


@SETTINGS
@given(st.one_of(junk, st.lists(st.sampled_from(["random", ":", ",", "=", "k", "v", " "]), max_size=12)
                 .map("".join)))
def test_parse_spec_and_parse_name(text):
    from oracles.registry import parse_name
    for parse in (parse_spec, parse_name):
        try:
            name, params = parse(text)
        except UserError as exc:
            assert "\n" not in str(exc)
            continue
        assert isinstance(name, str) and all(isinstance(k, str) and k for k in params)


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
            load_oracle(spec)
        except UserError as exc:
            assert "\n" not in str(exc)

    check()


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
    try:
        algo = make_algorithm(name, {key: value})
        run_one(RunConfig(name, algo.get_params(), "nb201/cifar10", budget=12), nb201_oracle, 0)
    except UserError as exc:
        assert "\n" not in str(exc)


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
    (["--budget", "1.5"], "invalid int value"),
    (["--budget", ""], "invalid int value"),
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
    (BASE + 'budget = 1.5\n', "budget must be an integer"),
    (BASE + 'budget = true\n', "budget must be an integer"),
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


def _edit_manifest(table_dir, edit):
    m = json.loads((table_dir / "manifest.json").read_text())
    edit(m)
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
    assert cli(["report", str(results)]) == 0  # damaged runs are not counted
    assert cli([*RUN, "--budget", "30", "--seeds", "2", "--out", str(results)]) == 0
    capsys.readouterr()
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

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "fsync":
        monkeypatch.setattr(os, "fsync", full)
    else:  # the parquet writer itself fails half-way through the temporary file
        import harness.results as hr
        real = hr.pq.write_table

        def half(table, fh, **kw):
            fh.write(b"PAR1 partial")
            full()
        monkeypatch.setattr(hr.pq, "write_table", half)
        assert real is not None
    err = one_line_error(capsys, [*RUN, "--budget", "30", "--seeds", "4", "--workers", "1", "--out", str(results)])
    assert "No space left on device" in err and "disk is not full" in err
    assert snapshot(results) == before  # nothing half-written, old runs untouched


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
