"""The first run (`make run`): the quickstart config writes a medium dataset from the shipped
behaviour snapshots, trains, and ends with a summary against the dataset's behaviour level."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from omar_lightning.data import DatasetError, load_dataset
from omar_lightning.data.collect.snapshots import POLICIES, shipped_snapshots
from omar_lightning.data.collect.tiers import write_snapshot_dataset
from omar_lightning.datamodules import OfflineDataModule

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def test_make_run_is_the_quickstart_config():
    assert "$(BIN)/omar fit --config configs/quickstart.yaml" in (ROOT / "Makefile").read_text()
    config = yaml.safe_load(QUICKSTART.read_text())
    assert config["data"]["task"] == "cooperative_navigation" and config["data"]["tier"] == "medium"
    assert config["model"]["class_path"] == "omar_lightning.OMAR"
    assert {c["class_path"].rsplit(".", 1)[-1] for c in config["trainer"]["callbacks"]} >= {"SoftTargetUpdate", "EnvEvaluation", "UpdateCheckpoint"}


def _episode_scores(ds) -> np.ndarray:
    """Mean over agents of each 25-step episode's summed rewards (the rows are whole episodes in order)."""
    per_step = np.mean(np.stack(ds.rewards), axis=0).astype(np.float64)  # [N]
    return per_step.reshape(-1, 25).sum(1)


def test_a_medium_tier_is_written_from_the_shipped_snapshots(tmp_path):
    folder = shipped_snapshots("cooperative_navigation", {})
    assert folder == POLICIES / "cooperative_navigation" and (folder / "medium.pt").is_file()
    path = write_snapshot_dataset(tmp_path / "m.npz", "cooperative_navigation", "medium", 250, seed=0, reference_episodes=4)
    ds = load_dataset(path)
    meta = ds.meta
    assert ds.num_transitions == 250 and meta["tier"] == "medium" and meta["env_kwargs"] == {}
    assert meta["behaviour"].startswith("MATD3 snapshot omar_lightning/policies/cooperative_navigation/medium.pt with Gaussian noise ")
    assert "omar_lightning/policies/cooperative_navigation/expert.pt without noise (4 episodes each)" in meta["reference"]
    scores = _episode_scores(ds)  # 10 whole episodes
    assert meta["episode_returns"]["count"] == 10
    assert meta["episode_returns"]["mean"] == pytest.approx(scores.mean(), rel=1e-6)
    assert meta["s_expert"] > meta["s_random"]
    assert all(np.abs(a).max() <= 1 for a in ds.actions)
    again = write_snapshot_dataset(tmp_path / "again.npz", "cooperative_navigation", "medium", 250, seed=0, reference_episodes=4)
    assert load_dataset(again).meta["checksum"] == meta["checksum"]  # the same file for the same settings


@pytest.mark.parametrize(
    "tier, env_kwargs, message",
    [
        ("medium_replay", {}, r"tier 'medium_replay' is a training run's replay buffer: create it with 'omar collect' first"),
        ("medium", {"reward": "mpe2"}, r"no shipped medium snapshot of task 'cooperative_navigation' with env_kwargs \{'reward': 'mpe2'\}"),
    ],
)
def test_tiers_that_cannot_be_written_on_first_use_are_one_line(tmp_path, tier, env_kwargs, message):
    dm = OfflineDataModule(tier=tier, path=str(tmp_path / "x.npz"), env_kwargs=env_kwargs, num_transitions=100)
    with pytest.raises(DatasetError, match=message) as error:
        dm.prepare_data()
    assert str(error.value).startswith(f"dataset file not found: {tmp_path / 'x.npz'} (data.path); ")
    assert "\n" not in str(error.value)


def test_the_quickstart_runs_end_to_end_and_ends_with_its_summary(tmp_path):
    omar = shutil.which("omar", path=os.path.dirname(sys.executable))
    assert omar, "the console script `omar` is not installed next to this python"
    small = ["--data.num_transitions", "500", "--data.reference_episodes", "4", "--data.workers", "1", "--data.batch_size", "64",
             "--model.max_updates", "4"]
    proc = subprocess.run([omar, "fit", "--config", str(QUICKSTART), *small], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = tmp_path / "data" / "quickstart" / "cooperative_navigation_medium.npz"
    meta = load_dataset(data).meta
    behaviour = 100 * (meta["episode_returns"]["mean"] - meta["s_random"]) / (meta["s_expert"] - meta["s_random"])
    assert f"(500 transitions; the dataset's behaviour: normalized score {behaviour:.1f})" in proc.stderr
    out = proc.stdout.replace("\r", "\n")
    summary = out[out.index("omar fit: finished at update 4"):].splitlines()
    assert re.fullmatch(rf"  normalized score  final -?[\d.]+, best -?[\d.]+ \(update \d\); dataset's behaviour {behaviour:.1f}", summary[1])
    assert summary[3] == f"  checkpoint        {Path('runs/quickstart/checkpoints/last.ckpt')}"
    assert summary[5] == f"  learning curve    {Path('runs/quickstart/logs/version_0/learning_curve.png')}"
    assert (tmp_path / "runs" / "quickstart" / "checkpoints" / "last.ckpt").is_file()
    assert list((tmp_path / "runs" / "quickstart" / "logs" / "version_0").glob("events.out.tfevents.*"))


def test_the_first_use_file_holds_what_omar_collect_writes(tmp_path):
    from omar_lightning.cli import main

    main(["collect", "dataset", "--task", "cooperative_navigation", "--tier", "medium", "--policy", str(POLICIES / "cooperative_navigation" / "medium.pt"),
          "--size", "150", "--reference-episodes", "3", "--out", str(tmp_path / "collected.npz"), "--no-progress"])
    written = write_snapshot_dataset(tmp_path / "first_use.npz", "cooperative_navigation", "medium", 150, seed=0, reference_episodes=3, workers=2)
    a, b = load_dataset(tmp_path / "collected.npz").meta, load_dataset(written).meta
    assert a["checksum"] == b["checksum"]  # the same arrays
    assert (a["s_random"], a["s_expert"], a["episode_returns"]) == (b["s_random"], b["s_expert"], b["episode_returns"])
