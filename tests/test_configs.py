"""The committed configs: every algorithm covers every task and tier; each cell, composed with its
bases, holds REFERENCE.md's settings; the composition is the one ``omar fit`` makes of the chain;
the digest follows the resolved configuration, not the files' text."""

import re
import shutil
from pathlib import Path

import pytest

import yaml

from omar_lightning.data import default_path

from omar_lightning.cli import main
from omar_lightning.reproduce.configs import compose, digest
from omar_lightning.reproduce.studies import LINE_TASKS, STUDIES, Cell, config_chain

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
ALGOS = {"omar": "OMAR", "macql": "MACQL", "matd3bc": "MATD3BC", "maicq": "MAICQ", "bc": "BC"}
CELLS = sorted(str(p.relative_to(ROOT)) for p in CONFIGS.glob("*/*/*.yaml"))
TIERS = ("random", "medium_replay", "medium", "expert")
# REFERENCE.md, "Hyperparameters of the official runs": (tau, CQL alpha) per task and tier, and the updates.
TAU_ALPHA = {
    "cooperative_navigation": [(1.0, 0.5), (1.0, 1.0), (1.0, 5.0), (1.0, 5.0)],
    "predator_prey": [(0.9, 0.5), (0.9, 0.5), (0.7, 5.0), (0.9, 5.0)],
    "world": [(1.0, 0.5), (0.7, 1.0), (0.1, 0.5), (0.9, 5.0)],
    "halfcheetah_2x3": [(1.0, 1.0), (0.9, 5.0), (0.7, 1.0), (0.5, 5.0)],
}


def updates(task: str, tier: str) -> int:
    """2,000 on MPE (spread-random 6,000, tag medium-replay 1,000, world 1,000), 100,000 on HalfCheetah."""
    if task == "halfcheetah_2x3":
        return 100_000
    if task.startswith("cooperative_navigation") and tier == "random":
        return 6000
    return 1000 if task == "world" or (task == "predator_prey" and tier == "medium_replay") else 2000


LINE_CELLS = sorted(c for c in CELLS if Path(c).parts[2] in LINE_TASKS)  # the line's: only what its studies run


def test_every_algorithm_covers_every_task_and_tier():
    cells = {p.relative_to(CONFIGS / "omar") for p in (CONFIGS / "omar").glob("*/*.yaml") if p.parent.name not in LINE_TASKS}
    assert {c.parts[0] for c in cells} >= {"cooperative_navigation", "predator_prey", "world", "halfcheetah_2x3"}
    assert len(cells) == 8 * 4 * 2 and len(CELLS) - len(LINE_CELLS) == 8 * 4 * 2 * 4 + 8 * 4  # BC has no centralized cells
    for algo, cls in ALGOS.items():
        for cell in cells:
            if algo == "bc" and cell.stem.endswith("_centralized"):
                continue  # behaviour cloning has no critic
            config = compose(ROOT, config_chain(f"configs/{algo}/{cell}"))
            assert config["model"]["class_path"] == f"omar_lightning.{cls}"
            assert cell.parts[0].startswith(config["data"]["task"])  # cooperative_navigation_nN: num_agents in env_kwargs
            centralized = cell.stem.endswith("_centralized")
            assert config["model"]["init_args"].get("centralized", False) == centralized
            assert config["data"].get("joint_sampling", False) == centralized
            assert config["data"].get("in_sample_next", False) == (algo == "maicq")
            run = f"runs/{algo}/{cell.parent}/{cell.stem}"
            assert config["trainer"]["default_root_dir"] == run and config["trainer"]["logger"]["init_args"]["save_dir"] == run
            assert [cb["class_path"].rsplit(".", 1)[-1] for cb in config["trainer"]["callbacks"]] == ["SoftTargetUpdate", "EnvEvaluation", "UpdateCheckpoint"]
            assert config["trainer"]["callbacks"][2]["init_args"]["dirpath"] == f"{run}/checkpoints"


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_holds_its_task_and_tiers_official_settings(cell):
    algo, task, name = Path(cell).parts[1:]
    tier = name.removesuffix(".yaml").removesuffix("_centralized")
    config = compose(ROOT, config_chain(cell))
    model, data, trainer = config["model"]["init_args"], config["data"], config["trainer"]
    assert data["tier"] == tier and model["max_updates"] == updates(task, tier)
    spread = re.fullmatch(r"cooperative_navigation_n(\d)", task)
    line = re.fullmatch(r"cooperative_navigation_line_n(\d)", task)
    # The paper's ground: the official variant of every task; the N-agent spreads stay on mpe2's;
    # the spreads on a line (Section 3.1) are on the official physics, as their datasets.
    env_kwargs = {"num_agents": int(spread[1])} if spread else {"num_agents": int(line[1]), "layout": "line", "variant": "official"} if line else {"variant": "official"}
    assert data.get("env_kwargs") == env_kwargs
    folder = task if spread or line else f"{task}_official"
    assert data.get("path", str(default_path(task, tier, data.get("env_kwargs")))) == f"data/{folder}/{tier}.npz"
    tau, alpha = TAU_ALPHA.get(task, TAU_ALPHA["cooperative_navigation"])[TIERS.index(tier)]
    if algo == "omar":
        assert (model["tau"], model["cql_alpha"]) == (tau, alpha)
    if algo == "macql":
        assert model["cql_alpha"] == alpha and "tau" not in model
    if algo == "matd3bc":
        assert (model["cql_alpha"], model["bc_alpha"]) == (0.0, 2.5)
    rho, every = trainer["callbacks"][0]["init_args"]["rho"], trainer["callbacks"][1]["init_args"]["every_n_updates"]
    if task == "halfcheetah_2x3":
        assert (data["batch_size"], model["hidden_dim"], model["actor_lr"], rho, every) == (256, 256, 3e-4, 0.005, 500)
    else:
        assert (data["batch_size"], model["hidden_dim"], model["actor_lr"], rho, every) == (1024, 64, 0.01, 0.01, 10)
    if algo != "bc":
        assert model["gamma"] == (0.99 if task == "halfcheetah_2x3" else 0.95)


def test_each_cell_names_the_command_that_runs_it():
    for cell in CELLS:
        second = (ROOT / cell).read_text().splitlines()[1]
        assert second == "# omar fit " + " ".join(f"--config {f}" for f in config_chain(cell)), cell


def _printed_config(capsys, *args: str) -> dict:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    printed.pop("config", None)  # the file names
    return printed


@pytest.mark.parametrize("cell", ["configs/omar/cooperative_navigation_n2/medium_replay_centralized.yaml", "configs/maicq/halfcheetah_2x3/expert.yaml"])
def test_compose_is_what_omar_fit_makes_of_the_chain(cell, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    chain = config_chain(cell)
    composed = compose(ROOT, chain)
    flat = tmp_path / "flat.yaml"
    flat.write_text(yaml.safe_dump(composed))
    from_chain = _printed_config(capsys, *(a for f in chain for a in ("--config", f)))
    assert from_chain == _printed_config(capsys, "--config", str(flat))  # every setting, defaults included
    assert from_chain["trainer"]["callbacks"][2]["init_args"]["save_top_k"] == 1  # the class's default, not in the files
    assert "save_top_k" not in composed["trainer"]["callbacks"][2]["init_args"]  # compose keeps what the files set


def test_later_files_override_setting_by_setting_and_replace_mappings_whole(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({
        "trainer": {"logger": {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"name": "logs"}},
                    "callbacks": [{"class_path": "omar_lightning.callbacks.SoftTargetUpdate", "init_args": {"rho": 0.01}},
                                  {"class_path": "omar_lightning.callbacks.UpdateCheckpoint", "init_args": {"every_n_updates": 7}}]},
        "model": {"class_path": "omar_lightning.OMAR", "init_args": {"hidden_dim": 8, "refinement": {"sampler": "cem", "samples": 4}}},
        "data": {"batch_size": 16, "env_kwargs": {"local_ratio": 0.5}},
    }))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({
        "trainer": {"logger": {"init_args": {"save_dir": "runs/b"}}, "callbacks": [{}, {"init_args": {"dirpath": "runs/b/checkpoints"}}]},
        "model": {"init_args": {"tau": 0.3, "refinement": {"samples": 6}}},
        "data": {"tier": "expert", "env_kwargs": {"num_agents": 2}},
    }))
    config = compose(tmp_path, ["a.yaml", "b.yaml"])
    assert config["trainer"]["logger"]["init_args"] == {"name": "logs", "save_dir": "runs/b"}
    assert config["trainer"]["callbacks"][0]["init_args"] == {"rho": 0.01}
    assert config["trainer"]["callbacks"][1]["init_args"] == {"every_n_updates": 7, "dirpath": "runs/b/checkpoints"}
    assert config["model"]["init_args"] == {"hidden_dim": 8, "tau": 0.3, "refinement": {"sampler": "cem", "samples": 6}}
    assert config["data"] == {"batch_size": 16, "tier": "expert", "env_kwargs": {"num_agents": 2}}  # the mapping replaced whole


def test_digest_follows_the_resolved_configuration_not_the_text(tmp_path):
    names = ["base/mpe.yaml", "omar/mpe.yaml", "omar/cooperative_navigation/medium.yaml"]
    for name in names:
        (tmp_path / "configs" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CONFIGS / name, tmp_path / "configs" / name)
    cell = Cell("omar", "cooperative_navigation", "medium", seed=0)
    first = digest(cell, tmp_path)
    assert first == digest(cell, ROOT)
    path, base = tmp_path / "configs" / names[2], tmp_path / "configs" / names[1]
    text = path.read_text()
    path.write_text("# a comment\n" + yaml.safe_dump(yaml.safe_load(text), sort_keys=True))  # another layout
    assert digest(cell, tmp_path) == first
    path.write_text(text.replace("    tau: 1.0\n", ""))  # tau moved from the cell to the algorithm's base
    base.write_text(base.read_text().replace("    hidden_dim: 64\n", "    hidden_dim: 64\n    tau: 1.0\n"))
    assert digest(cell, tmp_path) == first
    base.write_text(base.read_text().replace("hidden_dim: 64", "hidden_dim: 32"))  # a value any cell runs with
    assert digest(cell, tmp_path) != first
    base.write_text(base.read_text().replace("hidden_dim: 32", "hidden_dim: 64"))
    assert digest(cell, tmp_path) == first
    assert len({first, digest(Cell("omar", "cooperative_navigation", "medium", seed=1), tmp_path),
                digest(Cell("omar", "cooperative_navigation", "medium", seed=0, variant=(("tau", 0.5),)), tmp_path)}) == 3
    path.write_text(text.replace("tau: 1.0", "tua: 1.0"))
    with pytest.raises(ValueError, match=r"omar/cooperative_navigation/medium.yaml: model: option 'tua' is not accepted"):
        digest(cell, tmp_path)
    (tmp_path / "configs" / names[0]).unlink()
    with pytest.raises(ValueError, match=r"base/mpe.yaml: cannot read the config"):
        digest(cell, tmp_path)


def test_a_path_that_is_not_a_cell_config_is_refused():
    with pytest.raises(ValueError, match="a cell config is <root>/<algorithm>/<task>/<name>.yaml"):
        config_chain("medium.yaml")
    with pytest.raises(ValueError, match="task 'chess' is in no task family"):
        config_chain("configs/omar/chess/medium.yaml")


def test_a_cell_given_alone_runs_on_its_bases():
    from omar_lightning.reproduce.studies import with_bases

    cell = "configs/omar/cooperative_navigation_n2/medium_replay.yaml"
    chain = ["configs/base/mpe.yaml", "configs/base/cooperative_navigation_n2.yaml", "configs/omar/mpe.yaml", cell]
    expanded = [a for p in chain for a in ("--config", p)]
    assert with_bases(["fit", "--config", cell, "--seed_everything", "3"]) == ["fit", *expanded, "--seed_everything", "3"]
    assert with_bases(["fit", f"--config={cell}"]) == ["fit", *expanded]
    assert with_bases(["fit", *expanded]) == ["fit", *expanded]  # the chain given by hand stays as it is
    for own in ("configs/quickstart.yaml", "configs/base/mpe.yaml", "my/run.yaml"):
        assert with_bases(["fit", "-c", own]) == ["fit", "-c", own]


def test_omar_fit_on_a_lone_cell_resolves_as_its_chain(capsys):
    cell = "configs/macql/world/medium.yaml"
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", cell, "--print_config"])
    assert stop.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    expected = compose(ROOT, config_chain(cell))
    assert printed["model"]["init_args"]["cql_alpha"] == expected["model"]["init_args"]["cql_alpha"] == 0.5
    assert printed["data"]["env_kwargs"] == {"variant": "official"} and printed["data"]["task"] == "world"
    assert printed["trainer"]["callbacks"][2]["init_args"]["dirpath"] == "runs/macql/world/medium/checkpoints"


def test_the_line_studies_cells_are_the_line_cells_with_the_2d_agent_cells_settings():
    """Every cell of the line's studies has its config chain, and the line's cells are exactly
    those; each composes to the 2-D N-agent cell of the same algorithm (N = 3: the default
    spread's) but for the environment, the dataset path and the run directory."""
    line_studies = [name for name in STUDIES if name.startswith("line-")]
    assert line_studies == ["line-curves", "line-agents", "line-landscape", "line-actor-lr-updates"]
    needed = {cell.config for name in line_studies for cell in STUDIES[name].cells()}
    assert needed == set(LINE_CELLS) == {f"configs/{a}/{t}/medium_replay.yaml" for a in ("macql", "omar") for t in LINE_TASKS} | {
        "configs/matd3bc/cooperative_navigation_line_n2/medium_replay.yaml"}
    for cell in LINE_CELLS:
        chain = config_chain(cell)
        assert all((ROOT / f).is_file() for f in chain), chain
        algo, task = Path(cell).parts[1:3]
        n = int(task.removeprefix("cooperative_navigation_line_n"))
        plane = f"configs/{algo}/{'cooperative_navigation' if n == 3 else f'cooperative_navigation_n{n}'}/medium_replay.yaml"
        ours, theirs = compose(ROOT, chain), compose(ROOT, config_chain(plane))
        assert ours["data"].pop("env_kwargs") == {"num_agents": n, "layout": "line", "variant": "official"}
        assert ours["data"].pop("path") == f"data/{task}/medium_replay.npz"
        theirs["data"].pop("env_kwargs")
        theirs["data"].pop("path", None)
        assert ours["data"] == theirs["data"] and ours["model"] == theirs["model"], cell
        run, plane_run = f"runs/{algo}/{task}/medium_replay", theirs["trainer"]["default_root_dir"]
        assert ours["trainer"]["default_root_dir"] == run
        assert yaml.safe_dump(ours["trainer"]).replace(run, "RUN") == yaml.safe_dump(theirs["trainer"]).replace(plane_run, "RUN")


def test_the_line_landscape_run_keeps_every_checkpoint_and_trains_as_its_plain_cell(tmp_path):
    from omar_lightning.reproduce.configs import resolved

    landscape = STUDIES["line-landscape"].cells([0])[0]
    plain = Cell("macql", landscape.task, landscape.tier, 0)
    ours, theirs = resolved(landscape, ROOT), resolved(plain, ROOT)
    assert ours["trainer"]["callbacks"][2]["init_args"].pop("save_top_k") == -1
    assert "save_top_k" not in theirs["trainer"]["callbacks"][2]["init_args"] and ours == theirs
    assert landscape.key == "macql/cooperative_navigation_line_n2/medium_replay/default+landscape_1d/seed_0" and digest(landscape, ROOT) != digest(plain, ROOT)


@pytest.mark.parametrize("cell", ["configs/omar/cooperative_navigation_line_n2/medium_replay.yaml", "configs/macql/cooperative_navigation_line_n5/medium_replay.yaml"])
def test_omar_fit_runs_a_line_cell_on_a_tiny_line_dataset(cell, tmp_path):
    """The committed cell by its own name through the real CLI and Trainer: its bases put before
    it, 2 updates on a 1,100-transition synthetic dataset with the line's shapes and env_kwargs."""
    import subprocess
    import sys

    import torch

    from conftest import synthetic_dataset
    from omar_lightning.data import save_dataset

    task = Path(cell).parts[2]
    n = int(task.removeprefix("cooperative_navigation_line_n"))
    env_kwargs = {"num_agents": n, "layout": "line", "variant": "official"}
    ds = synthetic_dataset(n=1100, obs_dims=(4 * n - 1,) * n, act_dims=(1,) * n, env_kwargs=env_kwargs)
    ds.meta["tier"] = "medium_replay"
    save_dataset(tmp_path / "line.npz", ds)
    out = subprocess.run([sys.executable, "-m", "omar_lightning", "fit", "--config", str(ROOT / cell), "--data.path", str(tmp_path / "line.npz"),
                          "--model.max_updates", "2", "--trainer.enable_progress_bar", "false"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "runs" / Path(cell).parts[1] / task / "medium_replay"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["omar_run"]["env_kwargs"] == env_kwargs and checkpoint["hyper_parameters"]["act_dims"] == [1] * n
    assert checkpoint["hyper_parameters"]["obs_dims"] == [4 * n - 1] * n and checkpoint["hyper_parameters"]["max_updates"] == 2
    metrics = (run / "logs" / "version_0" / "metrics.csv").read_text()
    assert "eval/return" in metrics.splitlines()[0]
