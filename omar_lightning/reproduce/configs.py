"""A cell's configuration: its config files composed as ``omar fit`` composes them, and its digest.

``compose`` merges a chain of config files with the ``omar fit`` parser itself, as
``omar fit --config F1 --config F2 ...`` does (later files override earlier ones setting by
setting, a list such as the callbacks element by element, a mapping-valued setting such as
``data.env_kwargs`` whole), and keeps what the files set: the parser's defaults stay out, so
that the result is the files' content and not the code's. ``resolved`` adds a cell's overrides
and seed; ``digest`` hashes that, so a comment, the layout, or a setting moved between a base and
a cell leave it as it is, and any change of a value a cell runs with changes it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from argparse import ArgumentError
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omar_lightning.reproduce.studies import EVERY_CHECKPOINT, Cell

_LOCK = threading.Lock()  # cells are checked from worker threads; one parse at a time


@functools.lru_cache(maxsize=1)
def _parser():
    """The argument parser of ``omar fit`` (OMARCLI's), built without parsing or instantiating anything."""
    from jsonargparse import Namespace

    from omar_lightning.cli import OMARCLI
    from omar_lightning.datamodules import OfflineDataModule
    from omar_lightning.base import OfflineAlgorithm

    class _ParserOnly(OMARCLI):
        def parse_arguments(self, parser, args) -> None:
            self.config = Namespace(seed_everything=False)  # nothing parsed, no seed set

        def instantiate_classes(self) -> None:
            pass

    cli = _ParserOnly(OfflineAlgorithm, OfflineDataModule, subclass_mode_model=True, run=False, auto_configure_optimizers=False,
                      load_from_checkpoint_support=False, parser_kwargs={"exit_on_error": False})
    return cli.parser


@functools.lru_cache(maxsize=None)
def _compose(files: tuple[tuple[str, str], ...]) -> str:
    from omar_lightning.cli import one_line

    args = [a for path, _ in files for a in ("--config", path)]
    try:
        with _LOCK:
            parser = _parser()
            namespace = parser.parse_args(args, defaults=False)
            text = parser.dump(namespace, format="json", skip_validation=True)
    except (ArgumentError, TypeError, ValueError) as e:
        raise ValueError(f"{' + '.join(path for path, _ in files)}: {one_line(e)}") from None
    config = json.loads(text)
    config.pop("config", None)  # the files' names, not a setting
    return json.dumps(config)


def compose(root: Path, files: Sequence[str]) -> dict[str, Any]:
    """What the config ``files`` (relative to ``root``, or absolute) set, merged as
    ``omar fit --config F1 --config F2 ...`` merges them, as plain data. A file that cannot be
    read or a setting ``omar fit`` refuses raises ValueError naming the files."""
    keys = []
    for f in files:
        path = Path(root) / f
        try:
            content = path.read_bytes()
        except OSError as e:
            raise ValueError(f"{path}: cannot read the config: {e.strerror or e}") from None
        keys.append((str(path), hashlib.sha256(content).hexdigest()))  # parsed once per content
    return json.loads(_compose(tuple(keys)))  # a fresh copy: callers may change it


def set_dotted(config: dict[str, Any], dotted: str, value: Any) -> None:
    """``config[a][b][c] = value`` for ``dotted`` ``a.b.c``, making the missing levels."""
    node = config
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def resolved(cell: Cell, root: Path) -> dict[str, Any]:
    """The configuration a cell runs with, less its run directory: its config files composed
    (``Cell.configs``), then its overrides and its seed (``seed_everything`` and ``data.seed``);
    for an analysis that reads every periodic checkpoint (``EVERY_CHECKPOINT``), the checkpoint
    callback keeps them all (``save_top_k: -1``; training is the same)."""
    config = compose(root, cell.configs)
    for key, value in cell.overrides.items():
        set_dotted(config, key, value)
    if cell.analysis in EVERY_CHECKPOINT:
        for cb in (config.get("trainer") or {}).get("callbacks") or []:
            if cb.get("class_path", "").endswith("UpdateCheckpoint"):
                cb.setdefault("init_args", {})["save_top_k"] = -1
    config["seed_everything"] = cell.seed
    set_dotted(config, "data.seed", cell.seed)
    return config


def digest(cell: Cell, root: Path) -> str:
    """What makes a cell's result: its resolved configuration (``resolved``) and its extra analysis."""
    text = json.dumps({"config": resolved(cell, root), "post": cell.analysis}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
