"""NAS-Bench-101 conversion recipe: the official ``.tfrecord`` files, read without TensorFlow.

Sources (Ying et al., ICML 2019, "NAS-Bench-101" -- LaNAS's benchmark, Wang et al.,
"Sample-Efficient Neural Architecture Search by Learning Action Space", §4 -- and its
official data release):

* ``nasbench_only108.tfrecord``: every one of the 423,624 models trained for 108 epochs,
  three runs each -> table ``nb101``, fidelity 108;
* ``nasbench_full.tfrecord``: the same models at 4, 12, 36 and 108 epochs -> table
  ``nb101-full``, fidelities 4/12/36/108.

File layout. A TFRecord file is a sequence of records, each ``uint64 length`` (little
endian), ``uint32 masked CRC-32C of the length bytes``, the payload, ``uint32 masked
CRC-32C of the payload`` (mask: rotate right by 15 bits, add 0xa282ead8). Every payload is
one training run, a JSON list ``[module_hash, epochs, adjacency, ops, metrics]``: the
adjacency as a row-major string of ``0``/``1``, the ops comma-joined, and ``metrics`` a
base64 ``ModelMetrics`` protocol buffer: field 1 = repeated ``EvaluationData`` (evaluations
at epoch 0, halfway and at the end; each has 1 current_epoch, 2 training_time,
3 train_accuracy, 4 validation_accuracy, 5 test_accuracy as doubles), field 2 =
trainable_parameters, field 3 = total_time. The protobuf is decoded by hand (a few dozen
lines) so no protobuf runtime or generated code is needed; CRCs use the ``crc32c`` package.

Checks. Every record's CRCs, JSON, protobuf and cell are checked, and its hash is recomputed
with :func:`oracles.nb101_space.module_hash`; any mismatch raises :class:`CorruptData`
naming the record number (0-based) so a damaged download is refused, never half-imported.

Table written (rows sorted by module hash, so a hash is found by bisection without a
per-model dictionary):

* ``values`` float32 ``(models, 3 runs, fidelities, 8)``: metrics ``train_accuracy``,
  ``validation_accuracy``, ``test_accuracy``, ``training_time`` (seconds) at the end of
  training, and the same four prefixed ``halfway_`` (the official API's halfway fields).
  The release stores float32 numbers widened to double, so float32 keeps them exactly.
* columns ``bits`` (21 padded upper-triangle adjacency bits), ``ops`` (5 padded interior op
  codes, -1 = no vertex), ``n_vertices`` and ``params`` (trainable parameters).
* oracles: ``nb101`` searches the mean validation accuracy over the three runs and reports
  the mean test accuracy (the NB101 paper's protocol); ``nb101/test-search`` searches
  and reports the mean test accuracy, which is what LaNAS did (its optimum is the best
  mean test accuracy, 0.943175752957662). Add ``:runs=random`` to either to answer one run
  drawn at random per query, as the official API does.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import mmap
import os
import struct
from array import array
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import CorruptData, InvalidArchitecture, UserError
from ..nb101_space import N_INTERIOR, N_TRIU, OPS, Cell, make_cell, module_hash, pad, validate
from ..table import Table, file_sha256

NAME = "nb101"
HELP = "NAS-Bench-101: nasbench_only108.tfrecord or nasbench_full.tfrecord (no TensorFlow needed)"

FINAL = ("train_accuracy", "validation_accuracy", "test_accuracy", "training_time")
METRICS = FINAL + tuple(f"halfway_{m}" for m in FINAL)
N_RUNS = 3  # NB101 release: every model trained three times per epoch budget
_EVAL_FIELDS = {2: "training_time", 3: "train_accuracy", 4: "validation_accuracy", 5: "test_accuracy"}
_MASK_DELTA = 0xA282EAD8
_OP_SET = frozenset(OPS)


# --- TFRecord framing ------------------------------------------------------------------------
def _crc32c():
    try:
        import crc32c
    except ImportError:
        raise UserError("reading .tfrecord files needs the crc32c package: pip install crc32c") from None
    return crc32c.crc32c


def masked_crc(data: bytes, crc=None) -> int:
    c = (crc or _crc32c())(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def iter_tfrecords(path: str | os.PathLike, check_crc: bool = True) -> Iterator[tuple[int, bytes]]:
    """``(record number, payload)`` for every record of a TFRecord file, CRCs checked."""
    crc = _crc32c() if check_crc else None
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            pos, k = 0, 0
            while pos < size:
                if pos + 12 > size:
                    raise CorruptData(f"{path}: record {k} is truncated (header cut off at byte {pos})")
                header = buf[pos:pos + 8]
                (length,) = struct.unpack("<Q", header)
                (length_crc,) = struct.unpack("<I", buf[pos + 8:pos + 12])
                if check_crc and masked_crc(header, crc) != length_crc:
                    raise CorruptData(f"{path}: record {k} has a bad length checksum (file damaged)")
                start, end = pos + 12, pos + 12 + length
                if end + 4 > size:
                    raise CorruptData(f"{path}: record {k} is truncated (needs {length} bytes)")
                payload = buf[start:end]
                (data_crc,) = struct.unpack("<I", buf[end:end + 4])
                if check_crc and masked_crc(payload, crc) != data_crc:
                    raise CorruptData(f"{path}: record {k} has a bad data checksum (file damaged)")
                yield k, payload
                pos, k = end + 4, k + 1


# --- protocol buffer wire format ----------------------------------------------------------------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def parse_message(buf: bytes) -> dict[int, list[Any]]:
    """Field number -> values of a protobuf message (varints as int, fixed64 as double,
    fixed32 as float, length-delimited as bytes)."""
    fields: dict[int, list[Any]] = {}
    pos = 0
    end = len(buf)
    while pos < end:
        key = buf[pos]
        if key < 0x80:  # every key of these messages fits one byte: skip the general decoder
            pos += 1
        else:
            key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise ValueError("truncated fixed64")
            (value,) = struct.unpack_from("<d", buf, pos)
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated length-delimited field")
            value = bytes(buf[pos:pos + n])
            pos += n
        elif wire == 5:
            if pos + 4 > len(buf):
                raise ValueError("truncated fixed32")
            (value,) = struct.unpack_from("<f", buf, pos)
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if field == 0:
            raise ValueError("field number 0")
        fields.setdefault(field, []).append(value)
    return fields


def decode_model_metrics(raw: bytes) -> dict[str, Any]:
    """``{"params": int, "evaluations": [{"current_epoch", "training_time", ...}, ...]}``."""
    msg = parse_message(raw)
    evals = []
    for blob in msg.get(1, []):
        if not isinstance(blob, bytes):
            raise ValueError("evaluation_data is not a message")
        ev = parse_message(blob)
        d = {"current_epoch": float(ev[1][-1]) if 1 in ev else None}
        for num, name in _EVAL_FIELDS.items():
            d[name] = float(ev[num][-1]) if num in ev else float("nan")
        evals.append(d)
    params = msg.get(2, [None])[-1]
    return {"params": None if params is None else int(params), "evaluations": evals}


# --- records -> table ------------------------------------------------------------------------
def _parse_record(k: int, payload: bytes, path) -> tuple[str, int, str, str, dict[str, Any]]:
    try:
        rec = json.loads(bytes(payload).decode("utf-8"))
        module_hash_, epochs, adjacency, ops, metrics = rec
        epochs = int(epochs)
        metrics = decode_model_metrics(base64.b64decode(metrics, validate=True))
    except (ValueError, TypeError, UnicodeDecodeError, binascii.Error) as exc:
        raise CorruptData(f"{path}: record {k} is not an NB101 record ({exc})") from None
    if not isinstance(module_hash_, str) or not isinstance(adjacency, str) or not isinstance(ops, str):
        raise CorruptData(f"{path}: record {k} is not an NB101 record (wrong field types)")
    if len(metrics["evaluations"]) < 3:
        raise CorruptData(f"{path}: record {k} has {len(metrics['evaluations'])} evaluations, "
                          "expected epoch 0, halfway and final")
    return module_hash_, epochs, adjacency, ops, metrics


def _cell_of(k: int, adjacency: str, ops: str, path):
    n = int(round(len(adjacency) ** 0.5))
    try:
        if n * n != len(adjacency) or set(adjacency) - {"0", "1"}:
            raise InvalidArchitecture(f"adjacency {adjacency!r} is not a square 0/1 matrix")
        matrix = tuple(tuple(1 if c == "1" else 0 for c in adjacency[i * n:(i + 1) * n]) for i in range(n))
        names = tuple(ops.split(","))
        if any(matrix[i][j] for i in range(n) for j in range(i + 1)) or len(names) != n \
                or names[0] != "input" or names[-1] != "output" or not set(names[1:-1]) <= _OP_SET:
            cell = make_cell(matrix, names)  # the slow, thorough check says what is wrong
        cell = Cell(matrix, names)
        pruned = validate(cell)
    except InvalidArchitecture as exc:
        raise CorruptData(f"{path}: record {k} holds an invalid NB101 cell ({exc})") from None
    if pruned is not cell:
        raise CorruptData(f"{path}: record {k} holds an unpruned cell; the release stores pruned cells")
    return cell


def read_tfrecord(path: str | os.PathLike, verify_hashes: bool = True, check_crc: bool = True) -> dict[str, Any]:
    """Read an official NB101 file into arrays (see the module docstring for the checks).

    Per-record data go straight into flat arrays (no per-model Python objects beyond one
    dictionary entry per hash), so the 1.3 M records of the 108-epoch file fit in a few
    hundred MB.
    """
    path = Path(path)
    rows: dict[str, tuple[int, int]] = {}    # hash -> (row, fingerprint of its raw fields)
    bits, ops = array("B"), array("b")         # padded cell per row
    n_vertices, params = array("B"), array("q")
    rec_row, rec_epoch, rec_vals = array("l"), array("l"), array("d")
    n_records = 0
    from tqdm import tqdm
    # progress in bytes, on a terminal only (tqdm's disable=None): a full file takes minutes
    bar = tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"reading {path.name}",
               disable=None, leave=False)
    for k, payload in iter_tfrecords(path, check_crc=check_crc):
        bar.update(len(payload) + 16)
        h, epochs, adjacency, op_names, metrics = _parse_record(k, payload, path)
        n_records += 1
        fingerprint = hash((adjacency, op_names))
        known = rows.get(h)
        if known is None:
            cell = _cell_of(k, adjacency, op_names, path)
            if verify_hashes:
                ours = module_hash(cell)
                if ours != h:
                    raise CorruptData(f"{path}: record {k} says hash {h} but its cell hashes to {ours}")
            rows[h] = known = (len(rows), fingerprint)
            b, o = pad(cell)
            bits.extend(b.tolist())
            ops.extend(o.tolist())
            n_vertices.append(cell.n_vertices)
            params.append(-1 if metrics["params"] is None else metrics["params"])
        elif known[1] != fingerprint:
            raise CorruptData(f"{path}: record {k}: hash {h} was recorded earlier with another cell")
        half, final = metrics["evaluations"][1], metrics["evaluations"][2]
        rec_row.append(known[0])
        rec_epoch.append(epochs)
        rec_vals.extend([final[m] for m in FINAL] + [half[m] for m in FINAL])
    bar.close()
    if not rows:
        raise CorruptData(f"{path} holds no NB101 records")
    return {"hashes": list(rows), "bits": np.frombuffer(bits, dtype=np.uint8).reshape(-1, N_TRIU),
            "ops": np.frombuffer(ops, dtype=np.int8).reshape(-1, N_INTERIOR),
            "n_vertices": np.frombuffer(n_vertices, dtype=np.uint8),
            "params": np.frombuffer(params, dtype=np.int64),
            "rec_row": np.frombuffer(rec_row, dtype=np.int_), "rec_epoch": np.frombuffer(rec_epoch, dtype=np.int_),
            "rec_vals": np.frombuffer(rec_vals, dtype=np.float64).reshape(-1, len(METRICS)),
            "n_records": n_records, "path": str(path)}


def table_from_records(data: dict[str, Any], name: str, meta: dict[str, Any]) -> Table:
    """Arrange :func:`read_tfrecord`'s arrays as a table with rows sorted by hash."""
    hashes = np.array(data["hashes"], dtype="<U32")
    order = np.argsort(hashes, kind="stable")
    new_row = np.empty_like(order)
    new_row[order] = np.arange(len(order))
    fidelities, f_idx = np.unique(data["rec_epoch"], return_inverse=True)
    rows = new_row[data["rec_row"]]
    # a record's run slot = how many records of the same (model, epochs) came before it
    n = len(hashes)
    group = rows * len(fidelities) + f_idx
    by_group = np.argsort(group, kind="stable")
    sorted_groups = group[by_group]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    run_in_group = np.arange(len(group)) - np.repeat(starts, np.diff(np.r_[starts, len(group)]))
    slot = np.empty_like(run_in_group)
    slot[by_group] = run_in_group
    if slot.max() >= N_RUNS:
        k = int(np.flatnonzero(slot >= N_RUNS)[0])
        raise CorruptData(f"{data['path']}: record {k} is run {slot[k] + 1} of model "
                          f"{hashes[data['rec_row'][k]]} at {fidelities[f_idx[k]]} epochs "
                          f"(the release has {N_RUNS})")
    values = np.full((n, N_RUNS, len(fidelities), len(METRICS)), np.nan, dtype=np.float32)
    values[rows, slot, f_idx, :] = data["rec_vals"]
    return Table(name=name, archs=hashes[order], seeds=tuple(str(s) for s in range(N_RUNS)),
                 fidelities=tuple(int(f) for f in fidelities), metrics=METRICS, values=values,
                 columns={"bits": data["bits"][order], "ops": data["ops"][order],
                          "n_vertices": data["n_vertices"][order], "params": data["params"][order]},
                 meta=meta)


def oracle_declarations(prefix: str, fidelity: int) -> list[dict[str, Any]]:
    common = {"fidelity": fidelity, "cost": "training_time", "train": "train_accuracy"}
    return [
        {"name": prefix, "search": "validation_accuracy", "report": "test_accuracy", **common,
         "description": f"NAS-Bench-101, {fidelity} epochs: search mean validation accuracy, report mean "
                        "test accuracy (add :runs=random for one run per query, as the official API)"},
        {"name": f"{prefix}/test-search", "search": "test_accuracy", "report": "test_accuracy", **common,
         "description": f"NAS-Bench-101, {fidelity} epochs: search AND report mean test accuracy "
                        "(the LaNAS protocol: its target is the best mean test accuracy)"},
    ]


def space_meta() -> dict[str, Any]:
    return {"kind": "nb101", "rows": "sorted by module hash",
            "columns": {"bits": "21 upper-triangle adjacency bits of the cell padded to 7 vertices "
                                "(output at position 6)",
                        "ops": "5 interior op codes (0 conv3x3-bn-relu, 1 conv1x1-bn-relu, 2 maxpool3x3, "
                               "-1 no vertex)",
                        "n_vertices": "vertices of the pruned cell", "params": "trainable parameters"}}


def import_file(path: str | os.PathLike, name: str | None = None, verify_hashes: bool = True) -> Table:
    path = Path(os.path.expanduser(str(path)))
    if not path.is_file():
        raise UserError(f"{path} does not exist (expected nasbench_only108.tfrecord or nasbench_full.tfrecord)")
    data = read_tfrecord(path, verify_hashes=verify_hashes)
    fidelities = sorted(set(np.unique(data["rec_epoch"]).tolist()))
    if name is None:
        name = "nb101" if fidelities == [108] else "nb101-full"
    fid = 108 if 108 in fidelities else fidelities[-1]
    meta = {
        "source": {"file": path.name, "sha256": file_sha256(path), "records": data["n_records"],
                   "format": "NAS-Bench-101 tfrecord", "hashes_verified": verify_hashes},
        "benchmark": "NAS-Bench-101 (Ying et al., 2019), CIFAR-10",
        "units": {"*accuracy": "fraction", "*training_time": "seconds"},
        "seeds": "the three training runs, in file order",
        "space": space_meta(),
        "oracles": oracle_declarations(name, fid),
    }
    return table_from_records(data, name, meta)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="nasbench_only108.tfrecord or nasbench_full.tfrecord")
    parser.add_argument("--name", default=None,
                        help="table and oracle name (default nb101 for the 108-epoch file, nb101-full otherwise)")


def build(args: argparse.Namespace) -> Table:
    return import_file(args.source, getattr(args, "name", None))
