"""The ``nas-harness`` command line.

Each sub-command lives in its own module under :mod:`harness.commands` with a
``register(subparsers)`` function; this file only assembles them and turns user errors
into one line on stderr with a non-zero exit (never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from oracles.errors import UserError

#: sub-command modules, in the order ``--help`` lists them
COMMANDS = (
    "harness.commands.run",
    "harness.commands.report",
    "harness.commands.plot",
    "harness.commands.compare",
    "harness.commands.export",
    "harness.commands.oracles",
    "harness.commands.algorithms",
    "harness.commands.check",
    "harness.commands.collect",
    "harness.commands.supernet",
)

#: what ``nas-harness --help`` says first (plain text: argparse prints it as written)
DESCRIPTION = "A benchmark harness for neural architecture search: oracles, algorithms, runs, reports."

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage dump
        self.exit(EXIT_USER_ERROR, f"nas-harness: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas-harness", description=DESCRIPTION)
    from harness import __version__
    parser.add_argument("--version", action="version", version=f"nas-harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from harness import interrupts
    interrupts.install()
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also during start-up (imports, argument parsing)
        print("nas-harness: interrupted; finished runs are saved, run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            if args.command is None:
                # bare `nas-harness`: the main job
                args = parser.parse_args(["run", *(argv or [])])
            else:
                parser.parse_args([args.command, "--help"])
    except SystemExit as exc:
        # argparse exits on --help/--version and on bad flags (after printing one line);
        # returning the code keeps main() callable from Python without SystemExit
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"nas-harness: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("nas-harness: interrupted; finished runs are saved, run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


def entry() -> None:
    """The ``nas-harness`` program: :func:`main`, then exit with its status.

    Once main() has returned there is nothing left to interrupt, so a late Ctrl-C is
    ignored: otherwise it would land in interpreter shutdown, where Python has already
    restored the default handler, and kill the process silently with a signal status
    (found by ``python -m harness.crashproof``).
    """
    code = main()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code == EXIT_INTERRUPTED:
        # CPython (3.11) remembers a KeyboardInterrupt that escaped any exec() -- dataclasses
        # and other libraries exec() code while being imported -- even when it was caught
        # afterwards, and then ends the process with SIGINT at exit (status -2, found by
        # crashproof). Everything is written and the workers are stopped: exit now.
        sys.stdout.flush()
        sys.stderr.flush()
        try:  # what multiprocessing does at a normal exit: release the pool's semaphores
            import multiprocessing.util
            multiprocessing.util._exit_function()
        except Exception:  # a private hook; without it the OS still reclaims everything
            pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
