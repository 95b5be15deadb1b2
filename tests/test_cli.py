"""The command line: the happy path, and one clear line for every user mistake."""

import json

import pytest

from harness.cli import main as cli


def run(args, capsys):
    code = cli(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_run_report_and_json(nb201_env, tmp_path, capsys):
    out = tmp_path / "o"
    code, text, _ = run(["run", "--oracle", "nb201/cifar10", "--algorithm", "random", "--seeds", "3",
                         "--budget", "50", "--out", str(out), "--quiet"], capsys)
    assert code == 0 and "nb201/cifar10" in text and f"results in {out}" in text
    code, text, _ = run(["report", str(out), "--format", "json"], capsys)
    rows = json.loads(text)["cells"]
    assert code == 0 and rows[0]["runs"] == 3 and rows[0]["budget"] == 50
    code, text, _ = run(["report", str(out)], capsys)
    assert code == 0 and "random" in text


def test_experiment_file(nb201_env, tmp_path, capsys):
    f = tmp_path / "e.toml"
    f.write_text(f'oracles = ["nb201/cifar100"]\nalgorithms = ["random"]\nseeds = 2\nbudget = 20\n'
                 f'out = "{tmp_path / "o"}"\n')
    code, text, _ = run(["run", str(f), "--quiet"], capsys)
    assert code == 0 and "nb201/cifar100" in text


def test_oracles_list_info_query(nb201_env, capsys):
    code, text, _ = run(["oracles", "list"], capsys)
    assert code == 0 and "nb201/imagenet16" in text and "installed" in text
    code, text, _ = run(["oracles", "info", "nb201/cifar10"], capsys)
    assert code == 0 and "91.6067%" in text and "15,625" in text and "1 architecture(s) tied" in text
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    code, text, _ = run(["oracles", "query", "nb201/cifar10", arch], capsys)
    d = json.loads(text)
    assert code == 0 and d["index"] == 6111 and d["is_optimum"] and d["cifar10_test"] == pytest.approx(0.943733, abs=1e-6)


@pytest.mark.parametrize("args, message", [
    (["run", "--oracle", "nb999/x", "--algorithm", "random", "--budget", "5"], "unknown oracle 'nb999/x'"),
    (["run", "--oracle", "nb201/cifar10", "--algorithm", "magic", "--budget", "5"], "unknown algorithm 'magic'"),
    (["run", "--oracle", "nb201/cifar10", "--algorithm", "random", "--budget", "0"], "budget must be"),
    (["run", "--oracle", "nb201/cifar10", "--algorithm", "random", "--seeds", "-3"], "seeds must be"),
    (["run", "--oracle", "nb201/cifar10", "--algorithm", "random:replace=maybe"], "true or false"),
    (["run", "--oracle", "nb201/cifar10", "--algorithm", "random:colour=red"], "unknown parameter"),
    (["run", "--oracle", "nb201/cifar10:flavour=x", "--algorithm", "random"], "unknown oracle option"),
    (["run", "--budget", "ten"], "invalid int value"),
    (["oracles", "query", "nb201/cifar10", "|conv~0|"], "bad NB201 string"),
    (["report", "/nonexistent/folder"], "not a results folder"),
    (["run", "/nonexistent/e.toml"], "does not exist"),
])
def test_user_mistakes_get_one_line(nb201_env, tmp_path, capsys, args, message):
    if args[0] == "run":
        args = [*args, "--out", str(tmp_path / "o"), "--quiet"]
    code, _, err = run(args, capsys)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_data_names_the_import_command(empty_data_env, tmp_path, capsys):
    code, _, err = run(["run", "--oracle", "nb201/cifar10", "--algorithm", "random", "--out",
                        str(tmp_path / "o")], capsys)
    assert code == 2 and "nas-harness oracles import nb201" in err and err.count("\n") == 1


def test_tampered_table_is_refused(nb201_data_dir, tmp_path, monkeypatch, capsys):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(nb201_data_dir, data)
    monkeypatch.setenv("NAS_HARNESS_DATA", str(data))
    values = data / "nb201" / "values.npy"
    raw = bytearray(values.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one flipped bit in one accuracy
    values.write_bytes(bytes(raw))
    code, _, err = run(["oracles", "info", "nb201/cifar10"], capsys)
    assert code == 2 and "does not match its checksum" in err and err.count("\n") == 1
