"""Checkpoints that are written atomically, refused when not finite, and checked when loaded.

Lightning's ``TorchCheckpointIO`` (2.6) writes through an fsspec transaction: the temporary file
lies in the system's temporary directory, is moved onto the checkpoint without an fsync, and a
move between file systems is a copy that a kill can interrupt half-way. :class:`AtomicCheckpointIO`
writes next to the checkpoint instead (:func:`omar_lightning.atomic.atomic_write`), so a kill at
any moment leaves the previous checkpoint or the new one, both complete. The ``omar`` command uses
it unless the trainer is given another ``CheckpointIO`` plugin.
"""

from __future__ import annotations

import inspect
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.utilities.cloud_io import _load as pl_load
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.plugins.io import TorchCheckpointIO

from omar_lightning.atomic import atomic_write
from omar_lightning.errors import CheckpointError, DivergenceError

__all__ = ["AtomicCheckpointIO", "algorithm_class", "check_checkpoint", "first_nonfinite", "load_module", "not_a_checkpoint"]

#: Settings that decide the networks' shapes: a checkpoint only fits a run with the same ones.
SHAPE_SETTINGS = "model.hidden_dim, model.input_norm, data.task and data.env_kwargs"


def _is_local(path: Any) -> bool:
    return isinstance(get_filesystem(path), LocalFileSystem)


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def first_nonfinite(state: dict[str, Any]) -> Optional[str]:
    """Key of the first floating-point tensor of ``state`` holding NaN or inf, else None."""
    keys = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and v.numel()]
    if not keys:
        return None
    peaks = torch.stack(torch._foreach_norm([state[k].detach().float() for k in keys], ord=math.inf))
    bad = ~torch.isfinite(peaks)
    if not bad.any():
        return None
    return keys[int(bad.nonzero()[0])]


def not_a_checkpoint(path: Any) -> Optional[str]:
    """Why the zip archive at ``path`` is not a PyTorch checkpoint (``"is a dataset file ..."``),
    judged from its member names; None when it may be one (or is no zip archive at all)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    if "metadata.npy" in names and any(n.endswith("/obs.npy") for n in names):
        return "is a dataset file (.npz), not a checkpoint"
    if names and all(n.endswith(".npy") for n in names):
        return "is a NumPy .npz archive, not a checkpoint"
    if not any(n.endswith("data.pkl") for n in names):
        return "is a zip archive, not a PyTorch checkpoint"
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic and whose loads fail with one clear line.

    Saving: refuses a checkpoint whose weights are not finite (the previous checkpoint is kept),
    then writes a temporary file in the checkpoint's directory, fsyncs it and renames it over the
    checkpoint. Loading: a missing, truncated or foreign file raises :class:`CheckpointError`
    naming it. Remote paths (``s3://`` ...) are left to ``TorchCheckpointIO``.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        if storage_options is not None or not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        key = first_nonfinite(checkpoint.get("state_dict", {}))
        if key is not None:
            updates = checkpoint.get("omar", {}).get("updates", "?")
            raise DivergenceError(f"update {updates}: '{key}' is not finite; refused to write {path}, the previous checkpoint is kept")
        atomic_write(path, lambda f: torch.save(checkpoint, f))

    def load_checkpoint(
        self, path: Any, map_location: Optional[Callable] = lambda storage, loc: storage, weights_only: Optional[bool] = None
    ) -> dict[str, Any]:
        if not _is_local(path):
            return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)
        p = Path(path)
        if not p.is_file():
            raise CheckpointError(f"checkpoint file not found: {path} (ckpt_path)" + (": it is a directory" if p.is_dir() else ""))
        reason = not_a_checkpoint(p)
        if reason:
            raise CheckpointError(f"{path} {reason} (ckpt_path): give a checkpoint written by omar fit")
        try:
            checkpoint = pl_load(path, map_location=map_location, weights_only=weights_only)
        except Exception as e:
            if "Unsupported global" in str(e):
                raise CheckpointError(f"{path}: holds objects that loading with weights_only refuses; give --weights_only false only if you trust the file") from None
            raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {_reason(e)}") from None
        if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
            raise CheckpointError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
        return checkpoint


def check_checkpoint(module: torch.nn.Module, checkpoint: dict[str, Any], path: Any = None) -> None:
    """Raise :class:`CheckpointError` unless ``checkpoint['state_dict']`` fits ``module`` and is finite.

    Called before Lightning loads the weights, so a mismatch gives one line naming the tensor and
    the settings that decide its shape instead of torch's list of size mismatches.
    """
    if path is None:
        trainer = getattr(module, "_trainer", None)
        path = getattr(trainer, "ckpt_path", None)
    where = f"checkpoint {path}" if path else "checkpoint"
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: holds no 'state_dict'")
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{where} does not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]} "
            f"(was it written by another model class or version?)"
        )
    for k, v in own.items():
        theirs = state[k]
        if torch.is_tensor(theirs) and tuple(theirs.shape) != tuple(v.shape):
            raise CheckpointError(
                f"{where} does not fit this model: '{k}' has shape {list(theirs.shape)} there but {list(v.shape)} "
                f"with these settings ({SHAPE_SETTINGS} must be those of the run that wrote it)"
            )
    key = first_nonfinite(state)
    if key is not None:
        raise CheckpointError(f"{where}: '{key}' is not finite (written after training diverged?)")


def algorithm_class(class_path: Any, path: Any = "checkpoint") -> type:
    """The algorithm class named by a checkpoint's ``_class_path`` (OMAR when it names none)."""
    import omar_lightning
    from omar_lightning.base import OfflineAlgorithm

    if not class_path:
        return omar_lightning.OMAR
    cls = getattr(omar_lightning, str(class_path).rsplit(".", 1)[-1], None)
    if not (isinstance(cls, type) and issubclass(cls, OfflineAlgorithm)):
        raise CheckpointError(f"{path}: trained with {class_path!r}, which is not an omar_lightning algorithm")
    return cls


def _settings_of(cls: type) -> set[str]:
    """Names of the settings ``cls`` takes: the named ``__init__`` arguments along its lineage."""
    from omar_lightning.base import OfflineAlgorithm

    names: set[str] = set()
    for c in cls.__mro__:
        if isinstance(c, type) and issubclass(c, OfflineAlgorithm) and "__init__" in vars(c):
            params = inspect.signature(c.__init__).parameters.values()
            names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}
    return names


def load_module(path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """The algorithm module of a checkpoint written by ``omar fit`` (CPU, eval mode) and the
    checkpoint itself (loaded with ``weights_only``); :class:`CheckpointError` naming the file
    when it cannot be used.

    The module is built with the class and settings the checkpoint names; settings that its
    class no longer takes (older checkpoints of the baselines carried OMAR's unused ones) are
    left out. The weights then load through the module's ``on_load_checkpoint`` checks."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (--ckpt_path)")
    if not path.is_file():
        raise CheckpointError(f"not a checkpoint file: {path} (--ckpt_path)")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"cannot read checkpoint {path}: permission denied")
    if path.stat().st_size == 0:
        raise CheckpointError(f"cannot read checkpoint {path}: the file is empty")
    if not zipfile.is_zipfile(path):  # torch.save and Lightning write zip archives
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint file (truncated, or another kind of file?)")
    reason = not_a_checkpoint(path)
    if reason:
        raise CheckpointError(f"{path} {reason} (--ckpt_path): give a checkpoint written by omar fit, such as runs/quickstart/checkpoints/last.ckpt")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling, archive and permission errors alike
        text = re.sub(r"\[enforce fail at [^\]]*\]\s*\.?\s*", "", str(error)).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {reason}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or not isinstance(checkpoint.get("hyper_parameters"), dict):
        raise CheckpointError(f"{path} is not a checkpoint of omar fit (no state_dict or hyper_parameters)")
    hparams = checkpoint["hyper_parameters"]
    cls = algorithm_class(hparams.get("_class_path"), path)
    accepted = _settings_of(cls)
    try:
        model = cls(**{k: v for k, v in hparams.items() if k in accepted})
        model.on_load_checkpoint(checkpoint)  # upgrades older layouts, then checks shapes and finiteness
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: the saved networks do not load into {cls.__name__}: {str(error).splitlines()[0]}") from None
    return model.eval(), checkpoint
