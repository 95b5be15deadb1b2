"""Supernet checkpoints: written atomically, verified, refused in one line when unusable.

A supernet named ``NAME`` lives in ``<data directory>/supernets/NAME/``
(:func:`oracles.registry.data_dir`: ``$NAS_HARNESS_DATA`` or ``~/.cache/nas-harness``):

* ``checkpoint.pt``: the trainer's whole state (:meth:`supernets.training.SupernetTrainer.state_dict`:
  configuration, data record, epoch, weights, optimiser, schedule, generators, history). The
  file is a header line ``nas-harness-supernet/1 <sha256 of the rest>`` followed by the bytes
  of ``torch.save``; it is written to a temporary file in the same folder, flushed to disk and
  renamed over the old one, so a kill leaves either the old checkpoint or the new one, never
  a mixture. Loading checks the header and the hash first, then reads the rest with
  ``torch.load(weights_only=True)`` (tensors, numbers, strings, lists and dicts: no pickled
  code runs).
* ``snapshots/epoch-EEEE.pt`` (with ``--snapshots``): the weights at chosen epochs, in the
  same format, for scoring a supernet along its training (Kendall tau against epochs).
* ``config.json``: the configuration and data record in plain JSON, for people and for
  ``supernet`` oracles listing what exists (written the same way; not trusted on load).

A damaged file, a file of another format, or a checkpoint of another configuration (or of
another split of the data) is refused with :class:`oracles.errors.UserError` naming what
differs; nothing is overwritten in that case.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from harness.files import atomic_write_bytes
from oracles.errors import CorruptData, UserError

FORMAT = "nas-harness-supernet/1"
CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


CHECKPOINT_KEYS = frozenset({"config", "data", "epoch", "model", "optimizer", "scheduler", "rng", "history"})
SNAPSHOT_KEYS = frozenset({"config", "data", "epoch", "model", "history"})


def supernets_dir() -> Path:
    from oracles.registry import data_dir
    return data_dir() / "supernets"


def supernet_dir(name: str) -> Path:
    """The folder of supernet ``name`` (letters, digits, ``.``, ``_``, ``-``; refused otherwise)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError(f"bad supernet name {name!r}: use letters, digits, '.', '_' and '-' "
                        "(at most 100, starting with a letter or digit)")
    return supernets_dir() / name


def _write_atomic(path: Path, payload: bytes) -> None:
    atomic_write_bytes(path, lambda f: f.write(payload))
    try:   # the rename itself survives a power cut once the folder is synced
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save_checkpoint(state: dict[str, Any], folder: Path) -> Path:
    """Write ``state`` (a trainer's ``state_dict``) to ``folder/checkpoint.pt`` atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    body = buf.getvalue()
    header = f"{FORMAT} {hashlib.sha256(body).hexdigest()}\n".encode()
    path = Path(folder) / CHECKPOINT
    _write_atomic(path, header + body)
    meta = {"format": FORMAT, "config": state["config"], "data": state["data"], "epoch": state["epoch"],
            "history": state["history"]}
    _write_atomic(Path(folder) / CONFIG, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())
    return path


def load_checkpoint(folder: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state in ``folder/checkpoint.pt``, verified; :class:`CorruptData` when the file is
    damaged or not a supernet checkpoint."""
    return load_checkpoint_and_digest(folder, map_location)[0]


def load_checkpoint_and_digest(folder: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], str]:
    """:func:`load_checkpoint` and the SHA-256 of the file's body (from the same read), which
    identifies the weights."""
    return _read_verified(Path(folder) / CHECKPOINT, CHECKPOINT_KEYS, map_location)


def _read_verified(path: Path, keys: frozenset, map_location) -> tuple[dict[str, Any], str]:
    return parse_verified(_read_raw(path), str(path), keys, map_location)


def parse_verified(raw: bytes, where: str, keys: frozenset = SNAPSHOT_KEYS,
                   map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], str]:
    """The state in ``raw`` (the bytes of a checkpoint or snapshot file; ``where`` names it in
    messages) and its body's SHA-256, verified as :func:`load_checkpoint` does; ``keys``: the
    parts it must have (default a snapshot's, which every checkpoint has too)."""
    head, nl, body = raw.partition(b"\n")
    parts = head.split(b" ")
    if not nl or len(parts) != 2 or parts[0] != FORMAT.encode():
        raise CorruptData(f"{where} is not a {FORMAT} checkpoint (damaged, or written by something else); "
                          "delete it, or train under another --name")
    if hashlib.sha256(body).hexdigest().encode() != parts[1]:
        raise CorruptData(f"{where} is damaged (its checksum does not match); delete it to train again")
    try:
        state = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CorruptData(f"{where} cannot be loaded ({first[:200]}); delete it to train again") from None
    if not isinstance(state, dict) or not keys <= set(state):
        raise CorruptData(f"{where} lacks parts of a supernet checkpoint; delete it to train again")
    return state, parts[1].decode()


# --- snapshots: the weights at chosen epochs, for scoring a supernet along its training ---
SNAPSHOTS = "snapshots"


def snapshot_path(folder: Path, epoch: int) -> Path:
    return Path(folder) / SNAPSHOTS / f"epoch-{int(epoch):04d}.pt"


def save_snapshot(state: dict[str, Any], folder: Path) -> Path:
    """Keep the weights (and batch-norm statistics) of ``state``'s epoch in
    ``folder/snapshots/epoch-EEEE.pt``, in the checkpoint's verified format, without the
    optimiser and generators (a snapshot is scored, never resumed)."""
    snap = {k: state[k] for k in SNAPSHOT_KEYS}
    buf = io.BytesIO()
    torch.save(snap, buf)
    body = buf.getvalue()
    path = snapshot_path(folder, state["epoch"])
    _write_atomic(path, f"{FORMAT} {hashlib.sha256(body).hexdigest()}\n".encode() + body)
    return path


def list_snapshots(folder: Path) -> list[int]:
    """The epochs with a snapshot in ``folder``."""
    out = []
    for p in (Path(folder) / SNAPSHOTS).glob("epoch-*.pt"):
        try:
            out.append(int(p.stem.split("-")[1]))
        except ValueError:
            continue
    return sorted(out)


def load_weights_and_digest(folder: Path, epoch: int | None = None,
                            map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], str]:
    """The weights of supernet ``folder`` after ``epoch`` (None: the last checkpoint), verified,
    with their file's digest: the checkpoint when it is at that epoch, else the snapshot."""
    state, digest, _ = read_weights(folder, epoch, map_location)
    return state, digest


def _read_raw(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no supernet checkpoint at {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_weights(folder: Path, epoch: int | None = None,
                 map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], str, bytes]:
    """:func:`load_weights_and_digest` and the file's bytes (what an oracle ships to workers on
    other machines, :meth:`supernets.oracle.SupernetOracle.shared`)."""
    folder = Path(folder)
    path = snapshot_path(folder, epoch) if epoch is not None else None
    if path is not None and path.exists():
        raw = _read_raw(path)
        return (*parse_verified(raw, str(path), SNAPSHOT_KEYS, map_location), raw)
    raw = _read_raw(folder / CHECKPOINT)
    state, digest = parse_verified(raw, str(folder / CHECKPOINT), CHECKPOINT_KEYS, map_location)
    if epoch is None or int(state["epoch"]) == int(epoch):
        return state, digest, raw
    kept = list_snapshots(folder)
    raise UserError(f"supernet {folder.name} has no weights of epoch {epoch}: its checkpoint is at epoch "
                    f"{state['epoch']}, snapshots at {', '.join(map(str, kept)) or 'none'} "
                    "(train with --snapshots to keep more)")


def check_compatible(state: dict[str, Any], config: dict[str, Any], data_record: dict[str, Any] | None,
                     where: Path) -> None:
    """Refuse (one line) to resume a checkpoint of another configuration or data split."""
    stored = state["config"]
    diffs = [k for k in sorted(set(stored) | set(config)) if stored.get(k) != config.get(k)]
    if diffs:
        shown = ", ".join(f"{k}={stored.get(k)!r} (asked {config.get(k)!r})" for k in diffs[:4])
        raise UserError(f"the supernet at {where} was trained with another configuration: {shown}; "
                        "use another --name, or delete that folder")
    if data_record is not None:
        keys = ("dataset", "split_seed", "sizes", "fingerprint", "data_sha256")
        bad = [k for k in keys if state["data"].get(k) != data_record.get(k)]
        if bad:
            raise UserError(f"the supernet at {where} was trained on other data ({', '.join(bad)} differ); "
                            "use another --name, or delete that folder")


def sweep_temporaries(folder: Path) -> None:
    """Remove the temporary files a write killed before its rename left in ``folder`` (one
    trainer per supernet folder at a time: a second one would race the first anyway)."""
    for name in (CHECKPOINT, CONFIG):
        for tmp in Path(folder).glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass


def resume(trainer, folder: Path) -> bool:
    """Load ``folder``'s checkpoint into ``trainer`` when there is one; True if resumed.
    A checkpoint of another configuration or split is refused (:func:`check_compatible`).
    Leftover temporary files of a killed write are removed."""
    sweep_temporaries(folder)
    if not (Path(folder) / CHECKPOINT).exists():
        return False
    # on the CPU whatever the device: generator states must be CPU byte tensors, and
    # load_state_dict moves weights and optimiser buffers to the trainer's device itself
    state = load_checkpoint(folder, map_location="cpu")
    check_compatible(state, trainer.config.to_dict(), trainer.data.record(), Path(folder))
    trainer.load_state_dict(state)
    return True
