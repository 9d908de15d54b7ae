"""Every algorithm has a config for every task x tier that OMAR has, and the configs parse."""

from pathlib import Path

import pytest
import yaml

from omar_lightning.cli import main

ROOT = Path(__file__).resolve().parents[1] / "configs"
ALGOS = {"omar": "OMAR", "macql": "MACQL", "matd3bc": "MATD3BC", "maicq": "MAICQ", "bc": "BC"}


def test_every_algorithm_covers_every_task_and_tier():
    cells = {p.relative_to(ROOT / "omar") for p in (ROOT / "omar").glob("*/*.yaml")}
    assert {c.parts[0] for c in cells} >= {"cooperative_navigation", "predator_prey", "world", "halfcheetah_2x3"}
    for algo, cls in ALGOS.items():
        for cell in cells:
            if algo == "bc" and cell.stem.endswith("_centralized"):
                continue  # behaviour cloning has no critic
            path = ROOT / algo / cell
            assert path.is_file(), path
            config = yaml.safe_load(path.read_text())
            assert config["model"]["class_path"] == f"omar_lightning.{cls}"
            assert cell.parts[0].startswith(config["data"]["task"])  # cooperative_navigation_nN: num_agents in env_kwargs
            centralized = cell.stem.endswith("_centralized")
            assert config["model"]["init_args"].get("centralized", False) == centralized
            assert config["data"].get("joint_sampling", False) == centralized
            assert config["trainer"]["default_root_dir"] == f"runs/{algo}/{cell.parent}/{cell.stem}"


@pytest.mark.parametrize("config", ["matd3bc/halfcheetah_2x3/medium.yaml", "maicq/world/expert_centralized.yaml", "bc/predator_prey/random.yaml"])
def test_configs_parse(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(ROOT / config), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path: omar_lightning." in capsys.readouterr().out
