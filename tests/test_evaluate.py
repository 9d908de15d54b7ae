"""`omar evaluate`: summary of a checkpoint's policies, renders, and bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from omar_lightning import OMAR
from omar_lightning.cli import main
from omar_lightning.data import save_dataset
from omar_lightning.envs import task_spec
from omar_lightning.data.format import normalized_score
from omar_lightning.evaluation import policy_returns

from conftest import synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
S_RANDOM, S_EXPERT = -10.0, 30.0  # conftest.synthetic_dataset's reference returns


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 6-update tiny fit; its last checkpoint and logged evaluations."""
    d = tmp_path_factory.mktemp("evaluate")
    data = save_dataset(d / "d.npz", synthetic_dataset(n=500))
    main(["fit", "--config", str(TINY), "--data.path", str(data), "--data.generate", "false",
          "--trainer.enable_model_summary", "false", "--trainer.logger.init_args.save_dir", str(d / "run")])
    (ckpt,) = d.glob("run/logs/version_*/checkpoints/last.ckpt")
    (metrics,) = d.glob("run/logs/version_*/metrics.csv")
    with open(metrics) as f:
        evals = {int(float(r["updates"])): float(r["eval/return"]) for r in csv.DictReader(f) if r.get("eval/return")}
    return {"dir": d, "ckpt": ckpt, "data": data, "evals": evals}


def evaluate(capsys, *args: str) -> tuple[dict, str]:
    main(["evaluate", *args])
    out = capsys.readouterr().out
    summary_path = next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("summary "))
    return json.loads(Path(summary_path).read_text()), out


def test_summary_matches_a_direct_evaluation_of_the_checkpoint(run, tmp_path, capsys):
    summary, out = evaluate(capsys, "--ckpt_path", str(run["ckpt"]), "--episodes", "4", "--seed", "7", "--out", str(tmp_path / "s.json"))
    model = OMAR.load_from_checkpoint(run["ckpt"], map_location="cpu", weights_only=True)
    direct = policy_returns(model.actor, "cooperative_navigation", {}, 4, 7)
    assert summary["returns"] == [float(r) for r in direct]
    assert summary["return_mean"] == pytest.approx(direct.mean(), rel=1e-12)
    assert summary["return_std"] == pytest.approx(direct.std(), rel=1e-12)
    norm = normalized_score(direct, S_RANDOM, S_EXPERT)
    assert summary["normalized_scores"] == pytest.approx(list(norm), rel=1e-12)
    assert summary["normalized_score_mean"] == pytest.approx(norm.mean(), rel=1e-12)
    assert summary["normalized_score_std"] == pytest.approx(norm.std(), rel=1e-12)
    assert summary["checkpoint"] == str(run["ckpt"].resolve())
    assert (summary["task"], summary["env_kwargs"], summary["updates"], summary["episodes"]) == ("cooperative_navigation", {}, 6, 4)
    assert summary["seeds"] == [7, 8, 9, 10]
    assert (summary["s_random"], summary["s_expert"], summary["renders"]) == (S_RANDOM, S_EXPERT, [])
    assert f"return {direct.mean():.2f} ± {direct.std():.2f} over 4 episodes" in out
    assert f"normalized score {norm.mean():.1f} ± {norm.std():.1f}" in out


def test_defaults_replay_the_runs_final_evaluation(run, capsys):
    summary, _ = evaluate(capsys, "--ckpt_path", str(run["ckpt"]))
    assert summary["episodes"] == 2 and summary["seeds"] == [1_000_000, 1_000_001]  # data.eval_episodes, data.eval_seed
    assert summary["return_mean"] == pytest.approx(run["evals"][6], rel=1e-6)  # the run's eval/return after update 6
    default_out = run["ckpt"].with_name("last.eval.json")
    assert json.loads(default_out.read_text()) == summary


def test_gif_renders_the_first_episodes_frame_by_frame(run, tmp_path, capsys):
    summary, out = evaluate(capsys, "--ckpt_path", str(run["ckpt"]), "--episodes", "3", "--seed", "5",
                            "--out", str(tmp_path / "summary.json"), "--render", "gif", "--render-episodes", "2")
    steps = task_spec("cooperative_navigation").episode_length
    assert [r["seed"] for r in summary["renders"]] == [5, 6]
    for k, r in enumerate(summary["renders"]):
        path = Path(r["path"])
        assert path == tmp_path / f"summary_seed{5 + k}.gif" and path.is_file()
        frames = iio.imread(path, index=None)
        assert frames.shape == (steps + 1, 700, 700, 3) and r["frames"] == steps + 1  # initial state and every step
        assert not np.array_equal(frames[1], frames[-1])  # the agents move
        # the same episodes as scored (played one at a time instead of batched: rounding differs)
        assert r["return"] == pytest.approx(summary["returns"][k], rel=1e-6)
        assert f"render {path} ({steps + 1} frames" in out


def test_mp4_needs_an_encoder_or_is_written(run, tmp_path, capsys):
    args = ["--ckpt_path", str(run["ckpt"]), "--episodes", "1", "--out", str(tmp_path / "s.json"), "--render", "mp4"]
    if find_spec("imageio_ffmpeg") is None and find_spec("av") is None:
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", *args])
        assert exit_info.value.code == 2
        assert capsys.readouterr().err == "omar: error: --render mp4 needs an MP4 encoder: pip install imageio-ffmpeg (or av); --render gif needs none\n"
        assert not (tmp_path / "s.json").exists()  # failed before playing
    else:
        summary, _ = evaluate(capsys, *args)
        assert iio.imread(summary["renders"][0]["path"], index=None).shape[0] == summary["renders"][0]["frames"]


def test_checkpoint_without_evaluation_record_reads_reference_returns_from_its_dataset(run, tmp_path, capsys):
    checkpoint = torch.load(run["ckpt"], weights_only=True)
    assert checkpoint["OfflineDataModule"]["evaluation"]["s_expert"] == S_EXPERT
    del checkpoint["OfflineDataModule"]["evaluation"]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    summary, _ = evaluate(capsys, "--ckpt_path", str(old), "--out", str(tmp_path / "s.json"))
    reference, _ = evaluate(capsys, "--ckpt_path", str(run["ckpt"]), "--out", str(tmp_path / "r.json"))
    assert {k: v for k, v in summary.items() if k != "checkpoint"} == {k: v for k, v in reference.items() if k != "checkpoint"}


def _error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    return err.strip()


def test_bad_input_is_one_line_and_status_2(run, tmp_path, capsys):
    assert _error(capsys, "--ckpt_path", str(tmp_path / "absent.ckpt")) == f"omar: error: checkpoint not found: {tmp_path / 'absent.ckpt'} (--ckpt_path)"
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    assert "cannot read checkpoint" in _error(capsys, "--ckpt_path", str(tmp_path / "text.ckpt"))
    (tmp_path / "empty.ckpt").write_bytes(b"")
    assert _error(capsys, "--ckpt_path", str(tmp_path / "empty.ckpt")).endswith("the file is empty")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(run["ckpt"].read_bytes()[:5000])
    assert "cannot read checkpoint" in _error(capsys, "--ckpt_path", str(truncated))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.ckpt")
    assert "is not a checkpoint of omar fit" in _error(capsys, "--ckpt_path", str(tmp_path / "other.ckpt"))
    assert _error(capsys, "--ckpt_path", str(tmp_path)).startswith("omar: error: not a checkpoint file")
    assert "--render-episodes (3) must be at most --episodes (2)" in _error(
        capsys, "--ckpt_path", str(run["ckpt"]), "--render", "gif", "--render-episodes", "3", "--out", str(tmp_path / "s.json"))


def test_console_script_dispatches_evaluate(tmp_path):
    omar = shutil.which("omar", path=os.path.dirname(sys.executable))
    assert omar, "the console script `omar` is not installed next to this python"
    proc = subprocess.run([omar, "evaluate", "--ckpt_path", "absent.ckpt"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "omar: error: checkpoint not found: absent.ckpt (--ckpt_path)\n"


def test_a_checkpoint_of_update_version_1_evaluates_as_before_and_is_not_resumed(run, tmp_path, capsys):
    """Version-1 checkpoints hold one input norm per twin critic ([2 * A * features]): their
    policies evaluate exactly as before (the critics keep Q1's norms), resuming them is refused."""
    from omar_lightning.evaluate_cli import load_checkpoint

    ckpt = torch.load(run["ckpt"], map_location="cpu", weights_only=True)
    old = {**ckpt, "state_dict": dict(ckpt["state_dict"]), "omar": {k: v for k, v in ckpt["omar"].items() if k != "update_version"}}
    for prefix in ("critic", "critic_target"):
        for name in ("weight", "bias", "running_mean", "running_var"):
            key = f"{prefix}.net.norm.{name}"
            old["state_dict"][key] = torch.cat([ckpt["state_dict"][key], ckpt["state_dict"][key] * 1.5 + 0.1])  # twin 2's own norm
    path = tmp_path / "version1.ckpt"
    torch.save(old, path)
    model, _ = load_checkpoint(path)
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(model.state_dict()[k], v), k
    new_summary, _ = evaluate(capsys, "--ckpt_path", str(run["ckpt"]), "--episodes", "3", "--out", str(tmp_path / "a.json"))
    old_summary, _ = evaluate(capsys, "--ckpt_path", str(path), "--episodes", "3", "--out", str(tmp_path / "b.json"))
    assert old_summary["returns"] == new_summary["returns"]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(TINY), "--data.path", str(run["data"]), "--data.generate", "false", "--ckpt_path", str(path),
              "--trainer.enable_model_summary", "false", "--trainer.logger.init_args.save_dir", str(tmp_path / "resume")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("omar: error: ") and "was written by update version 1 (one input BatchNorm per twin critic)" in err and "start the run afresh" in err
