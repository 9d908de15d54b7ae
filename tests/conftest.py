import numpy as np
import pytest

from omar_lightning.data import OfflineDataset, save_dataset


def synthetic_dataset(n: int = 256, obs_dims=(18, 18, 18), act_dims=(2, 2, 2), seed: int = 0, task="cooperative_navigation") -> OfflineDataset:
    rng = np.random.default_rng(seed)
    names = [f"agent_{i}" for i in range(len(obs_dims))]
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return OfflineDataset(
        obs=[f32(n, d) for d in obs_dims],
        actions=[rng.uniform(-1, 1, (n, d)).astype(np.float32) for d in act_dims],
        rewards=[f32(n) for _ in obs_dims],
        next_obs=[f32(n, d) for d in obs_dims],
        dones=[(rng.random(n) < 0.05).astype(np.float32) for _ in obs_dims],
        meta={"task": task, "tier": "random", "agent_names": names, "s_random": -10.0, "s_expert": 30.0, "env_kwargs": {}},
    )


@pytest.fixture
def dataset_file(tmp_path):
    return save_dataset(tmp_path / "coop.npz", synthetic_dataset())


def tiny_config(path, checkpoint_args=None, extra_callbacks=()):
    """Write tests/configs/tiny.yaml to ``path`` with UpdateCheckpoint's init_args updated by
    ``checkpoint_args`` and ``extra_callbacks`` (class_path, init_args) appended."""
    import copy
    from pathlib import Path

    import yaml

    config = yaml.safe_load((Path(__file__).parent / "configs" / "tiny.yaml").read_text())
    config = copy.deepcopy(config)
    for cb in config["trainer"]["callbacks"]:
        if cb["class_path"].endswith("UpdateCheckpoint"):
            cb["init_args"].update(checkpoint_args or {})
    for class_path, init_args in extra_callbacks:
        config["trainer"]["callbacks"].append({"class_path": class_path, "init_args": dict(init_args)})
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
    return Path(path)
