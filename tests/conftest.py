import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from omar_lightning.data import OfflineDataset, save_dataset

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:  # `make test` runs one worker per core: torch gets its share of the cores
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


def synthetic_dataset(n: int = 256, obs_dims=(18, 18, 18), act_dims=(2, 2, 2), seed: int = 0, task="cooperative_navigation",
                      env_kwargs=None) -> OfflineDataset:
    rng = np.random.default_rng(seed)
    names = [f"agent_{i}" for i in range(len(obs_dims))]
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return OfflineDataset(
        obs=[f32(n, d) for d in obs_dims],
        actions=[rng.uniform(-1, 1, (n, d)).astype(np.float32) for d in act_dims],
        rewards=[f32(n) for _ in obs_dims],
        next_obs=[f32(n, d) for d in obs_dims],
        dones=[(rng.random(n) < 0.05).astype(np.float32) for _ in obs_dims],
        meta={"task": task, "tier": "random", "agent_names": names, "s_random": -10.0, "s_expert": 30.0, "env_kwargs": dict(env_kwargs or {})},
    )


@pytest.fixture
def dataset_file(tmp_path):
    return save_dataset(tmp_path / "coop.npz", synthetic_dataset())


TINY = Path(__file__).resolve().parent / "configs" / "tiny.yaml"


def tiny_config(path, checkpoint_dir=None, every_n_checkpoint=2, every_n_eval=3, checkpoint_args=None, extra_callbacks=(), **model):
    """tests/configs/tiny.yaml written to ``path`` with: a fixed checkpoint directory (so
    ``--ckpt_path last`` finds it), other periods, UpdateCheckpoint init_args updated by
    ``checkpoint_args``, ``extra_callbacks`` (class_path, init_args) appended, and model settings."""
    config = yaml.safe_load(TINY.read_text())
    for cb in config["trainer"]["callbacks"]:
        if cb["class_path"].endswith("UpdateCheckpoint"):
            cb["init_args"]["every_n_updates"] = every_n_checkpoint
            if checkpoint_dir is not None:
                cb["init_args"]["dirpath"] = str(checkpoint_dir)
            cb["init_args"].update(checkpoint_args or {})
        if cb["class_path"].endswith("EnvEvaluation"):
            cb["init_args"]["every_n_updates"] = every_n_eval
    for class_path, init_args in extra_callbacks:
        config["trainer"]["callbacks"].append({"class_path": class_path, "init_args": dict(init_args)})
    config["model"]["init_args"].update(model)
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
    return Path(path)


def run_datasets(argv, capsys):
    """``omar datasets ARGV``: (exit status, stdout, stderr)."""
    from omar_lightning.cli import main

    code = 0
    try:
        main(["datasets", *argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def config_args(cell) -> list[str]:
    """``--config`` arguments of a committed cell config: its bases, then the cell (``config_chain``)."""
    from omar_lightning.reproduce.studies import config_chain

    return [arg for path in config_chain(str(cell)) for arg in ("--config", path)]
