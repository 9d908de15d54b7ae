"""The configs of the new tasks parse into valid models and data modules (official settings)."""

from pathlib import Path

import pytest

from omar_lightning import OMAR
from omar_lightning.data import default_path
from omar_lightning.envs import task_spec
from omar_lightning.refinement import Refinement
from omar_lightning.reproduce.configs import compose
from omar_lightning.reproduce.studies import config_chain

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "configs" / "omar"
NAMES = ["predator_prey", "world", "halfcheetah_2x3"] + [f"cooperative_navigation_n{n}" for n in (1, 2, 4, 5)]
TIERS = ["random", "medium_replay", "medium", "expert"]
TAU_ALPHA = {"predator_prey": [(0.9, 0.5), (0.9, 0.5), (0.7, 5.0), (0.9, 5.0)], "world": [(1.0, 0.5), (0.7, 1.0), (0.1, 0.5), (0.9, 5.0)],
             "halfcheetah_2x3": [(1.0, 1.0), (0.9, 5.0), (0.7, 1.0), (0.5, 5.0)]}


@pytest.mark.parametrize("name", NAMES)
def test_configs_build_models_for_their_task(name):
    for k, tier in enumerate(TIERS):
        cfg = compose(REPO, config_chain(str(ROOT / name / f"{tier}.yaml")))  # the cell on its bases
        data, args = cfg["data"], dict(cfg["model"]["init_args"])
        folder = name if name.startswith("cooperative_navigation_n") else f"{name}_official"  # the official variant
        assert data["tier"] == tier and str(default_path(data["task"], tier, data.get("env_kwargs")) if "path" not in data else data["path"]) == f"data/{folder}/{tier}.npz"
        spec = task_spec(data["task"], **data.get("env_kwargs", {}))
        model = OMAR(spec.obs_dims, spec.act_dims, **{**args, "refinement": Refinement(**args["refinement"])})
        assert model.hparams.tau == TAU_ALPHA.get(name, [(1.0, 0.5), (1.0, 1.0), (1.0, 5.0), (1.0, 5.0)])[k][0]
        assert model.hparams.cql_alpha == TAU_ALPHA.get(name, [(1.0, 0.5), (1.0, 1.0), (1.0, 5.0), (1.0, 5.0)])[k][1]
        if name == "halfcheetah_2x3":
            assert (data["batch_size"], args["hidden_dim"], args["actor_lr"], args["gamma"], args["max_updates"]) == (256, 256, 3e-4, 0.99, 100_000)
            assert args["cql_policy_samples"] and args["refinement"] == {"sampler": "cem", "iterations": 2, "samples": 20, "elites": 5, "mu0": 0.0, "sigma0": 2.0}
            assert cfg["trainer"]["callbacks"][0]["init_args"]["rho"] == 0.005
            assert cfg["trainer"]["callbacks"][1]["init_args"]["every_n_updates"] == 500
        else:
            assert (data["batch_size"], args["hidden_dim"], args["actor_lr"], args["gamma"]) == (1024, 64, 0.01, 0.95)
