"""The `omar` command end to end: a short fit writes checkpoints and logs; a resumed run is exact."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from omar_lightning.cli import main
from omar_lightning.data import save_dataset

from conftest import synthetic_dataset, tiny_config

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def read_metrics(run_dir: Path, save_dir: str = "runs/tiny") -> list[dict]:
    (metrics,) = run_dir.glob(f"{save_dir}/logs/version_*/metrics.csv")
    with open(metrics) as f:
        return list(csv.DictReader(f))


def test_fit_through_the_console_script_generates_data_and_writes_checkpoint_and_logs(workdir):
    omar = shutil.which("omar", path=os.path.dirname(sys.executable))
    assert omar, "the console script `omar` is not installed next to this python"
    proc = subprocess.run([omar, "fit", "--config", str(TINY)], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "normalized score" in proc.stdout + proc.stderr
    data = workdir / "data" / "cooperative_navigation" / "random.npz"
    assert data.is_file()
    ckpt = next(workdir.glob("runs/tiny/logs/version_*/checkpoints/last.ckpt"))
    state = torch.load(ckpt, weights_only=False)
    assert state["omar"]["updates"] == 6
    rows = read_metrics(workdir)
    evals = [r for r in rows if r.get("eval/return")]
    assert [r["updates"] for r in evals] == ["0", "3", "6"]  # before the first update, then every 3 updates
    assert all(r["eval/normalized_score"] for r in evals)
    assert any(r.get("critic/cql_penalty") for r in rows)


def _fit(args):
    main(["fit", "--config", str(TINY), "--trainer.enable_model_summary", "false", *args])


def test_resumed_run_ends_with_the_same_parameters_as_an_uninterrupted_one(workdir):
    path = save_dataset(workdir / "d.npz", synthetic_dataset(n=500))
    common = ["--data.path", str(path), "--data.generate", "false"]
    _fit(common + ["--trainer.logger.init_args.save_dir", "full"])
    _fit(common + ["--trainer.logger.init_args.save_dir", "half", "--model.max_updates", "3"])
    half = next(workdir.glob("half/logs/version_*/checkpoints/last.ckpt"))
    # hyperparameters saved in the checkpoint are read back by the CLI: the longer run is asked for explicitly
    _fit(common + ["--trainer.logger.init_args.save_dir", "resumed", "--ckpt_path", str(half), "--model.max_updates", "6"])
    full = torch.load(next(workdir.glob("full/logs/version_*/checkpoints/last.ckpt")), weights_only=False)
    resumed = torch.load(next(workdir.glob("resumed/logs/version_*/checkpoints/last.ckpt")), weights_only=False)
    assert full["omar"]["updates"] == resumed["omar"]["updates"] == 6
    assert full["state_dict"].keys() == resumed["state_dict"].keys()
    for k, v in full["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][k], v, rtol=0, atol=0, msg=k)


def test_bad_setting_in_the_cli_is_named(workdir, capsys):
    with pytest.raises(SystemExit):
        _fit(["--model.tau", "1.5", "--data.generate", "false"])
    err = capsys.readouterr().err
    assert "omar: error: model.tau must be in [0, 1], got 1.5" in err
    assert "Traceback" not in err


def test_missing_dataset_is_named(workdir, capsys):
    with pytest.raises(SystemExit):
        _fit(["--data.path", "absent.npz", "--data.generate", "false"])
    err = capsys.readouterr().err
    assert "omar: error: dataset file not found: absent.npz (data.path)" in err
    assert "Traceback" not in err


def test_resuming_from_a_mid_run_periodic_checkpoint_reproduces_the_uninterrupted_run(workdir):
    path = save_dataset(workdir / "d.npz", synthetic_dataset(n=500))
    config = tiny_config(workdir / "keep_all.yaml", checkpoint_args={"save_top_k": -1})
    common = ["--config", str(config), "--data.path", str(path), "--data.generate", "false", "--trainer.enable_model_summary", "false"]
    main(["fit", *common, "--trainer.logger.init_args.save_dir", "full"])
    (ckpt_dir,) = workdir.glob("full/logs/version_*/checkpoints")
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.ckpt", "updates=2.ckpt", "updates=4.ckpt", "updates=6.ckpt"]
    mid = ckpt_dir / "updates=2.ckpt"
    assert torch.load(mid, weights_only=False)["omar"]["updates"] == 2
    main(["fit", *common, "--trainer.logger.init_args.save_dir", "resumed", "--ckpt_path", str(mid)])

    full = torch.load(ckpt_dir / "last.ckpt", weights_only=False)
    resumed = torch.load(next(workdir.glob("resumed/logs/version_*/checkpoints/last.ckpt")), weights_only=False)
    assert full["omar"]["updates"] == resumed["omar"]["updates"] == 6
    assert full["state_dict"].keys() == resumed["state_dict"].keys()
    for k, v in full["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][k], v, rtol=0, atol=0, msg=k)
    for opt_full, opt_resumed in zip(full["optimizer_states"], resumed["optimizer_states"]):
        for i, state in opt_full["state"].items():
            for name, value in state.items():
                torch.testing.assert_close(opt_resumed["state"][i][name], value, rtol=0, atol=0, msg=name)
    torch.testing.assert_close(resumed["omar"]["rng"]["torch"], full["omar"]["rng"]["torch"], rtol=0, atol=0)
    # the evaluations after the resume point (updates 3 and 6) are the uninterrupted run's; the
    # evaluation before the first update (update 0) is not repeated by the resumed run
    evals = lambda d: {r["updates"]: (r["eval/return"], r["eval/normalized_score"]) for r in read_metrics(workdir, d) if r.get("eval/return")}  # noqa: E731
    assert set(evals("full")) == {"0", "3", "6"} and set(evals("resumed")) == {"3", "6"}
    assert evals("resumed") == {u: v for u, v in evals("full").items() if u != "0"}
