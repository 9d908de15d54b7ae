"""omar reproduce: cells, skipping finished ones, rerunning unfinished and stale ones, SLURM arrays."""

import json
import os
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from omar_lightning.data import REGENERATION_TOLERANCE, load_dataset, read_metadata, same_dataset, save_dataset
from omar_lightning.reproduce.studies import STUDIES, Cell, study
from omar_lightning.reproduce.summary import aggregate, curve_score, read_curve, run_score
from omar_lightning.update_version import UPDATE_VERSION
from conftest import TINY, synthetic_dataset


def test_run_score_is_the_mean_of_the_last_ten_evaluations():
    curve = [float(v) for v in range(1, 21)]  # evaluations 1..20
    assert run_score(curve) == pytest.approx(np.mean(range(11, 21)))  # 15.5
    assert run_score([3.0, 5.0]) == 4.0  # fewer than ten: all of them
    assert run_score(curve, last=1) == 20.0
    with pytest.raises(ValueError, match="no evaluations"):
        run_score([])


def test_curve_score_leaves_out_the_evaluation_before_the_first_update():
    curve = {"updates": [0] + [10 * k for k in range(1, 13)], "normalized_score": [-50.0] + [float(k) for k in range(1, 13)]}
    assert curve_score(curve) == pytest.approx(np.mean(range(3, 13)))  # evaluations 3..12, never update 0
    short = {"updates": [0, 10, 20], "normalized_score": [-50.0, 4.0, 6.0], "return": [0.0, 1.0, 3.0]}
    assert curve_score(short) == 5.0 and curve_score(short, "return") == 2.0


def test_aggregate_over_seeds_is_mean_and_population_std():
    agg = aggregate([1.0, 2.0, 6.0])
    assert agg["mean"] == pytest.approx(3.0) and agg["n"] == 3
    assert agg["std"] == pytest.approx(math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 3))
    assert aggregate([]) ["n"] == 0 and math.isnan(aggregate([])["mean"])


def test_read_curve_merges_resumed_versions(tmp_path):
    header = "eval/normalized_score,eval/return,step,updates,critic/loss\n"
    (tmp_path / "version_0").mkdir()
    (tmp_path / "version_0" / "metrics.csv").write_text(header + "1.0,10.0,9,10,\n,,10,,0.5\n2.0,20.0,19,20,\n")
    (tmp_path / "version_1").mkdir()
    (tmp_path / "version_1" / "metrics.csv").write_text(header + "2.0,20.0,19,20,\n3.0,30.0,29,30,\n")
    assert read_curve(tmp_path) == {"updates": [10, 20, 30], "return": [10.0, 20.0, 30.0], "normalized_score": [1.0, 2.0, 3.0]}


def test_studies_share_cells_and_restrict_axes():
    t3 = study("table3").cells(range(2), tasks=["cooperative_navigation"], tiers=["medium"])
    assert [c.algorithm for c in t3] == ["maicq", "matd3bc", "macql", "omar"] * 2 and {c.seed for c in t3} == {0, 1}
    t4 = study("table4").cells([0], tiers=["medium"])
    assert {c.key for c in t4} & {c.key for c in t3} == {"omar/cooperative_navigation/medium/default/seed_0"}  # Gaussian = Table 3's OMAR
    assert {c.variant_name for c in t4} == {"sampler=random", "sampler=cem", "default"}
    assert len(study("table3").cells()) == 3 * 4 * 4 * 5
    agents = study("agents").cells([0])
    assert sorted({c.task for c in agents}) == ["cooperative_navigation", *(f"cooperative_navigation_n{n}" for n in (1, 2, 4, 5))]
    for name in STUDIES:  # every cell of every study has a committed config
        for cell in study(name).cells([0]):
            assert (Path(__file__).resolve().parents[1] / cell.config).is_file(), cell.config
    with pytest.raises(ValueError, match="--tiers: huge not in study 'table3'"):
        study("table3").cells([0], tiers=["huge"])


def _tree(root: Path, task="cooperative_navigation", tier="medium", dims=(18, 18, 18), algorithms=("omar", "macql")) -> None:
    """A dataset and tests/configs/tiny.yaml as committed configs are laid out: the family's base
    (trainer, callbacks, data settings), the task's own base for an N-agent spread (on a line:
    1-D actions, the official physics), each algorithm's base (its model) and the cells (task, tier, tau)."""
    base = "cooperative_navigation"  # the N-agent spread tasks are cooperative navigation with num_agents
    line = task.startswith("cooperative_navigation_line_n")
    ds = synthetic_dataset(n=300, obs_dims=dims, act_dims=(1 if line else 2,) * len(dims), task=base)
    ds.meta["tier"] = tier
    env_kwargs = {} if task == base else {"num_agents": len(dims), "layout": "line", "variant": "official"} if line else {"num_agents": len(dims)}
    ds.meta["env_kwargs"] = env_kwargs
    save_dataset(root / "data" / task / f"{tier}.npz", ds)
    tiny = yaml.safe_load(TINY.read_text())
    for cb in tiny["trainer"]["callbacks"]:
        if cb["class_path"].endswith("EnvEvaluation"):
            cb["init_args"]["every_n_updates"] = 2
    model = tiny.pop("model")["init_args"]
    tau = model.pop("tau")
    files = {"base/mpe.yaml": tiny}
    if task != base:
        files[f"base/{task}.yaml"] = {"data": {"env_kwargs": env_kwargs}}
    for algorithm in algorithms:
        class_path = {"omar": "omar_lightning.OMAR", "macql": "omar_lightning.MACQL"}[algorithm]
        files[f"{algorithm}/mpe.yaml"] = {"model": {"class_path": class_path, "init_args": {**model, "max_updates": 4}}}
        cell = {"data": {"task": base, "tier": tier, "path": f"data/{task}/{tier}.npz"}}
        if algorithm == "omar":
            cell["model"] = {"init_args": {"tau": tau}}
        files[f"{algorithm}/{task}/{tier}.yaml"] = cell
    for name, config in files.items():
        path = root / "configs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))


def _reproduce(root: Path, *args: str, threads: int | None = None) -> subprocess.CompletedProcess:
    """``omar reproduce ARGS`` in ``root``; with ``threads``, every process of it runs that many torch threads."""
    env = None if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, "-m", "omar_lightning", "reproduce", *args], cwd=root, capture_output=True, text=True, timeout=600, env=env)


def test_two_cell_study_runs_skips_finished_and_reruns_unfinished_and_stale(tmp_path):
    _tree(tmp_path)
    select = ["table3", "--tasks", "cooperative_navigation", "--tiers", "medium", "--algorithms", "omar", "macql", "--seeds", "0"]
    out = _reproduce(tmp_path, *select, "--workers", "2")
    assert out.returncode == 0, out.stderr + out.stdout
    assert "0 already finished, 2 ran, 0 failed" in out.stdout
    paths = {a: tmp_path / "results" / a / "cooperative_navigation" / "medium" / "default" / "seed_0.json" for a in ("omar", "macql")}
    summary = json.loads(paths["omar"].read_text())
    # the evaluation before the first update is the curve's first point, not part of the score
    assert summary["curve"]["updates"] == [0, 2, 4] and summary["max_updates"] == 4
    assert summary["score"]["normalized_score"] == pytest.approx(np.mean(summary["curve"]["normalized_score"][1:]))
    assert summary["score"]["return"] == pytest.approx(np.mean(summary["curve"]["return"][1:]))
    assert summary["update_version"] == UPDATE_VERSION
    assert summary["dataset"]["checksum"] == json.loads(paths["macql"].read_text())["dataset"]["checksum"]
    assert summary["config"] == "configs/omar/cooperative_navigation/medium.yaml" and summary["cell"]["seed"] == 0
    assert summary["versions"]["torch"] == torch.__version__.split("+")[0] or summary["versions"]["torch"] == torch.__version__
    assert summary["wall_seconds"] > 0 and summary["threads"] == max(1, (os.cpu_count() or 1) // 2)
    stamps = {a: p.stat().st_mtime_ns for a, p in paths.items()}

    out = _reproduce(tmp_path, *select)  # everything finished: nothing runs
    assert "2 already finished, 0 ran" in out.stdout and {a: p.stat().st_mtime_ns for a, p in paths.items()} == stamps

    paths["macql"].unlink()  # an unfinished cell: rerun (resuming from its own last checkpoint), the other skipped
    out = _reproduce(tmp_path, *select, "--threads", "1")
    assert "1 already finished, 1 ran" in out.stdout and "macql cooperative_navigation medium seed 0 (resuming)" in out.stdout
    assert paths["macql"].is_file() and paths["omar"].stat().st_mtime_ns == stamps["omar"]
    assert json.loads(paths["macql"].read_text())["threads"] == 1  # as asked, and recorded for the cost table

    cfg = tmp_path / "configs" / "omar" / "cooperative_navigation" / "medium.yaml"
    cfg.write_text("# a comment, not a setting\n" + cfg.read_text())  # the digest is of the resolved configuration, not the text
    assert _reproduce(tmp_path, *select, "--list").stdout.count("finished") == 2
    cfg.write_text(cfg.read_text().replace("tau: 0.7", "tau: 0.5"))  # a changed value makes its cell stale
    listing = _reproduce(tmp_path, *select, "--list").stdout
    assert "stale" in listing and "finished" in listing
    out = _reproduce(tmp_path, *select)
    assert "1 already finished, 1 ran" in out.stdout and "moved it to" in out.stdout
    assert json.loads(paths["omar"].read_text())["overrides"] == {} and "(resuming)" not in out.stdout


def test_a_regenerated_dataset_makes_finished_and_unfinished_cells_stale(tmp_path):
    """Results and checkpoints belong to the dataset they ran on: a file regenerated with other
    content reruns finished cells and never resumes an unfinished one; a missing file (a fresh
    clone with the committed summaries) leaves finished cells finished."""
    _tree(tmp_path)
    select = ["table3", "--tasks", "cooperative_navigation", "--tiers", "medium", "--algorithms", "omar", "macql", "--seeds", "0"]
    assert _reproduce(tmp_path, *select, "--workers", "2").returncode == 0
    data = tmp_path / "data" / "cooperative_navigation" / "medium.npz"
    results = tmp_path / "results"
    macql = results / "macql" / "cooperative_navigation" / "medium" / "default" / "seed_0.json"
    old = json.loads(macql.read_text())["dataset"]["checksum"]

    data.rename(data.with_suffix(".kept"))
    assert _reproduce(tmp_path, *select, "--list").stdout.count("finished") == 2

    ds = synthetic_dataset(n=300, seed=1)
    ds.meta["tier"] = "medium"
    save_dataset(data, ds)
    macql.unlink()  # macql is now an unfinished cell with checkpoints made on the old file
    listing = _reproduce(tmp_path, *select, "--list").stdout
    assert "stale" in listing and "pending" in listing
    out = _reproduce(tmp_path, *select)
    assert out.returncode == 0 and "0 already finished, 2 ran" in out.stdout, out.stdout
    assert "the dataset changed since" in out.stdout and "(resuming)" not in out.stdout
    new = json.loads(macql.read_text())["dataset"]["checksum"]
    assert new != old and json.loads((results / "omar" / "cooperative_navigation" / "medium" / "default" / "seed_0.json").read_text())["dataset"]["checksum"] == new


def test_same_dataset_tells_identical_regenerated_and_other_files_apart():
    ran = {"checksum": "a" * 64, "num_transitions": 1000, "behaviour_return": 274.8315277, "s_random": 159.0342, "s_expert": 532.3298179}
    assert same_dataset(ran, dict(ran)) == "identical"
    # the official medium tier written on two CPUs: 1.6e-6 and 4e-8 relative apart
    regen = {**ran, "checksum": "b" * 64, "behaviour_return": 274.8310833, "s_expert": 532.3297965}
    assert same_dataset(ran, regen) == "regenerated"
    at = 274.8315277 * (1 + 0.9 * REGENERATION_TOLERANCE)
    assert same_dataset(ran, {**regen, "behaviour_return": at}) == "regenerated"
    assert same_dataset(ran, {**regen, "behaviour_return": 274.8315277 * (1 + 1.1 * REGENERATION_TOLERANCE)}) is None
    assert same_dataset(ran, {**regen, "behaviour_return": 268.86}) is None  # a medium-replay tier of a retrained run: 2.2% apart
    assert same_dataset(ran, {**regen, "num_transitions": 999}) is None
    assert same_dataset(ran, {**regen, "s_random": 159.1}) is None
    assert same_dataset(ran, {**regen, "behaviour_return": None}) is None  # nothing to compare: another dataset
    # near zero the tolerance is absolute (1e-4): a random predator-prey tier at -4.13
    small = {**ran, "behaviour_return": -0.00002}
    assert same_dataset(small, {**small, "checksum": "c" * 64, "behaviour_return": 0.00007}) == "regenerated"
    assert same_dataset(small, {**small, "checksum": "c" * 64, "behaviour_return": 0.0002}) is None


def test_a_dataset_regenerated_from_the_same_recipe_keeps_its_cells_finished(tmp_path):
    """A file written again from the same snapshots and seeds on another machine differs in float
    bits only: its finished cells stay finished (the listing says which file they ran on), while
    a file whose behaviour return moved beyond the tolerance makes them stale."""
    _tree(tmp_path)
    data = tmp_path / "data" / "cooperative_navigation" / "medium.npz"
    ds = load_dataset(data)
    ds.meta["episode_returns"] = {"mean": 100.0, "std": 5.0, "min": 90.0, "max": 110.0, "count": 12}
    save_dataset(data, ds)
    select = ["table3", "--tasks", "cooperative_navigation", "--tiers", "medium", "--algorithms", "omar", "--seeds", "0"]
    assert _reproduce(tmp_path, *select).returncode == 0
    summary = tmp_path / "results" / "omar" / "cooperative_navigation" / "medium" / "default" / "seed_0.json"
    ran_on = json.loads(summary.read_text())["dataset"]
    assert ran_on["behaviour_return"] == 100.0 and ran_on["num_transitions"] == 300

    def regenerate(mean):
        again = load_dataset(data)
        again.obs[0][0, 0] = np.nextafter(again.obs[0][0, 0], np.float32(np.inf))  # one bit of one observation
        again.meta["episode_returns"] = {**again.meta["episode_returns"], "mean": mean}
        save_dataset(data, again)
        return read_metadata(data)["checksum"]

    new = regenerate(100.0 * (1 + 0.5 * REGENERATION_TOLERANCE))
    assert new != ran_on["checksum"]
    listing = _reproduce(tmp_path, *select, "--list").stdout
    assert "finished" in listing and f"ran on a regeneration of the file now there: behaviour return 100.00000 (checksum {ran_on['checksum'][:12]}), now 100.00500 ({new[:12]})" in listing
    out = _reproduce(tmp_path, *select)
    assert out.returncode == 0 and "1 already finished, 0 ran" in out.stdout, out.stdout
    assert json.loads(summary.read_text())["dataset"] == ran_on  # the summary still names the file it ran on

    regenerate(100.0 * (1 + 2 * REGENERATION_TOLERANCE))
    listing = _reproduce(tmp_path, *select, "--list").stdout
    assert "stale" in listing and "regeneration" not in listing


def test_missing_dataset_is_skipped_with_its_name_and_bad_options_fail(tmp_path):
    _tree(tmp_path)
    (tmp_path / "data" / "cooperative_navigation" / "medium.npz").unlink()
    out = _reproduce(tmp_path, "table3", "--tasks", "cooperative_navigation", "--tiers", "medium", "--algorithms", "omar", "--seeds", "0")
    assert out.returncode == 0 and "[skip] omar cooperative_navigation medium seed 0: dataset missing" in out.stdout
    (tmp_path / "configs" / "omar" / "mpe.yaml").unlink()  # a cell without one of its bases
    out = _reproduce(tmp_path, "table3", "--tasks", "cooperative_navigation", "--tiers", "medium", "--algorithms", "omar", "--seeds", "0")
    assert out.returncode == 0 and "[skip] omar cooperative_navigation medium seed 0: no config configs/omar/mpe.yaml" in out.stdout
    cell = tmp_path / "configs" / "macql" / "cooperative_navigation" / "medium.yaml"
    cell.write_text(cell.read_text() + "model:\n  init_args:\n    tua: 0.5\n")  # a setting no algorithm has
    bad = _reproduce(tmp_path, "table3", "--tasks", "cooperative_navigation", "--tiers", "medium", "--algorithms", "macql", "--seeds", "0", "--list")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"omar: error: {tmp_path}/configs/base/mpe.yaml + {tmp_path}/configs/macql/mpe.yaml + {cell}: model: option 'tua' is not accepted"]
    bad = _reproduce(tmp_path, "table3", "--tasks", "moon")
    assert bad.returncode == 2 and "--tasks: moon not in study 'table3'" in bad.stderr
    bad = _reproduce(tmp_path, "table3", "--workers", "0")
    assert bad.returncode == 2 and "--workers must be >= 1" in bad.stderr
    bad = _reproduce(tmp_path, "table3", "--threads", "0")
    assert bad.returncode == 2 and "--threads must be >= 1" in bad.stderr


def test_slurm_array_runs_one_cell_per_task(tmp_path):
    _tree(tmp_path)
    out = _reproduce(tmp_path, "table4", "--seeds", "0", "1", "--workers", "3", "--slurm", "job.sh")
    assert out.returncode == 0, out.stderr
    script = (tmp_path / "job.sh").read_text()
    assert "#SBATCH --array=0-23" in script  # 4 tiers x 3 samplers x 2 seeds
    assert "omar reproduce table4 --seeds 0 1 --cell $SLURM_ARRAY_TASK_ID" in script and "--workers" not in script
    listing = _reproduce(tmp_path, "table4", "--seeds", "0", "1", "--list").stdout.splitlines()
    assert len(listing) == 24 and listing[0].split()[0] == "0"


def test_landscape_cell_records_q1_on_the_action_grid(tmp_path):
    _tree(tmp_path, task="cooperative_navigation_n2", tier="medium_replay", dims=(12, 12))
    out = _reproduce(tmp_path, "landscape", "--seeds", "0")
    assert out.returncode == 0, out.stderr + out.stdout
    summary = json.loads((tmp_path / "results" / "macql" / "cooperative_navigation_n2" / "medium_replay" / "default+landscape" / "seed_0.json").read_text())
    land = summary["landscape"]
    q = np.array(land["q1"])
    assert q.shape == (41, 41) and land["axis"][0] == -1.0 and land["axis"][-1] == 1.0
    from omar_lightning.evaluate_cli import load_checkpoint
    from omar_lightning.data import load_dataset

    module, _ = load_checkpoint(tmp_path / "runs" / "reproduce" / "macql" / "cooperative_navigation_n2" / "medium_replay" / "default+landscape" / "seed_0" / "checkpoints" / "last.ckpt")
    ds = load_dataset(tmp_path / "data" / "cooperative_navigation_n2" / "medium_replay.npz")
    obs = torch.stack([torch.from_numpy(o[:1]) for o in ds.obs])  # [A, 1, D], row 0
    with torch.no_grad():
        for iy, ix in ((0, 0), (20, 33), (40, 7)):  # q1[y, x] is Q1 of agent 0 at (axis[x], axis[y])
            act = torch.zeros(2, 1, 2)
            act[0, 0] = torch.tensor([land["axis"][ix], land["axis"][iy]])
            assert float(module.critic.q1(obs, act)[0, 0]) == pytest.approx(q[iy, ix], abs=1e-4)
        assert land["before"] == pytest.approx(module.actor(obs)[0, 0].tolist(), abs=1e-6)
    assert land["after_macql"] != land["before"] and land["after_omar"] != land["before"]
    assert land["omar_tau"] == 0.7  # read from OMAR's config for the same task and tier



def test_most_different_picks_the_largest_gap_first_in_checkpoint_agent_row_order():
    from omar_lightning.reproduce.landscape import most_different

    gaps = [np.array([[0.1, 0.2], [0.3, 0.05]]), np.array([[0.0, 0.7], [0.1, 0.7]]), np.array([[0.7, 0.0], [0.0, 0.0]])]
    assert most_different(gaps) == (1, 0, 1)  # 0.7 three times: the earliest checkpoint, then the lowest agent
    assert most_different(gaps[:1]) == (0, 1, 0)
    assert most_different([np.zeros((2, 3)), np.full((2, 3), 1e-9)]) == (1, 0, 0)
    with pytest.raises(ValueError, match="no checkpoints"):
        most_different([])


def test_line_landscape_searches_every_checkpoint_and_records_q1_over_the_1d_action(tmp_path):
    """Figure 1d on the line through omar reproduce: the MA-CQL run keeps every periodic
    checkpoint; the recorded curve is the chosen checkpoint's Q1 evaluated directly at the
    chosen observation, and the chosen (checkpoint, agent, row) holds the largest gap between
    the MA-CQL- and OMAR-updated actions, recomputed here on minibatches drawn independently."""
    from omar_lightning.checkpoint_io import load_module
    from omar_lightning.data import load_dataset
    from omar_lightning.datamodules.offline import MinibatchStream, stack_padded
    from omar_lightning.refinement import Refinement
    from omar_lightning.reproduce.landscape import action_gap, updated_actions

    task = "cooperative_navigation_line_n2"
    _tree(tmp_path, task=task, tier="medium_replay", dims=(7, 7))
    # the study's torch threads are this process's: the recomputation below rounds as the search did
    out = _reproduce(tmp_path, "line-landscape", "--seeds", "0", threads=torch.get_num_threads())
    assert out.returncode == 0, out.stderr + out.stdout
    key = f"macql/{task}/medium_replay/default+landscape_1d/seed_0"
    land = json.loads((tmp_path / "results" / f"{key}.json").read_text())["landscape_1d"]
    checkpoints = tmp_path / "runs" / "reproduce" / key / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("updates=*.ckpt")) == ["updates=2.ckpt", "updates=4.ckpt"]  # every one kept
    assert [c["updates"] for c in land["search"]] == [2, 4] and land["omar_tau"] == 0.7  # tau of OMAR's config for the same cell

    ds = load_dataset(tmp_path / "data" / task / "medium_replay.npz")
    store = {k: stack_padded(getattr(ds, k)) for k in ("obs", "actions", "rewards", "next_obs", "dones")}
    stream = MinibatchStream(store, 32, seed=0)  # tiny.yaml's batch size, the cell's seed
    largest = []
    for entry in land["search"]:
        module, checkpoint = load_module(checkpoints / f"updates={entry['updates']}.ckpt")
        batch = stream.batch(entry["updates"])
        acts = updated_actions(module, batch, checkpoint["optimizer_states"][0], 0.7, Refinement())
        gap = action_gap(acts["macql"], acts["omar"])
        assert entry["largest_gap"] == pytest.approx(gap.max(), abs=1e-6) and entry["mean_gap"] == pytest.approx(gap.mean(), abs=1e-6)
        largest.append((gap.max(), entry["updates"], gap, acts, module, batch))
    top = max(largest, key=lambda t: t[0])
    assert land["updates"] == top[1] and land["checkpoint"] == f"updates={top[1]}.ckpt"
    _, _, gap, acts, module, batch = top
    agent, row = land["agent"], land["minibatch_row"]
    assert gap[agent, row] == gap.max() > 0 and land["gap"] == pytest.approx(gap.max(), abs=1e-6)
    assert int(stream.indices(top[1])[agent, row]) == land["dataset_row"]
    assert [land["before"], land["after_macql"], land["after_omar"]] == pytest.approx([float(acts[k][agent, row, 0]) for k in ("before", "macql", "omar")], abs=1e-6)
    assert land["after_macql"] != land["before"] and land["after_omar"] != land["after_macql"]

    obs = torch.from_numpy(np.stack([o[land["dataset_row"] : land["dataset_row"] + 1] for o in ds.obs]))  # [A, 1, 7], agent's row
    q = np.array(land["q1"])
    assert q.shape == (201,) and land["actions"][0] == -1.0 and land["actions"][-1] == 1.0 and land["actions"][100] == 0.0
    with torch.no_grad():
        assert float(module.actor(obs)[agent, 0, 0]) == pytest.approx(land["before"], abs=1e-6)
        for k in (0, 37, 100, 200):
            act = torch.zeros(2, 1, 1)
            act[agent, 0, 0] = land["actions"][k]
            assert float(module.critic.q1(obs, act)[agent, 0]) == pytest.approx(q[k], abs=1e-4)
        for name in ("before", "after_macql", "after_omar"):
            act = torch.zeros(2, 1, 1)
            act[agent, 0, 0] = land[name]
            assert float(module.critic.q1(obs, act)[agent, 0]) == pytest.approx(land[f"q1_{name}"], abs=1e-5)
    assert q[land["actions"].index(land["argmax"])] == pytest.approx(q.max(), abs=1e-4) and land["q1_argmax"] == pytest.approx(q.max(), abs=1e-4)

def test_a_cell_held_by_a_live_process_is_not_run_twice_and_a_dead_holders_lock_is_taken_over(tmp_path):
    from omar_lightning.atomic import _HOST
    from omar_lightning.reproduce.runner import CellBusy, cell_lock

    run_dir = tmp_path / "runs" / "cell"
    with cell_lock(run_dir):
        with pytest.raises(CellBusy, match="held by process"):
            with cell_lock(run_dir):
                pass
    assert not (tmp_path / "runs" / "cell.lock").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "runs" / "cell.lock").write_text(f"{dead}@{_HOST}")  # left by a process that ended
    with cell_lock(run_dir):
        assert (tmp_path / "runs" / "cell.lock").read_text().startswith(f"{os.getpid()}@")
    (tmp_path / "runs" / "cell.lock").write_text("1@another-host")
    with pytest.raises(CellBusy, match="another-host"):
        with cell_lock(run_dir):
            pass


def test_summaries_of_an_older_update_are_stale_and_rerun_from_scratch(tmp_path):
    """A summary without update_version (made before version 2) or of another version is stale:
    --list says so, the cell runs again, and its old checkpoints (a run directory without
    update_version.txt) are moved aside instead of resumed."""
    _tree(tmp_path)
    select = ["table3", "--tasks", "cooperative_navigation", "--tiers", "medium", "--algorithms", "omar", "--seeds", "0"]
    assert _reproduce(tmp_path, *select).returncode == 0
    path = tmp_path / "results" / "omar" / "cooperative_navigation" / "medium" / "default" / "seed_0.json"
    run_dir = tmp_path / "runs" / "reproduce" / "omar" / "cooperative_navigation" / "medium" / "default" / "seed_0"
    assert (run_dir / "update_version.txt").read_text() == str(UPDATE_VERSION)
    assert "finished" in _reproduce(tmp_path, *select, "--list").stdout
    summary = json.loads(path.read_text())
    for old in ({k: v for k, v in summary.items() if k != "update_version"}, {**summary, "update_version": UPDATE_VERSION - 1}):
        path.write_text(json.dumps(old))
        listing = _reproduce(tmp_path, *select, "--list").stdout
        assert listing.split()[1] == "stale", listing
    (run_dir / "update_version.txt").unlink()  # as a run directory made by version 1
    out = _reproduce(tmp_path, *select)
    assert out.returncode == 0 and "0 already finished, 1 ran" in out.stdout, out.stdout
    assert f"the training update (version 1, now {UPDATE_VERSION}) changed since" in out.stdout and "(resuming)" not in out.stdout
    assert json.loads(path.read_text())["update_version"] == UPDATE_VERSION
    assert "finished" in _reproduce(tmp_path, *select, "--list").stdout


def test_official_reuse_study_lists_fresh_and_reused_cells(tmp_path):
    from omar_lightning.reproduce.runner import cell_config

    cells = study("official-reuse").cells()
    assert len(cells) == 4 * 2 * 2 * 5 and {c.seed for c in cells} == set(range(5))
    assert {c.task for c in cells} == {"cooperative_navigation"} and {c.algorithm for c in cells} == {"omar", "macql"}
    fresh = [c for c in cells if not c.variant]
    reuse = [c for c in cells if c.variant]
    assert {c.key for c in fresh} <= {c.key for c in study("table3").cells()}  # the fresh cells are Table 3's
    assert {c.variant_name for c in reuse} == {"minibatches=official_reuse"} and len(reuse) == len(fresh)
    root = Path(__file__).resolve().parents[1]
    config = cell_config(reuse[0], root, tmp_path / "run")
    assert config["data"]["minibatches"] == "official_reuse" and config["data"].get("reuse_period", 10) == 10
    callbacks = {cb["class_path"].rsplit(".", 1)[-1]: cb.get("init_args", {}) for cb in config["trainer"]["callbacks"]}
    assert callbacks["EnvEvaluation"]["every_n_updates"] == 10  # the period of the official reuse: its evaluation period
    _tree(tmp_path)
    listing = _reproduce(tmp_path, "official-reuse", "--seeds", "0", "--tiers", "medium", "--list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert len(lines) == 4 and sum("minibatches=official_reuse" in line for line in lines) == 2
    assert all(line.split()[1] == "pending" for line in lines)
    other = study("official-reuse").cells([0], tasks=["predator_prey"])  # the other MPE tasks only when asked
    assert {c.task for c in other} == {"predator_prey"} and len(other) == 4 * 2 * 2
    with pytest.raises(ValueError, match="--tasks: halfcheetah_2x3 not in study 'official-reuse'"):
        study("official-reuse").cells([0], tasks=["halfcheetah_2x3"])
