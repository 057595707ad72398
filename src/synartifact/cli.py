"""The ``synartifact`` command: one subcommand per stage, each a thin wrapper over its module.

Bad input (``ValueError``, ``FileNotFoundError``, ``FileExistsError``) prints its message without a
traceback and exits with 2; other failures exit with 1. ``--verbose`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

__all__ = ["main", "COMMANDS"]

# subcommand -> (module, one-line help). Each module defines ``add_cli(subparsers)`` which adds its parser
# and sets ``func``; modules whose arguments come from TrlParser define ``cli_main(argv)`` instead.
COMMANDS: dict[str, tuple[str, str]] = {
    "dataset": ("synartifact.data.cli", "build, synthesize, inspect and push SynArtifact-style Hub datasets"),
    "tiny": (
        "synartifact.tiny.cli",
        "write tiny offline models built from configs (a VLM, a Stable Diffusion pipeline)",
    ),
    "sft": ("synartifact.sft", "fine-tune a VLM artifact classifier with TRL SFTTrainer (args: --config YAML ...)"),
    "evaluate": ("synartifact.classifier.evaluation", "evaluate a classifier against its baseline on a dataset split"),
    "ddpo": ("synartifact.ddpo", "fine-tune the generator with TRL DDPOTrainer on the classifier's reward"),
    "evaluate-generator": ("synartifact.generator.evaluation", "compare a base and a refined generator by reward"),
    "reward-check": (
        "synartifact.reward_check",
        "how often the reward prefers a clean image to the same one with an artifact",
    ),
    "repair": (
        "synartifact.repair.cli",
        "inpaint the artifacts the classifier finds, keep the image if the reward rises",
    ),
    "demo": ("synartifact.demo", "run the whole pipeline offline on tiny models and write a report"),
}
# Commands whose arguments are parsed by TRL's TrlParser (YAML via --config, any config field as a flag).
TRL_COMMANDS = ("sft", "ddpo")

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


def _run(func, argv_for_error: list[str], verbose: bool) -> int:
    try:
        result = func()
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if verbose:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - the CLI's last line of defence
        if verbose:
            traceback.print_exc()
        else:
            print(f"error: {type(err).__name__}: {err}\n(run again with --verbose for the traceback)", file=sys.stderr)
        return 1
    return int(result or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``synartifact`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in argv
    if verbose:
        argv.remove("--verbose")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    commands = COMMANDS

    if argv and argv[0] in TRL_COMMANDS and argv[0] in commands:
        module = importlib.import_module(commands[argv[0]][0])
        return _run(lambda: module.cli_main(argv[1:]), argv, verbose)

    parser = argparse.ArgumentParser(
        prog="synartifact",
        description="Find and fix artifacts in AI-generated images (SynArtifact, arXiv 2402.18068). "
        "Add --verbose anywhere for tracebacks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in commands.items():
        if name in TRL_COMMANDS:
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        if argv and argv[0] != name:
            sub.add_parser(name, help=help_text)
            continue
        importlib.import_module(module_name).add_cli(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if not hasattr(args, "func"):
        parser.parse_args([args.command, "--help"])
    return _run(lambda: args.func(args), argv, verbose)


if __name__ == "__main__":
    sys.exit(main())
