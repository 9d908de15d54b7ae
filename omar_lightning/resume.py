"""Which run a checkpoint belongs to, and the check that ``omar fit --ckpt_path`` resumes only that run.

A checkpoint of ``omar fit`` holds, under :data:`RECORD_KEY` (written by
:class:`omar_lightning.callbacks.RunRecord`), the algorithm, task, environment variant
(``env_kwargs``) and dataset (path and SHA-256 checksum) of its run and where the run logged.
Resuming under another algorithm, task, variant or dataset would continue the optimizer and
the curve of one experiment inside another (the normalized score would even switch reference
returns mid-run), so it is refused unless ``--allow_mismatched_resume true`` says it is meant.
Checkpoints written before the record existed are checked on what they hold: the model class
of LightningCLI's hyperparameters and the data module's evaluation record.
"""

from __future__ import annotations

from typing import Any

from omar_lightning.errors import CheckpointError

RECORD_KEY = "omar_run"


def run_identity(model: Any, datamodule: Any) -> dict[str, Any]:
    """``algorithm`` (class name), and with a data module ``task``, ``env_kwargs``, ``dataset``,
    ``checksum``, ``s_random`` and ``s_expert``."""
    out: dict[str, Any] = {"algorithm": type(model).__name__}
    if datamodule is not None and hasattr(datamodule, "task"):
        meta = datamodule.meta
        out.update(
            task=datamodule.task,
            env_kwargs=dict(datamodule.env_kwargs),
            dataset=str(datamodule.path),
            checksum=meta.get("checksum"),
            s_random=float(meta["s_random"]),
            s_expert=float(meta["s_expert"]),
        )
    return out


def saved_identity(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """What :func:`run_identity` gave when ``checkpoint`` was written, as far as it can be told."""
    record = checkpoint.get(RECORD_KEY)
    if isinstance(record, dict):
        return dict(record)
    out: dict[str, Any] = {}
    class_path = (checkpoint.get("hyper_parameters") or {}).get("_class_path")
    if class_path:
        out["algorithm"] = str(class_path).rsplit(".", 1)[-1]
    for value in checkpoint.values():
        if isinstance(value, dict) and isinstance(value.get("evaluation"), dict):  # OfflineDataModule's state
            ev = value["evaluation"]
            out.update({k: ev[k] for k in ("task", "env_kwargs", "dataset", "checksum", "s_random", "s_expert") if k in ev})
    return out


def _short(checksum: Any) -> str:
    return str(checksum)[:12]


def resume_mismatches(checkpoint: dict[str, Any], model: Any, datamodule: Any) -> list[str]:
    """How the run of ``checkpoint`` differs from this one (empty when it is this run)."""
    theirs, ours = saved_identity(checkpoint), run_identity(model, datamodule)
    out = []
    if theirs.get("algorithm") and theirs["algorithm"] != ours["algorithm"]:
        out.append(f"algorithm {theirs['algorithm']}, not {ours['algorithm']} (model.class_path)")
    if "task" in ours:
        if theirs.get("task") and theirs["task"] != ours["task"]:
            out.append(f"task {theirs['task']!r}, not {ours['task']!r} (data.task)")
        elif "env_kwargs" in theirs and dict(theirs["env_kwargs"] or {}) != ours["env_kwargs"]:
            out.append(f"environment variant {dict(theirs['env_kwargs'] or {})}, not {ours['env_kwargs']} (data.env_kwargs)")
        if theirs.get("checksum") and ours.get("checksum"):
            if theirs["checksum"] != ours["checksum"]:
                out.append(f"dataset {theirs.get('dataset')} (checksum {_short(theirs['checksum'])}), "
                           f"not {ours['dataset']} (checksum {_short(ours['checksum'])}, data.path)")
        elif "s_random" in theirs and (float(theirs["s_random"]), float(theirs["s_expert"])) != (ours["s_random"], ours["s_expert"]):
            out.append(f"dataset {theirs.get('dataset')} (S_random {float(theirs['s_random']):.2f}, S_expert "
                       f"{float(theirs['s_expert']):.2f}), not {ours['dataset']} (data.path)")
    return out


def check_resume(path: Any, checkpoint: dict[str, Any], model: Any, datamodule: Any, allow: bool = False) -> list[str]:
    """Raise :class:`CheckpointError` (one line) when ``checkpoint`` is of another run, unless ``allow``;
    return the differences (empty for the same run)."""
    problems = resume_mismatches(checkpoint, model, datamodule)
    if problems and not allow:
        raise CheckpointError(
            f"--ckpt_path {path} is a checkpoint of another run: {'; '.join(problems)}. Resume a run with its own "
            "settings, or give --allow_mismatched_resume true to continue from this checkpoint on purpose"
        )
    return problems
