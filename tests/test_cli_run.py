"""What a fit through `omar` guarantees: required callbacks, resume checks, logs indexed by update
and continued on resume, the progress bar, the start and end report, and one-line errors."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from omar_lightning.cli import COMMANDS, main
from omar_lightning.data import save_dataset
from omar_lightning.envs import task_spec

from conftest import TINY, synthetic_dataset, tiny_config
from test_cli_errors import run_omar  # (exit status, the only error line) of an in-process `omar`

OMAR_SCRIPT = shutil.which("omar", path=os.path.dirname(sys.executable))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def dataset(path: Path, task: str = "cooperative_navigation", n: int = 200, seed: int = 0, **env_kwargs) -> Path:
    """A synthetic dataset of ``task`` (with ``env_kwargs``) with the environment's agent names and sizes."""
    spec = task_spec(task, **env_kwargs)
    ds = synthetic_dataset(n=n, obs_dims=spec.obs_dims, act_dims=spec.act_dims, seed=seed, task=task)
    ds.meta.update(agent_names=list(spec.agent_names), env_kwargs=dict(env_kwargs))
    return save_dataset(path, ds)


def fit(*args: str) -> None:
    main(["fit", "--data.generate", "false", *args])


def read_rows(log_dir: Path) -> list[dict]:
    with (log_dir / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def row_set(log_dir: Path) -> list[tuple]:
    """The rows of metrics.csv in a canonical order (an evaluation row and the training row of
    the same update may be written in either order)."""
    return sorted(tuple(sorted(r.items())) for r in read_rows(log_dir))


def without(config: dict, name: str) -> dict:
    config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"] if not c["class_path"].endswith(name)]
    return config


# ------------------------------------------------------------------ required callbacks


def test_replacing_the_callback_list_stops_with_the_way_to_add_to_it(capsys, workdir):
    data = dataset(workdir / "d.npz")
    status, line = run_omar(capsys, "fit", "--config", str(TINY), "--data.path", str(data), "--trainer.logger", "false",
                            "--trainer.callbacks", "pytorch_lightning.callbacks.LearningRateMonitor")
    assert status == 2
    assert line.startswith("trainer.callbacks lacks SoftTargetUpdate (the target networks follow the online ones), EnvEvaluation "
                           "(the evaluation curve), UpdateCheckpoint (checkpoints that --ckpt_path last finds)"), line
    for name in ("SoftTargetUpdate", "EnvEvaluation", "UpdateCheckpoint"):
        assert f"--trainer.callbacks+=omar_lightning.callbacks.{name}" in line
    assert not (workdir / "runs").exists()  # stopped before training


def test_a_bare_model_without_config_stops_with_the_same_line(capsys, workdir):
    data = dataset(workdir / "d.npz")
    status, line = run_omar(capsys, "fit", "--model", "omar_lightning.OMAR", "--data.path", str(data), "--data.generate", "false")
    assert status == 2 and line.startswith("trainer.callbacks lacks SoftTargetUpdate") and "--trainer.callbacks+=" in line


def test_the_advised_addition_restores_the_missing_callback(capsys, workdir):
    data = dataset(workdir / "d.npz")
    config = without(yaml.safe_load(TINY.read_text()), "SoftTargetUpdate")
    (workdir / "no_target.yaml").write_text(yaml.safe_dump(config))
    common = ["--config", "no_target.yaml", "--data.path", str(data), "--model.max_updates", "2"]
    status, line = run_omar(capsys, "fit", *common)
    assert status == 2 and line.startswith("trainer.callbacks lacks SoftTargetUpdate (") and "EnvEvaluation" not in line
    # As advised, with rho 1: after every update the targets are copies of the online networks.
    fit(*common, "--trainer.callbacks+=omar_lightning.callbacks.SoftTargetUpdate", "--trainer.callbacks.rho=1.0")
    (ckpt,) = workdir.glob("runs/tiny/logs/version_0/checkpoints/last.ckpt")
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    params = [k for k in state if k.startswith(("actor.", "critic.")) and not re.search(r"running_|num_batches", k)]
    assert params
    for key in params:
        target = key.replace("actor.", "actor_target.", 1) if key.startswith("actor.") else key.replace("critic.", "critic_target.", 1)
        torch.testing.assert_close(state[target], state[key], rtol=0, atol=0, msg=key)


# ------------------------------------------------------------------ one-line errors


def test_max_steps_points_at_max_updates(capsys, workdir):
    data = dataset(workdir / "d.npz")
    status, line = run_omar(capsys, "fit", "--config", str(TINY), "--data.path", str(data), "--trainer.max_steps", "10")
    assert status == 2 and line.startswith("trainer.max_steps (10) counts optimizer steps") and "model.max_updates" in line


def test_batch_larger_than_the_dataset_is_one_line(capsys, workdir):
    data = dataset(workdir / "d.npz", n=200)
    status, line = run_omar(capsys, "fit", "--config", str(TINY), "--data.path", str(data), "--data.generate", "false",
                            "--trainer.logger", "false", "--data.batch_size", "512")
    assert (status, line) == (2, f"data.batch_size (512) is larger than the dataset {data} (200 transitions): "
                                 "each agent's minibatch is drawn without replacement; give a smaller data.batch_size or a larger dataset")


def test_a_dataset_given_as_checkpoint_is_one_line(capsys, workdir):
    data = dataset(workdir / "d.npz")
    status, line = run_omar(capsys, "evaluate", "--ckpt_path", str(data))
    assert status == 2 and line.startswith(f"{data} is a dataset file (.npz), not a checkpoint (--ckpt_path)")
    status, line = run_omar(capsys, "fit", "--config", str(TINY), "--data.path", str(data), "--data.generate", "false",
                            "--trainer.logger", "false", "--ckpt_path", str(data))
    assert status == 2 and line == f"{data} is a dataset file (.npz), not a checkpoint (ckpt_path): give a checkpoint written by omar fit"


def test_the_error_is_the_first_line_on_stderr(workdir):
    assert OMAR_SCRIPT, "the console script `omar` is not installed next to this python"
    data = dataset(workdir / "d.npz", n=100)
    proc = subprocess.run([OMAR_SCRIPT, "fit", "--config", str(TINY), "--data.path", str(data), "--data.generate", "false",
                           "--data.batch_size", "101"], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"omar: error: data.batch_size (101) is larger than the dataset {data} (100 transitions): "
                                        "each agent's minibatch is drawn without replacement; give a smaller data.batch_size or a larger dataset"]


# ------------------------------------------------------------------ resume


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Data and the last checkpoint (fixed directory) of a 2-update tiny run."""
    d = tmp_path_factory.mktemp("resume")
    data = dataset(d / "d.npz")
    old = os.getcwd()
    os.chdir(d)
    try:
        config = tiny_config(d / "c.yaml", checkpoint_dir=d / "ckpt")
        fit("--config", str(config), "--data.path", str(data), "--model.max_updates", "2")
    finally:
        os.chdir(old)
    return {"dir": d, "data": data, "config": config, "ckpt": d / "ckpt" / "last.ckpt"}


def resume(capsys, trained, *args: str) -> tuple[int, str]:
    return run_omar(capsys, "fit", "--config", str(trained["config"]), "--data.path", str(trained["data"]), "--data.generate", "false",
                    "--trainer.logger", "false", "--ckpt_path", str(trained["ckpt"]), "--model.max_updates", "3", *args)


def test_resume_refuses_another_algorithm(capsys, trained, workdir):
    status, line = resume(capsys, trained, "--model", "omar_lightning.MATD3BC")
    assert status == 2
    assert line.startswith(f"--ckpt_path {trained['ckpt']} is a checkpoint of another run: algorithm OMAR, not MATD3BC (model.class_path).")
    assert line.endswith("or give --allow_mismatched_resume true to continue from this checkpoint on purpose")


def test_resume_refuses_another_dataset_unless_allowed(capsys, trained, workdir):
    other = dataset(workdir / "other.npz", seed=1)
    status, line = resume(capsys, trained, "--data.path", str(other))
    assert status == 2
    assert re.search(rf"another run: dataset {re.escape(str(trained['data']))} \(checksum [0-9a-f]{{12}}\), not {re.escape(str(other))} "
                     r"\(checksum [0-9a-f]{12}, data.path\)\.", line), line
    shutil.copy(trained["ckpt"], workdir / "start.ckpt")
    config = tiny_config(workdir / "c.yaml", checkpoint_dir=workdir / "allowed")
    with pytest.warns(UserWarning, match="--allow_mismatched_resume: continuing from start.ckpt, a checkpoint of dataset "):
        fit("--config", str(config), "--data.path", str(other), "--trainer.logger", "false", "--ckpt_path", "start.ckpt",
            "--model.max_updates", "3", "--allow_mismatched_resume", "true")
    assert torch.load(workdir / "allowed" / "last.ckpt", weights_only=True)["omar"]["updates"] == 3


def test_resume_refuses_another_environment_variant_and_another_task(capsys, workdir):
    runs = {}
    for name, task, kwargs in (("n2", "cooperative_navigation", {"num_agents": 2}), ("tag", "predator_prey", {})):
        data = dataset(workdir / f"{name}.npz", task=task, **kwargs)
        config = tiny_config(workdir / f"{name}.yaml", checkpoint_dir=workdir / name)
        cfg = yaml.safe_load(config.read_text())
        cfg["data"].update(task=task, env_kwargs=kwargs)
        config.write_text(yaml.safe_dump(cfg))
        fit("--config", str(config), "--data.path", str(data), "--model.max_updates", "2", "--trainer.logger", "false")
        runs[name] = workdir / name / "last.ckpt"
    base = dataset(workdir / "d.npz")
    common = ["fit", "--config", str(TINY), "--data.path", str(base), "--data.generate", "false", "--trainer.logger", "false"]
    status, line = run_omar(capsys, *common, "--ckpt_path", str(runs["n2"]))
    assert status == 2 and "another run: environment variant {'num_agents': 2}, not {} (data.env_kwargs)" in line, line
    status, line = run_omar(capsys, *common, "--ckpt_path", str(runs["tag"]))
    assert status == 2 and "another run: task 'predator_prey', not 'cooperative_navigation' (data.task)" in line, line


def test_checkpoints_without_the_run_record_are_checked_on_what_they_hold(capsys, trained, workdir):
    from omar_lightning.resume import RECORD_KEY

    state = torch.load(trained["ckpt"], weights_only=True)
    assert state[RECORD_KEY]["algorithm"] == "OMAR" and state[RECORD_KEY]["task"] == "cooperative_navigation"
    del state[RECORD_KEY]
    torch.save(state, workdir / "old.ckpt")
    status, line = run_omar(capsys, "fit", "--config", str(trained["config"]), "--data.path", str(trained["data"]), "--data.generate", "false",
                            "--trainer.logger", "false", "--ckpt_path", "old.ckpt", "--model", "omar_lightning.MATD3BC")
    assert status == 2 and "another run: algorithm OMAR, not MATD3BC" in line


# ------------------------------------------------------------------ logs


def test_logs_are_indexed_by_update(workdir):
    data = dataset(workdir / "d.npz", n=500)
    fit("--config", str(TINY), "--data.path", str(data), "--trainer.log_every_n_steps", "2")
    rows = read_rows(workdir / "runs" / "tiny" / "logs" / "version_0")
    training = [r for r in rows if r.get("critic/loss")]
    evals = [r for r in rows if r.get("eval/return")]
    assert [int(r["step"]) for r in training] == [2, 4, 6]
    assert [(int(r["step"]), int(float(r["updates"]))) for r in evals] == [(0, 0), (3, 3), (6, 6)]  # the evaluation before the first update, then every 3
    assert all(int(r["step"]) == int(float(r["updates"])) for r in rows)


def _scalars(log_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    # by step: a resumed run writes a second event file, and files created within the same second
    # are read in the order of their names' process ids, not of their creation
    return sorted((e.step, e.value) for e in acc.Scalars(tag))


def test_a_resumed_run_continues_its_own_logs(workdir):
    data = dataset(workdir / "d.npz", n=500)
    for name in ("full", "split"):
        config = tiny_config(workdir / f"{name}.yaml", checkpoint_dir=workdir / name / "ckpt", checkpoint_args={"save_top_k": -1})
        cfg = yaml.safe_load(config.read_text())
        cfg["trainer"]["logger"]["init_args"]["save_dir"] = str(workdir / name)
        config.write_text(yaml.safe_dump(cfg))
    fit("--config", "full.yaml", "--data.path", str(data))
    fit("--config", "split.yaml", "--data.path", str(data), "--model.max_updates", "3")
    fit("--config", "split.yaml", "--data.path", str(data), "--ckpt_path", "last")
    assert sorted(p.name for p in (workdir / "split" / "logs").iterdir()) == ["version_0"]
    full, split = (workdir / name / "logs" / "version_0" for name in ("full", "split"))
    assert row_set(split) == row_set(full)  # every row once, with the uninterrupted run's values
    assert [s for s, _ in _scalars(split, "critic/loss")] == [1, 2, 3, 4, 5, 6]
    assert _scalars(split, "eval/normalized_score") == _scalars(full, "eval/normalized_score")
    # Resuming from an earlier checkpoint drops the rows logged after it, then logs them again.
    fit("--config", "split.yaml", "--data.path", str(data), "--ckpt_path", str(workdir / "split" / "ckpt" / "updates=2.ckpt"))
    assert row_set(split) == row_set(full)
    assert [s for s, _ in _scalars(split, "critic/loss")] == [1, 2, 3, 4, 5, 6]


def test_a_resume_into_another_log_folder_starts_a_log_there(workdir):
    data = dataset(workdir / "d.npz", n=500)
    config = tiny_config(workdir / "c.yaml", checkpoint_dir=workdir / "ckpt")
    fit("--config", str(config), "--data.path", str(data), "--model.max_updates", "3")
    fit("--config", str(config), "--data.path", str(data), "--ckpt_path", "last", "--trainer.logger.init_args.save_dir", "other")
    rows = read_rows(workdir / "other" / "logs" / "version_0")
    assert min(int(r["step"]) for r in rows) == 4 and max(int(r["step"]) for r in rows) == 6


# ------------------------------------------------------------------ what a fit prints


def test_progress_bar_report_and_learning_curve(capsys, workdir):
    data = dataset(workdir / "d.npz", n=500)
    fit("--config", str(TINY), "--data.path", str(data), "--trainer.enable_progress_bar", "true")
    captured = capsys.readouterr()
    out, err = captured.out.replace("\r", "\n"), captured.err
    # the bar counts updates against model.max_updates, with elapsed<remaining and the latest evaluation
    assert re.search(r"updates: 100%\|.*\| 6/6 \[\d\d:\d\d<\d\d:\d\d, .*update/s, return=[\d.]+, score=[\d.-]+\]", out), out
    assert "/?" not in out and "v_num" not in out and "Epoch 0" not in out
    for noise in ("💡", "litlogger", "FLOPs", "LeafSpec", "GPU available: False", "Seed set to"):
        assert noise not in out + err, noise
    assert err.splitlines()[0] == f"omar fit: OMAR on cooperative_navigation, random tier: {data} (500 transitions; no whole episode in it)"
    log_dir = workdir / "runs" / "tiny" / "logs" / "version_0"
    evals = [(int(r["step"]), float(r["eval/normalized_score"]), float(r["eval/return"])) for r in read_rows(log_dir) if r.get("eval/return")]
    best = max(evals, key=lambda e: e[1])
    summary = out[out.index("omar fit: finished"):].splitlines()
    assert summary[0].startswith("omar fit: finished at update 6 (6 updates in ")
    assert summary[1] == f"  normalized score  final {evals[-1][1]:.1f}, best {best[1]:.1f} (update {best[0]})"
    assert summary[2] == f"  return            final {evals[-1][2]:.2f}, best {best[2]:.2f} (S_random -10.00, S_expert 30.00)"
    assert summary[3] == f"  checkpoint        {Path('runs/tiny/logs/version_0/checkpoints/last.ckpt')}"
    assert summary[4] == f"  logs              {Path('runs/tiny/logs/version_0')} (TensorBoard: tensorboard --logdir {Path('runs/tiny/logs')})"
    assert summary[5] == f"  learning curve    {Path('runs/tiny/logs/version_0/learning_curve.png')}"
    assert (log_dir / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(log_dir.glob("events.out.tfevents.*"))


def test_tensorboard_is_one_flag_away(workdir):
    data = dataset(workdir / "d.npz", n=500)
    fit("--config", str(TINY), "--data.path", str(data), "--model.max_updates", "2", "--tensorboard", "false")
    log_dir = workdir / "runs" / "tiny" / "logs" / "version_0"
    assert (log_dir / "metrics.csv").is_file() and not list(log_dir.glob("events.out.tfevents.*"))


# ------------------------------------------------------------------ omar --help


def test_help_lists_every_command_in_one_line_each(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  ")]
    assert listed == ["fit", "validate", "test", "evaluate", "collect", "datasets", "reproduce", "report"] == list(COMMANDS)
    for command in listed:  # each is a command that answers --help
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0, command
        assert capsys.readouterr().out.strip(), command


def test_predict_is_not_a_command(capsys):
    status, line = run_omar(capsys, "predict")
    assert status == 2 and "predict" in line


def test_help_and_no_command_do_not_load_torch_or_lightning():
    code = ("import sys\nfrom omar_lightning.cli import main\nfor args in (['--help'], []):\n    try:\n        main(args)\n"
            "    except SystemExit as e:\n        print(e.code)\nprint(sorted(m for m in ('torch', 'pytorch_lightning', 'numpy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-3:] == ["0", "2", "[]"]
    assert "commands:" in proc.stderr  # no command: the list, on stderr, status 2


# ------------------------------------------------------------------ progress of dataset collection

BAR = r"\| {n}/{n} \[\d\d:\d\d<\d\d:\d\d, "  # tqdm: done/total [elapsed<remaining, rate]


def test_dataset_collection_shows_progress_with_total_and_time_left(capsys, tmp_path):
    from omar_lightning.data.collect.snapshots import POLICIES

    main(["collect", "dataset", "--task", "cooperative_navigation", "--tier", "medium", "--policy", str(POLICIES / "cooperative_navigation" / "medium.pt"),
          "--size", "100", "--reference-episodes", "3", "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err.replace("\r", "\n")
    assert re.search(r"episodes: 100%\|.*" + BAR.format(n=4), err), err  # the tier's 4 episodes
    assert len(re.findall(r"episodes: 100%\|.*" + BAR.format(n=3), err)) == 2, err  # S_random's and S_expert's episodes


def test_behaviour_training_shows_progress_with_total_and_time_left(capsys, tmp_path):
    settings = ["hidden_dim=16", "batch_size=32", "start_steps=100", "update_every=10", "num_envs=2", "eval_episodes=2"]
    main(["collect", "train", "--task", "cooperative_navigation", "--steps", "200", "--eval-every", "100", "--out", str(tmp_path / "b"),
          *(a for s in settings for a in ("--set", s))])
    err = capsys.readouterr().err.replace("\r", "\n")
    assert re.search(r"MATD3 cooperative_navigation: 100%\|.*\| 200/200 \[\d\d:\d\d<\d\d:\d\d, ", err), err
