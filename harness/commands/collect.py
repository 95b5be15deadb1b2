"""``nas-harness collect``: train a whole search space and write a table the oracles load.

``nas-harness collect convnet --preset NAME --dataset digits|cifar10 --seeds N --out DIR``
(see :mod:`oracles.collectors.convnet` for the resumable, crash-safe collection);
``nas-harness collect nb201 --dataset digits --seeds 2 --out DIR``: one representative of
each of NB201's 6,466 cell classes per seed (:mod:`oracles.collectors.nb201`);
``nas-harness collect recurrent --subset N --seeds N --out DIR``: LaNAS's recurrent cells as
language models (:mod:`oracles.collectors.recurrent`, docs/lstm-shakespeare.md).
"""

from __future__ import annotations

import argparse

from oracles.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("collect", help="train every network of a space and write a table",
                              description="Train a whole search space and write a table the oracles load.")
    families = p.add_subparsers(dest="family", metavar="FAMILY", parser_class=type(p))
    c = families.add_parser("convnet", help="plain ConvNets (LaNAS §2 / ConvNet-60K)",
                            description="Train every ConvNet of a preset space (or a random subset) for "
                                        "each seed; resumable: run the same command again after an "
                                        "interruption.")
    from oracles.convnet_space import PRESETS
    c.add_argument("--preset", required=True, choices=sorted(PRESETS),
                   help="space: lanas-s2 (LaNAS §2, 1,364 nets), convnet60k (depth<=6, 55,986 nets = "
                        "the paper's ~60K), convnet60k-d8 (depth<=8, 2,015,538), digits (C in {8,16}, 1,364)")
    c.add_argument("--dataset", required=True, choices=("digits", "cifar10"))
    c.add_argument("--cifar-dir", metavar="DIR", help="the extracted cifar-10-batches-py folder")
    c.add_argument("--seeds", type=int, default=1, metavar="N", help="train each network with seeds 0..N-1")
    c.add_argument("--out", required=True, metavar="DIR", help="work folder (shards; resumable)")
    c.add_argument("--table", metavar="DIR", help="where the finished table goes (default: the data directory, "
                   "$NAS_HARNESS_DATA/NAME, so it is an oracle at once)")
    c.add_argument("--name", help="oracle/table name (default convnet-digits for the digits preset on "
                                  "digits, else convnet-PRESET-DATASET)")
    c.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes / Ray task slots")
    c.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    c.add_argument("--executor", default="local", choices=("local", "ray"))
    c.add_argument("--subset", type=int, metavar="N", help="train a uniform random subset of N networks")
    c.add_argument("--subset-seed", type=int, default=0, metavar="S")
    c.add_argument("--split-seed", type=int, default=0, metavar="S", help="train/valid/test split seed")
    c.add_argument("--epochs", type=int, help="override the dataset's default recipe")
    c.add_argument("--batch-size", type=int)
    c.add_argument("--lr", type=float)
    c.add_argument("--weight-decay", type=float)
    c.add_argument("--no-progress", action="store_true", help="no progress bar")
    c.add_argument("--finalize-partial", action="store_true",
                   help="do not train; write a table of the seeds every network has finished so far")
    c.set_defaults(func=_collect_convnet)
    _register_nb201(families)
    _register_recurrent(families)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _register_nb201(families) -> None:
    n = families.add_parser("nb201", help="NAS-Bench-201 cells, one per class of equal cells (a ground truth)",
                            description="Train one representative of each class of NB201 cells that compute "
                                        "the same expression (6,466 classes) per seed, stand-alone in the NB201 "
                                        "skeleton, and write a table stored by class that serves all 15,625 cells; "
                                        "resumable: run the "
                                        "same command again after an interruption (docs/nb201-digits.md).")
    n.add_argument("--dataset", choices=("digits", "mnist5k", "cifar10"), help="required unless --status")
    n.add_argument("--cifar-dir", metavar="DIR", help="the extracted cifar-10-batches-py folder")
    n.add_argument("--seeds", type=int, default=2, metavar="N", help="train each class with seeds 0..N-1 (default 2)")
    n.add_argument("--out", required=True, metavar="DIR", help="work folder (shards; resumable)")
    n.add_argument("--table", metavar="DIR", help="where the finished table goes (default: the data directory, "
                   "$NAS_HARNESS_DATA/NAME)")
    n.add_argument("--name", help="oracle/table name (default nb201-DATASET)")
    n.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes")
    n.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    n.add_argument("--classes", type=int, metavar="N",
                   help="train only N classes drawn uniformly (a trial; the table then holds their representatives)")
    n.add_argument("--split-seed", type=int, default=0, metavar="S", help="train/valid/test split seed")
    for flag, kind, what in (("--channels", int, "C, channels of the first stage"),
                             ("--cells", int, "N, cells per stage"), ("--epochs", int, "epochs"),
                             ("--batch-size", int, "batch size"), ("--lr", float, "peak learning rate"),
                             ("--weight-decay", float, "weight decay")):
        n.add_argument(flag, type=kind, help=f"override the dataset's default recipe: {what}")
    n.add_argument("--no-progress", action="store_true", help="no progress bar")
    n.add_argument("--status", action="store_true", help="do not train; print progress and the seed-to-seed "
                                                          "agreement so far")
    n.add_argument("--finalize-partial", action="store_true",
                   help="do not train; write a table of every class with a seed finished so far (a uniform random "
                        "sample of the classes; NaN for missing seeds); only reads the collection, so it works "
                        "while it runs")
    n.set_defaults(func=_collect_nb201)


def _collect_nb201(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from oracles.collectors import nb201 as col
    from oracles.registry import data_dir

    if args.status:
        info = col.status(args.out)
        rows, _ = col.read_rows(args.out)
        info["seed_agreement"] = col.seed_agreement(rows)
        print(json.dumps(info, indent=1))
        return 0
    if args.dataset is None:
        raise UserError("collect nb201 needs --dataset (digits, mnist5k or cifar10)")
    names = {"channels": "C", "cells": "N", "epochs": "epochs", "batch_size": "batch_size", "lr": "lr",
             "weight_decay": "weight_decay"}
    overrides = {field: getattr(args, arg) for arg, field in names.items() if getattr(args, arg) is not None}
    try:
        recipe = dataclasses.replace(col.DEFAULT_RECIPES[args.dataset], **overrides)
    except ValueError as exc:
        raise UserError(f"bad recipe: {exc}") from None
    if args.dataset == "cifar10" and not args.cifar_dir:
        raise UserError("--dataset cifar10 needs --cifar-dir DIR (the extracted cifar-10-batches-py folder)")
    job = col.make_job(args.dataset, args.seeds, recipe=recipe, name=args.name, split_seed=args.split_seed,
                       classes=args.classes, cifar_dir=args.cifar_dir)
    target = col.collect(job, args.out, workers=args.workers, device=args.device, progress=not args.no_progress,
                         # a trial's table (some classes) is not a whole space: kept in OUT, not served
                         table_dir=args.table or (data_dir() / job.name if job.classes is None else None),
                         train=not args.finalize_partial, partial=args.finalize_partial)
    if target is None:
        print(f"collection in {args.out} is not complete; run the same command again to resume")
        return 1
    print(f"table {job.name} written to {target}"
          + (f"; query it as the oracle {job.name}" if args.table is None and job.classes is None else ""))
    return 0


def _collect_convnet(args: argparse.Namespace) -> int:
    import dataclasses

    from oracles.collectors.convnet import collect, make_job
    from oracles.collectors.train import DEFAULT_RECIPES
    from oracles.registry import data_dir

    recipe = DEFAULT_RECIPES[args.dataset]
    overrides = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "weight_decay")
                 if getattr(args, k) is not None}
    try:
        recipe = dataclasses.replace(recipe, **overrides)
    except ValueError as exc:
        raise UserError(f"bad recipe: {exc}") from None
    if args.dataset == "cifar10" and not args.cifar_dir:
        raise UserError("--dataset cifar10 needs --cifar-dir DIR (the extracted cifar-10-batches-py folder)")
    job = make_job(args.preset, args.dataset, args.seeds, recipe=recipe, name=args.name,
                   split_seed=args.split_seed, subset=args.subset, subset_seed=args.subset_seed,
                   cifar_dir=args.cifar_dir)
    target = collect(job, args.out, workers=args.workers, device=args.device, executor=args.executor,
                     progress=not args.no_progress, table_dir=args.table or data_dir() / job.name,
                     train=not args.finalize_partial, partial=args.finalize_partial)
    if target is None:
        print(f"collection in {args.out} is not complete; run the same command again to resume")
        return 1
    print(f"table {job.name} written to {target}"
          + (f"; query it as the oracle {job.name}" if args.table is None else ""))
    return 0


def _register_recurrent(families) -> None:
    r = families.add_parser("recurrent", help="LaNAS's recurrent cells as language models (LSTM-10K style)",
                            description="Train LaNAS's recurrent cells (6,954 distinct, or a uniform random "
                                        "subset) as language models and write a table (docs/lstm-shakespeare.md); "
                                        "resumable: run the same command again after an interruption.")
    from oracles.collectors.recurrent import PRESETS
    r.add_argument("--preset", default="shakespeare-char", choices=sorted(PRESETS),
                   help="shakespeare-char (the CPU recipe, default) or lstm10k (DARTS's PTB sizes, 50 epochs; "
                        "with --corpus ptb --corpus-dir DIR on a GPU)")
    r.add_argument("--corpus", choices=("shakespeare", "ptb"), help="default: the preset's")
    r.add_argument("--corpus-dir", metavar="DIR", help="the corpus folder (default for shakespeare: "
                   "$NAS_HARNESS_SHARED_DATA/corpora/shakespeare; for ptb: the folder with ptb.train.txt ...)")
    r.add_argument("--level", choices=("char", "word"), help="default: the preset's")
    r.add_argument("--vocab-size", type=int, metavar="N", help="word level: tokens kept (default 10,000)")
    r.add_argument("--subset", type=int, metavar="N", help="train a uniform random subset of N cells (default all)")
    r.add_argument("--subset-seed", type=int, default=0, metavar="S")
    r.add_argument("--seeds", type=int, default=1, metavar="N", help="train each cell with seeds 0..N-1")
    r.add_argument("--out", required=True, metavar="DIR", help="work folder (shards; resumable)")
    r.add_argument("--table", metavar="DIR", help="where the finished table goes (default: the data directory, "
                   "$NAS_HARNESS_DATA/NAME, so it is an oracle at once)")
    r.add_argument("--name", help="oracle/table name (default lstm-CORPUS-LEVEL, or lstm-lstm10k-CORPUS)")
    r.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes / Ray task slots")
    r.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    r.add_argument("--executor", default="local", choices=("local", "ray"))
    r.add_argument("--steps", type=int, help="override the preset's training steps")
    r.add_argument("--hidden", type=int, help="override the preset's hidden size")
    r.add_argument("--batch-size", type=int)
    r.add_argument("--lr", type=float)
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--finalize-partial", action="store_true",
                   help="do not train; write a table of the cells whose every seed is finished so far "
                        "(a uniform random sample: cells are trained in random order)")
    r.add_argument("--adopt", metavar="DIR",
                   help="first file the finished runs of another collection folder of the same recipe and corpus "
                        "into --out under the current cell identities, so they are not trained again (e.g. one "
                        "made before the mean-form identity rule, or the same collection run elsewhere)")
    r.set_defaults(func=_collect_recurrent)


def _collect_recurrent(args: argparse.Namespace) -> int:
    import dataclasses

    from oracles.collectors.recurrent import PRESETS, adopt, collect, make_job
    from oracles.registry import data_dir

    recipe = PRESETS[args.preset]["recipe"]
    overrides = {k: getattr(args, k) for k in ("steps", "hidden", "batch_size", "lr") if getattr(args, k) is not None}
    try:
        recipe = dataclasses.replace(recipe, **overrides)
    except ValueError as exc:
        raise UserError(f"bad recipe: {exc}") from None
    job = make_job(args.preset, seeds=args.seeds, subset=args.subset, subset_seed=args.subset_seed, recipe=recipe,
                   name=args.name, corpus=args.corpus, level=args.level, vocab_size=args.vocab_size,
                   corpus_dir=args.corpus_dir)
    if args.adopt:
        adopt(job, args.out, args.adopt)
    target = collect(job, args.out, workers=args.workers, device=args.device, executor=args.executor,
                     progress=not args.no_progress, table_dir=args.table or data_dir() / job.name,
                     train=not args.finalize_partial, partial=args.finalize_partial)
    if target is None:
        print(f"collection in {args.out} is not complete; run the same command again to resume")
        return 1
    print(f"table {job.name} written to {target}"
          + (f"; query it as the oracle {job.name}" if args.table is None else ""))
    return 0
