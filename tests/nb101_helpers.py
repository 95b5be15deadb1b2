"""Test-side NAS-Bench-101 helpers: official-layout tfrecord fixtures and a synthetic table.

``write_official_tfrecord`` writes the 25 real records of
``../shared/data/nb101/nb101_official_sample.json`` in the layout of the official
``nasbench_only108.tfrecord`` (one TFRecord per training run holding the JSON list
``[hash, epochs, adjacency, ops, base64 ModelMetrics]``). The protobuf is encoded here by
hand, independently of the importer's decoder. The sample has no epoch-0 evaluation, so the
first ``EvaluationData`` carries only ``current_epoch = 0`` (the importer ignores it, as the
official API does).

``synthetic_full_table`` builds a table of the full NB101 size: the 423,624 real models
(enumerated by :func:`oracles.nb101_space.enumerate_models`) with MADE-UP accuracies.
Its name and metadata say ``synthetic``; it exists to measure load time, memory and query
speed, never as data.
"""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from oracles.importers.nb101 import METRICS, N_RUNS, masked_crc, oracle_declarations, space_meta
from oracles.nb101_space import N_TRIU, enumerate_models, module_hash, prune, unpad
from oracles.table import Table

FINAL_KEYS = ("final_train_accuracy", "final_validation_accuracy", "final_test_accuracy", "final_training_time")
HALF_KEYS = tuple(k.replace("final_", "halfway_") for k in FINAL_KEYS)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _double(field: int, x: float) -> bytes:
    return _varint(field << 3 | 1) + struct.pack("<d", x)


def _bytes(field: int, b: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(b)) + b


def encode_evaluation(epoch: float, run: dict[str, float] | None = None, prefix: str = "final_") -> bytes:
    out = _double(1, epoch)
    if run is not None:
        for num, key in ((2, "training_time"), (3, "train_accuracy"), (4, "validation_accuracy"),
                         (5, "test_accuracy")):
            out += _double(num, run[prefix + key])
    return out


def encode_model_metrics(params: int, epochs: int, run: dict[str, float]) -> bytes:
    evals = [encode_evaluation(0.0), encode_evaluation(epochs / 2, run, "halfway_"),
             encode_evaluation(float(epochs), run, "final_")]
    total = run["final_training_time"]
    return b"".join(_bytes(1, e) for e in evals) + _varint(2 << 3 | 0) + _varint(params) + _double(3, total)


def frame(payload: bytes) -> bytes:
    header = struct.pack("<Q", len(payload))
    return header + struct.pack("<I", masked_crc(header)) + payload + struct.pack("<I", masked_crc(payload))


def official_payloads(records: Iterable[dict[str, Any]]) -> list[bytes]:
    """One JSON payload per (model, epochs, run), in the official field order."""
    out = []
    for rec in records:
        adjacency = "".join(str(int(x)) for row in rec["matrix"] for x in row)
        ops = ",".join(rec["ops"])
        for epochs, runs in rec["epochs"].items():
            for run in runs:
                metrics = base64.b64encode(
                    encode_model_metrics(int(rec["trainable_parameters"]), int(epochs), run)).decode()
                out.append(json.dumps([rec["hash"], int(epochs), adjacency, ops, metrics]).encode())
    return out


def write_official_tfrecord(records: list[dict[str, Any]], path: Path,
                            payloads: list[bytes] | None = None) -> Path:
    payloads = official_payloads(records) if payloads is None else payloads
    with open(path, "wb") as fh:
        for p in payloads:
            fh.write(frame(p))
    return path


def load_sample(path: Path) -> list[dict[str, Any]]:
    with open(path) as fh:
        return json.load(fh)


def expected_means(rec: dict[str, Any], key: str, epochs: str = "108") -> float:
    """The official API's mean over runs (np.mean of the three float values)."""
    return float(np.mean([run[key] for run in rec["epochs"][epochs]]))


def synthetic_full_table(seed: int = 0) -> Table:
    """All 423,624 real NB101 models (hashed with the official hash) with made-up metrics."""
    bits, ops = enumerate_models()
    hashes = np.array([module_hash(prune(unpad(b, o))) for b, o in zip(bits, ops)], dtype="<U32")
    order = np.argsort(hashes)
    hashes, bits, ops = hashes[order], bits[order], ops[order]
    rng = np.random.default_rng(seed)
    n = len(hashes)
    # made-up: accuracy rises with the number of edges plus noise; times ~ params
    base = 0.80 + 0.015 * bits.sum(axis=1)[:, None] / N_TRIU * 9 + rng.normal(0, 0.02, (n, 1))
    values = np.empty((n, N_RUNS, 1, len(METRICS)), dtype=np.float32)
    for k, m in enumerate(METRICS):
        if m.endswith("training_time"):
            v = rng.uniform(300, 3000, (n, 1)) * (0.5 if m.startswith("halfway") else 1.0)
            values[:, :, 0, k] = v + rng.normal(0, 5, (n, N_RUNS))
        else:
            shift = -0.15 if m.startswith("halfway") else 0.0
            shift += 0.05 if "train_" in m else (-0.005 if "test" in m else 0.0)
            values[:, :, 0, k] = np.clip(base + shift + rng.normal(0, 0.005, (n, N_RUNS)), 0, 1)
    n_vertices = np.where(ops >= 0, 1, 0).sum(axis=1).astype(np.uint8) + 2
    meta = {"synthetic": True,
            "source": {"file": None, "format": "SYNTHETIC: real NB101 cells, made-up accuracies (tests only)"},
            "space": space_meta(),
            "oracles": oracle_declarations("nb101-synthetic", 108)}
    return Table(name="nb101-synthetic", archs=hashes, seeds=tuple(str(s) for s in range(N_RUNS)),
                 fidelities=(108,), metrics=METRICS, values=values,
                 columns={"bits": bits, "ops": ops, "n_vertices": n_vertices,
                          "params": rng.integers(200_000, 50_000_000, n)},
                 meta=meta)


def write_table_as_tfrecord(table: Table, path: Path) -> Path:
    """Write an NB101 table back in the official tfrecord layout (streamed, one record per
    run): used to measure a full-size import on the synthetic table."""
    from oracles.importers.nb101 import FINAL
    metric_keys = [f"final_{m}" for m in FINAL] + [f"halfway_{m}" for m in FINAL]
    values = np.asarray(table.values, dtype=np.float64)
    with open(path, "wb") as fh:
        for i, h in enumerate(table.archs):
            cell = prune(unpad(table.columns["bits"][i], table.columns["ops"][i]))
            adjacency = "".join(str(x) for row in cell.matrix for x in row)
            ops = ",".join(cell.ops)
            for f, epochs in enumerate(table.fidelities):
                for s in range(len(table.seeds)):
                    run = dict(zip(metric_keys, (float(x) for x in values[i, s, f])))
                    metrics = base64.b64encode(encode_model_metrics(
                        int(table.columns["params"][i]), int(epochs), run)).decode()
                    fh.write(frame(json.dumps([str(h), int(epochs), adjacency, ops, metrics]).encode()))
    return path
