"""``nas-harness collect``: train a whole search space and write a table the oracles load.

``nas-harness collect convnet --preset NAME --dataset digits|cifar10 --seeds N --out DIR``
(see :mod:`oracles.collectors.convnet` for the resumable, crash-safe collection).
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
    p.set_defaults(func=lambda args: p.print_help() or 2)


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
