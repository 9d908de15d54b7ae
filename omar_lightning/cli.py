"""The ``omar`` command: dispatches to its subcommands and reports bad input in one line.

``omar fit|validate|test`` run LightningCLI (:mod:`omar_lightning.lightning_cli`); the other
commands are plain argparse programs. Each is imported only when it runs, so ``omar --help``
and ``omar datasets`` start without loading PyTorch and Lightning.
"""

from __future__ import annotations

import importlib
import re
import sys
from argparse import ArgumentError
from typing import Any

from omar_lightning.errors import DivergenceError

#: Every command with one line each (``omar --help``); the LightningCLI ones first.
COMMANDS = {
    "fit": "train a model from a config: omar fit --config configs/quickstart.yaml (--model.*, --data.*, --trainer.*, --ckpt_path)",
    "validate": "evaluate the policies of a checkpoint in the environment, as at the end of a fit (--ckpt_path)",
    "test": "the same, logged as test/",
    "evaluate": "roll out a checkpoint's policies: return and normalized score +- std, a JSON summary, GIF/MP4 renders",
    "collect": "train MATD3 behaviour policies (collect train) and write dataset tiers (collect dataset)",
    "datasets": "list, describe, verify, compare with the official tiers and import dataset files (official OMAR files, OG-MARL Vaults, your arrays)",
    "reproduce": "run the cells of one of the paper's tables or figures (omar reproduce STUDY --list)",
    "report": "rebuild docs/results.md and its figures from results/",
}
LIGHTNING_COMMANDS = ("fit", "validate", "test")


def help_text() -> str:
    from omar_lightning import __version__

    width = max(map(len, COMMANDS))
    lines = [
        f"usage: omar COMMAND [options]     (omar-lightning {__version__})",
        "",
        "Offline multi-agent RL with actor rectification (OMAR) and its baselines on PyTorch Lightning.",
        "",
        "commands:",
        *(f"  {name:<{width}}  {line}" for name, line in COMMANDS.items()),
        "",
        "omar COMMAND --help shows a command's options.",
    ]
    return "\n".join(lines)


def __getattr__(name: str) -> Any:
    # ``from omar_lightning.cli import OMARCLI`` (and OfflineAlgorithm, the algorithms' base class
    # it takes, and OfflineDataModule) without importing Lightning for every other command.
    if name in ("OMARCLI", "OfflineAlgorithm", "OfflineDataModule", "quiet_lightning"):
        return getattr(importlib.import_module("omar_lightning.lightning_cli"), name)
    raise AttributeError(f"module 'omar_lightning.cli' has no attribute {name!r}")


# Lines of jsonargparse's error reports that only describe its own type machinery.
_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value",
    "Expected a <class 'NoneType'>",
    "Problem with given class_path",
    "Not a valid subclass of",
    "Subclass types expect one of",
    "a class path (str)",
    "a dict with",
    "a dict without",
    "Unable to instantiate",
)


def _tidy(text: str) -> str:
    text = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", text)
    text = re.sub(r"Expected a typing\.Literal\[(.*)\]", r"Expected one of [\1]", text)
    text = re.sub(r"\. Got value: (.*)$", r", got \1", text)
    return text


def one_line(error: BaseException) -> str:
    """The error itself in one line: the setting's full key and what is wrong with it.

    jsonargparse reports a bad value as a tree (``Parser key "model":`` ... ``Parser key "tau":``
    ... the union alternatives it tried); this keeps the keys and the first line that says what
    is wrong, with the given value when the line does not show it.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    keys: list[str] = []
    detail = ""
    for line in lines:
        line = re.sub(r"^- ", "", line)
        m = re.match(r'^Parser key "([^"]+)":\s*(.*)$', line)
        if m:
            keys.append(m[1])
            if m[2]:
                detail = m[2]
                break
            continue
        if not line.startswith(_NOISE):
            detail = line
            break
    if not detail:
        return lines[0] if lines else type(error).__name__
    given = next((line for line in lines if line.startswith("Given value:")), None)
    if given and "Got value" not in detail and detail.startswith("Expected"):
        value = given[len("Given value:") :].strip()
        nested = re.match(r"^NestedArg\(key='[^']*', val=(.*)\)$", value)
        detail += f", got {nested[1] if nested else value}"
    detail = _tidy(detail)
    key = ".".join(keys)
    if not key or detail.startswith(key):
        return detail
    return f"{key}: {detail[0].lower() + detail[1:] if detail[:1].isupper() and not detail[1:2].isupper() else detail}"


def _fail(message: str, status: int) -> None:
    print(f"omar: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``omar`` console script.

    ``omar fit|validate|test ...`` run LightningCLI (:mod:`omar_lightning.lightning_cli`);
    ``omar evaluate ...`` evaluates a checkpoint (:mod:`omar_lightning.evaluate_cli`); ``omar
    collect train|dataset`` trains behaviour policies and writes dataset tiers
    (:mod:`omar_lightning.collect_cli`); ``omar datasets list|info|verify|compare|import``
    inspects, compares and imports dataset files (:mod:`omar_lightning.datasets_cli`); ``omar
    reproduce STUDY`` and ``omar report`` rerun the paper's studies and rebuild docs/results.md
    (:mod:`omar_lightning.reproduce`). ``omar``, ``omar --help`` list the commands. Bad settings,
    dataset files and checkpoints exit with one line naming the setting or file (status 2); a
    diverged run exits with one line naming the update and the loss (status 1), as does a failure
    to read or write a file (a full disk, a permission).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(help_text(), file=sys.stdout if args else sys.stderr)
        raise SystemExit(0 if args else 2)
    if args[0] == "--version":
        from omar_lightning import __version__

        print(f"omar-lightning {__version__}")
        return
    command = args[0]
    if command == "evaluate":
        from omar_lightning.evaluate_cli import main as evaluate_main

        evaluate_main(args[1:])
        return
    if command == "collect":
        from omar_lightning.collect_cli import main as collect_main

        collect_main(args[1:])
        return
    if command in ("reproduce", "report"):
        from omar_lightning.reproduce.cli import report_main, reproduce_main

        (reproduce_main if command == "reproduce" else report_main)(args[1:])
        return
    if command == "datasets":
        from omar_lightning.datasets_cli import main as datasets_main

        datasets_main(args[1:])
        return
    if command not in LIGHTNING_COMMANDS and not command.startswith("-"):
        _fail(f"unknown command {command!r}; the commands are {', '.join(COMMANDS)} (omar --help)", 2)
    try:
        from omar_lightning.lightning_cli import run

        run(argv)
    except DivergenceError as error:
        _fail(one_line(error), 1)
    except (ArgumentError, ValueError, FileNotFoundError) as error:
        _fail(one_line(error), 2)
    except OSError as error:
        _fail(one_line(error), 1)
    except Exception as error:
        from lightning_fabric.utilities.exceptions import MisconfigurationException

        if isinstance(error, MisconfigurationException):
            _fail(f"trainer: {one_line(error)}", 2)
        raise


if __name__ == "__main__":
    main()
