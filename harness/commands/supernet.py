"""``nas-harness supernet``: train weight-sharing supernets (see docs/supernets.md).

``nas-harness supernet train nb201|darts --dataset digits --preset cpu [--epochs E] [--seed S]
[--device cpu|cuda] [--name NAME] [--partial-channels K]`` trains a supernet into the data directory
(``$NAS_HARNESS_DATA/supernets/NAME/``), writing a checkpoint after every epoch; running the
same command again after an interruption resumes from the last checkpoint, and a finished
supernet is not trained again. The supernet is then the oracle ``supernet/NAME``.
``--partial-channels K`` (darts only) makes it a PC-DARTS supernet (:mod:`supernets.training`).
``nas-harness supernet list`` shows the supernets there. ``nas-harness supernet rank NAME...
--truth DIR --out DIR`` measures how well supernets rank NB201 cells against a ground truth
(:mod:`supernets.rank`): a markdown report, figures and every number as JSON.
``nas-harness supernet retrain FOLDER [--preset cpu|paper] [--seed S]`` trains the final
architecture of every finished DARTS-space run in results folder FOLDER from scratch: one-shot
runs (the last epoch's derived cell, on the method's data split) and query-based runs on a
DARTS-space supernet oracle (CADAM, random search...: the record with the best supernet
validation accuracy, on the supernet's split) (:mod:`supernets.retrain`, a scaled DARTS
§3.1.2 recipe), writes ``FOLDER/retrained.json`` and prints the table; finished trainings are
not redone.
"""

from __future__ import annotations

import argparse

from oracles.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser("supernet", help="train weight-sharing supernets",
                              description="Train weight-sharing supernets (resumable); a trained supernet "
                                          "answers queries as the oracle supernet/NAME.")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", parser_class=type(p))
    t = verbs.add_parser("train", help="train a supernet (resumable)",
                         description="Train a supernet with uniform single-path sampling (SPOS) or all "
                                     "operations mixed, on NB201's search recipe (SGD 0.025 cosine, "
                                     "momentum 0.9, weight decay 5e-4). A checkpoint is written after every "
                                     "epoch; run the same command again to resume after an interruption.")
    from supernets.config import MODES, PRESETS, SPACES
    t.add_argument("space", choices=SPACES, help="the cell space: nb201 (NAS-Bench-201's cell) or darts "
                                                 "(DARTS's normal and reduction cells)")
    t.add_argument("--dataset", required=True, choices=("digits", "mnist5k", "cifar10"))
    t.add_argument("--cifar-dir", metavar="DIR", help="the extracted cifar-10-batches-py folder")
    t.add_argument("--split-seed", type=int, default=0, metavar="S", help="data split seed (default 0)")
    t.add_argument("--preset", default="cpu", choices=sorted(PRESETS),
                   help="nb201 cpu: C=8, N=1, 50 epochs; gpu: C=16, N=5 (NB201's search skeleton), 100 epochs; "
                        "darts cpu: C=8, 5 cells, 50 epochs; gpu: C=16, 8 cells (DARTS's search network), 50 epochs")
    t.add_argument("--epochs", type=int, metavar="E", help="epochs (and cosine schedule length); "
                                                          "default the preset's")
    t.add_argument("--seed", type=int, default=0, metavar="S", help="initialisation, shuffles and paths")
    t.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    t.add_argument("--name", help="folder under the data directory's supernets/ (default "
                                  "nb201-DATASET-PRESET-eE-sS plus the options that differ from the defaults)")
    t.add_argument("--mode", default="single-path", choices=MODES,
                   help="single-path: one uniform random path per batch (SPOS); all-ops: every operation, "
                        "equally weighted (DARTS's mixed operation)")
    t.add_argument("--bn", metavar="SETTING",
                   help="batch norm in the cells: nb201 (no affine, no running statistics; NB201's search "
                        "setting, the default for nb201), full (both), or affine=0|1,track=0|1 (darts default: "
                        "affine=0,track=1, DARTS's search network)")
    t.add_argument("--C", type=int, metavar="C", help="override the preset's width")
    t.add_argument("--N", type=int, metavar="N", help="override the preset's cells per stage (nb201) or cells "
                                                    "(darts)")
    t.add_argument("--batch-size", type=int, metavar="B", help="default 64")
    t.add_argument("--lr", type=float, help="default 0.025")
    t.add_argument("--max-train", type=int, metavar="N", help="train on the first N training images only")
    t.add_argument("--partial-channels", type=int, metavar="K",
                   help="darts only: PC-DARTS's partial channels, 1/K of each edge's channels through its "
                        "operation, the rest bypassing it (PC-DARTS: 4; default 1, DARTS); C/K must be even")
    t.add_argument("--until", type=int, metavar="U",
                   help="stop after epoch U of the schedule (run again without it to continue); --until 0 "
                        "writes the untrained supernet, which the oracle's mode=live trains itself")
    t.add_argument("--snapshots", metavar="E1,E2,...", default="",
                   help="also keep the weights after these epochs (the oracle's epoch=E option scores them)")
    t.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads for torch (default 1, as the collectors: numbers do not depend on "
                        "the machine's core count)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)
    ls = verbs.add_parser("list", help="the supernets in the data directory",
                          description="List the supernets in the data directory ($NAS_HARNESS_DATA/supernets): "
                                      "epochs trained, skeleton, data, batch norm, mode, snapshots.")
    ls.set_defaults(func=_list)
    _register_rank(verbs)
    _register_retrain(verbs)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _register_retrain(verbs) -> None:
    r = verbs.add_parser("retrain", help="train DARTS-space search results from scratch (resumable)",
                         description="Train the final architecture of every finished DARTS-space run in a "
                                     "results folder from scratch (supernets/retrain.py: DARTS §3.1.2's "
                                     "evaluation recipe, scaled to digits on a CPU by the cpu preset) and measure "
                                     "its validation and test accuracy. One-shot runs (space=darts): the last "
                                     "epoch's derived cell, on the method's data split. Query-based runs on a "
                                     "DARTS-space supernet oracle supernet/NAME (CADAM preset=darts or darts-cpu, "
                                     "random search...): the record with the best supernet validation accuracy "
                                     "(ties: the earliest; never chosen by test accuracy), on the supernet's own "
                                     "data split; the supernet must still be in the data directory, unchanged. "
                                     "Other runs (NB201 space, other oracles) are passed over. Writes "
                                     "FOLDER/retrained.json (the run files are not touched), the folder's "
                                     "reference results, and prints a table. A finished training is not redone: "
                                     "run again after an interruption.")
    r.add_argument("folder", metavar="FOLDER", help="a results folder of nas-harness run")
    r.add_argument("--preset", default="cpu", choices=("cpu", "paper"),
                   help="cpu (default): C=16, 8 cells, 30 epochs, batch 64; paper: C=36, 20 cells, 600 epochs, "
                        "batch 96 (DARTS §3.1.2 without cutout and auxiliary towers); both SGD 0.025 cosine to 0, "
                        "momentum 0.9, weight decay 3e-4, path dropout 0.2")
    r.add_argument("--C", type=int, metavar="C", help="override the preset's initial width")
    r.add_argument("--layers", type=int, metavar="L", help="override the preset's number of cells")
    r.add_argument("--epochs", type=int, metavar="E", help="override the preset's epochs")
    r.add_argument("--batch-size", type=int, metavar="B", help="override the preset's batch")
    r.add_argument("--drop-path", type=float, metavar="P", help="override the path dropout (0.2)")
    r.add_argument("--max-train", type=int, metavar="N", help="train on the first N training images only")
    r.add_argument("--seed", type=int, default=0, metavar="S",
                   help="training seed (default 0); another seed adds a training per architecture")
    r.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    r.add_argument("--cifar-dir", metavar="DIR", help="the CIFAR-10 folder, for runs on cifar10 (default: the run's, "
                                                     "or its supernet oracle's cifar_dir option)")
    r.add_argument("--threads", type=int, default=1, metavar="N", help="torch CPU threads (default 1)")
    r.set_defaults(func=_retrain)


def _retrain(args: argparse.Namespace) -> int:
    import sys

    from supernets.retrain import preset_recipe, retrain_folder, summary_table

    if args.threads < 1:
        raise UserError("--threads must be >= 1")
    recipe = preset_recipe(args.preset, C=args.C, layers=args.layers, epochs=args.epochs,
                           batch_size=args.batch_size, drop_path_prob=args.drop_path, max_train=args.max_train)
    import torch
    torch.set_num_threads(args.threads)
    data = retrain_folder(args.folder, recipe, seed=args.seed, device=args.device, cifar_dir=args.cifar_dir,
                          log=lambda m: print(m, file=sys.stderr))
    print(summary_table(data))
    return 0


def _register_rank(verbs) -> None:
    r = verbs.add_parser("rank", help="how far supernets rank NB201 cells like the ground truth",
                         description="Score every NB201 class's representative (6,466 classes; those the ground "
                                     "truth has) with supernets through the oracle supernet/NAME and compare with "
                                     "the cells trained stand-alone: Kendall tau-b and Spearman rho of validation "
                                     "accuracy and loss, tau within the true top 10 %%, top-k overlaps, the true "
                                     "rank of the supernet's best cell; mean and 95 %% t-interval over supernet "
                                     "seeds, next to the truth's own seed-to-seed ceiling; along training "
                                     "(snapshots) and per batch-norm setting. Writes report.md, rank.json and "
                                     "figures (supernets/rank.py).")
    r.add_argument("supernets", nargs="+", metavar="NAME",
                   help="supernets in the data directory (as 'supernet list' names them, with or without "
                        "'supernet/'); those that differ only in --seed are summarised together")
    r.add_argument("--truth", action="append", required=True, metavar="SOURCE",
                   help="the ground truth: a collection folder (nas-harness collect nb201 --out; read as far as "
                        "it has got), a table folder, or an installed table oracle (nb201-digits); repeat to "
                        "join sources (e.g. a second-seed collection of some of the classes)")
    r.add_argument("--out", required=True, metavar="DIR", help="folder for report.md, rank.json and the figures")
    r.add_argument("--epochs", metavar="E1,E2,...",
                   help="training lengths of the curve (snapshots every supernet of a group kept; the last epoch "
                        "is always in); default every kept snapshot")
    r.add_argument("--cells", type=int, metavar="N",
                   help="score a uniform sample of N classes for the curve over epochs (default all the truth has; "
                        "scoring costs about 60 CPU-ms a class per supernet and epoch)")
    r.add_argument("--final-cells", type=int, metavar="N",
                   help="classes scored at the last epoch, the main table (default all the truth has)")
    r.add_argument("--cells-seed", type=int, default=0, metavar="S", help="sampling seed (default 0)")
    r.add_argument("--reference-seed", metavar="S", help="truth seed the supernets are compared with "
                                                         "(default the first)")
    r.add_argument("--ceiling-seed", metavar="S", help="truth seed whose agreement with the reference is the "
                                                       "ceiling (default the second)")
    r.add_argument("--resamples", type=int, default=200, metavar="B",
                   help="bootstrap resamples over classes for the ceiling's interval (default 200; 0: none)")
    r.add_argument("--oracle-options", default="", metavar="K=V,...",
                   help="further options of every supernet oracle (default none: calib=512, batch=256)")
    r.add_argument("--cache", metavar="DIR",
                   help="score cache, one file per oracle checksum (default $NAS_HARNESS_DATA/supernet-rank-cache)")
    r.add_argument("--threads", type=int, default=1, metavar="N", help="torch CPU threads (default 1)")
    r.set_defaults(func=_rank)


def _rank(args: argparse.Namespace) -> int:
    import shlex
    import sys
    import time

    from oracles.registry import data_dir
    from supernets.rank import load_truth, merge_truths, run_study, write_report

    names = [n[len("supernet/"):] if n.startswith("supernet/") else n for n in args.supernets]
    if len(set(names)) != len(names):
        raise UserError("a supernet is named twice")
    for flag in ("cells", "final_cells"):
        if getattr(args, flag) is not None and getattr(args, flag) < 3:
            raise UserError(f"--{flag.replace('_', '-')} must be at least 3")
    try:
        epochs = [int(e) for e in args.epochs.split(",") if e.strip()] if args.epochs else None
    except ValueError:
        raise UserError(f"--epochs takes epochs separated by commas, got {args.epochs!r}") from None
    if args.threads < 1:
        raise UserError("--threads must be >= 1")
    import torch
    torch.set_num_threads(args.threads)
    options = ",".join(o for o in (args.oracle_options, f"threads={args.threads}" if args.threads != 1 else "") if o)
    truth = merge_truths([load_truth(t) for t in args.truth])
    print(f"ground truth: {len(truth):,} classes ({', '.join(f'seed {s}: {n:,}' for s, n in truth.counts().items())})",
          file=sys.stderr)
    start = time.process_time()
    result = run_study(truth, names, epochs=epochs, cells=args.cells, final_cells=args.final_cells,
                       cells_seed=args.cells_seed, reference_seed=args.reference_seed,
                       ceiling_seed=args.ceiling_seed, resamples=args.resamples, options=options,
                       cache_dir=args.cache or data_dir() / "supernet-rank-cache",
                       log=lambda m: print(m, file=sys.stderr))
    result["timings"]["total_cpu_seconds"] = time.process_time() - start
    command = "nas-harness supernet rank " + " ".join(shlex.quote(a) for a in sys.argv[3:]) \
        if sys.argv[1:3] == ["supernet", "rank"] else ""
    result["command"] = command
    paths = write_report(result, args.out, command=command)
    t = result["truth"]
    print(f"{t['classes_used']:,} classes used ({t['classes_common']:,} with two truth seeds); wrote "
          f"{', '.join(str(p) for p in paths)}")
    for g in result["groups"]:
        f = g["summary"]["final"]
        print(f"  {g['label']}: acc tau-b {f['acc.tau']['mean']:.3f}, loss tau-b {f['loss.tau']['mean']:.3f} "
              f"(mean over {len(g['supernets'])} seeds)")
    return 0


def default_name(config, preset: str) -> str:
    """``nb201-digits-cpu-e50-s0``, plus every setting that differs from the preset."""
    from supernets.config import preset_config
    base = preset_config(preset, space=config.space, dataset=config.dataset, epochs=config.epochs, seed=config.seed)
    name = f"{config.space}-{config.dataset}-{preset}-e{config.epochs}-s{config.seed}"
    short = {"split_seed": "split", "bn_affine": "affine", "bn_track": "track", "batch_size": "b",
             "max_train": "n", "mode": "", "C": "C", "N": "N", "lr": "lr", "partial_channels": "pc"}
    for key, value in config.to_dict().items():
        if value != getattr(base, key):
            value = int(value) if isinstance(value, bool) else value
            name += f"-{short.get(key, key)}{value}"
    return name


def _list(args: argparse.Namespace) -> int:
    import json

    from supernets.checkpoints import CONFIG, list_snapshots, supernets_dir
    root = supernets_dir()
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not folders:
        print(f"no supernets in {root}; train one with 'nas-harness supernet train nb201 --dataset digits'")
        return 0
    print(f"{'oracle':<40} {'epochs':>9}  {'C':>3} {'N':>2}  {'data':<10} {'bn':<16} {'mode':<12} snapshots")
    for folder in folders:
        try:
            meta = json.loads((folder / CONFIG).read_text())
            c = meta["config"]
            bn = f"affine={int(c['bn_affine'])},track={int(c['bn_track'])}"
            mode = c["mode"] + (f",pc{c['partial_channels']}" if c.get("partial_channels", 1) != 1 else "")
            line = (f"{'supernet/' + folder.name:<40} {meta['epoch']:>4}/{c['epochs']:<4}  {c['C']:>3} {c['N']:>2}  "
                    f"{c['dataset']:<10} {bn:<16} {mode:<12} "
                    f"{','.join(map(str, list_snapshots(folder))) or '-'}")
        except (OSError, ValueError, KeyError, TypeError):
            line = f"{'supernet/' + folder.name:<40} (no readable {CONFIG}: not a supernet, or its first epoch "
            line += "has not finished)"
        print(line)
    return 0


def _train(args: argparse.Namespace) -> int:
    import sys

    import torch

    from supernets.checkpoints import resume, save_checkpoint, save_snapshot, supernet_dir
    from supernets.data import load
    from supernets.config import BNOptions, preset_config
    from supernets.training import SupernetTrainer

    if args.partial_channels is not None and args.space != "darts":
        raise UserError(f"--partial-channels is PC-DARTS's, for the darts space only (not {args.space})")
    try:
        bn = BNOptions.parse(args.bn) if args.bn is not None else None
        config = preset_config(args.preset, space=args.space, dataset=args.dataset, split_seed=args.split_seed,
                               epochs=args.epochs, seed=args.seed, mode=args.mode,
                               bn_affine=None if bn is None else bn.affine,
                               bn_track=None if bn is None else bn.track_running_stats,
                               C=args.C, N=args.N, batch_size=args.batch_size, lr=args.lr,
                               max_train=args.max_train, partial_channels=args.partial_channels)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.threads < 1:
        raise UserError("--threads must be >= 1")
    torch.set_num_threads(args.threads)
    try:
        snapshots = {int(e) for e in args.snapshots.split(",") if e.strip()}
    except ValueError:
        raise UserError(f"--snapshots takes epochs separated by commas, got {args.snapshots!r}") from None
    if any(not 1 <= e <= config.epochs for e in snapshots):
        raise UserError(f"--snapshots: epochs must lie in 1..{config.epochs}")
    name = args.name or default_name(config, args.preset)
    folder = supernet_dir(name)
    data = load(config.dataset, config.split_seed, args.cifar_dir)
    try:
        trainer = SupernetTrainer(config, data, device=args.device)
    except (ValueError, RuntimeError) as exc:    # a skeleton that cannot be built (DARTS: odd C), a bad device
        raise UserError(f"cannot build the {config.space} supernet: {str(exc).splitlines()[0]}") from None
    resumed = resume(trainer, folder)
    until = config.epochs if args.until is None else args.until
    if not 0 <= until <= config.epochs:
        raise UserError(f"--until must lie in 0..{config.epochs} (the epochs of the schedule)")
    if trainer.done:
        print(f"supernet {name} is already trained ({trainer.epoch} epochs) in {folder}; "
              f"query it as the oracle supernet/{name}")
        return 0
    if trainer.epoch >= until:
        if not resumed:
            save_checkpoint(trainer.state_dict(), folder)
        print(f"supernet {name} is at epoch {trainer.epoch} of {config.epochs} in {folder} (--until {until}); "
              f"run again without --until to continue, or query it as supernet/{name}:mode=live")
        return 0
    if resumed:
        print(f"resuming supernet {name} at epoch {trainer.epoch} of {config.epochs}", file=sys.stderr)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm
        bar = tqdm(total=(until - trainer.epoch) * trainer.steps_per_epoch, unit="step",
                   desc=f"supernet {name}", file=sys.stderr, dynamic_ncols=True)

    def on_epoch(stats):
        state = trainer.state_dict()
        if stats["epoch"] in snapshots:   # before the checkpoint: a kill in between redoes the epoch
            save_snapshot(state, folder)
        save_checkpoint(state, folder)
        if bar is not None:
            bar.set_postfix(epoch=stats["epoch"], loss=f"{stats['train_loss']:.3f}",
                            acc=f"{stats['train_acc']:.3f}")

    try:
        while trainer.epoch < until:
            on_epoch(trainer.train_epoch(on_step=bar.update if bar is not None else None))
    finally:
        if bar is not None:
            bar.close()
    last = trainer.history[-1]
    what = "trained" if trainer.done else f"stopped at epoch {trainer.epoch} of {config.epochs} (--until)"
    print(f"supernet {name} {what}: {trainer.epoch} epochs, last epoch training loss {last['train_loss']:.4f}, "
          f"accuracy {last['train_acc']:.4f}; saved in {folder}; query it as the oracle supernet/{name}")
    return 0
