"""Bad input through the `omar` command: one line `omar: error: ...` naming the setting or file, no traceback."""

import os
import re

import numpy as np
import pytest
import torch

from omar_lightning.cli import main, one_line
from omar_lightning.data import save_dataset

from conftest import TINY, synthetic_dataset, tiny_config


def run_omar(capsys, *args):
    """Run ``omar`` in-process; return (exit status, the error line) after checking it is the only one."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("omar: error: ")]
    assert len(lines) == 1, err
    assert "\n" not in lines[0]
    return exit_info.value.code, lines[0][len("omar: error: ") :]


def fit_args(data, *more):
    return ["fit", "--config", str(TINY), "--data.path", str(data), "--data.generate", "false", "--trainer.logger", "false",
            "--trainer.enable_model_summary", "false", *more]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def data(workdir):
    return save_dataset(workdir / "d.npz", synthetic_dataset(n=200))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A dataset and the last checkpoint of a 2-update run on it."""
    d = tmp_path_factory.mktemp("trained")
    path = save_dataset(d / "d.npz", synthetic_dataset(n=200))
    old = os.getcwd()
    os.chdir(d)
    try:
        main(["fit", "--config", str(TINY), "--data.path", str(path), "--data.generate", "false", "--model.max_updates", "2",
              "--trainer.enable_model_summary", "false"])
    finally:
        os.chdir(old)
    return path, next(d.glob("runs/tiny/logs/version_*/checkpoints/last.ckpt"))


# ------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.tau", "abc"], "model.tau: expected a float, got abc"),
        (["--model.tau", "1.5"], "model.tau must be in [0, 1], got 1.5"),
        (["--model.critic_lr", "-0.1"], "model.critic_lr must be finite and > 0, got -0.1"),
        (["--model.cql_policy_samples", "true", "--model.cql_policy_noise", "0"], "model.cql_policy_noise must be finite and > 0, got 0.0"),
        (["--model.refinement.sampler", "annealing"], "model.refinement.sampler: expected one of ['gaussian', 'cem', 'random'], got annealing"),
        (["--model.refinement.samples", "0"], "refinement.samples must be >= 1, got 0"),
        (["--model.hidden", "8"], "model: option 'hidden' is not accepted"),
        (["--data.task", "chess"], "data.task: unknown task 'chess'; known tasks: cooperative_navigation, halfcheetah_2x3, predator_prey, world"),
        (["--data.batch_size", "many"], "data.batch_size: expected a int, got many"),
        (["--data.batch_size", "0"], "data.batch_size must be >= 1, got 0"),
        (["--data.seed", "-1"], "data.seed must be >= 0, got -1"),
        (["--data.env_kwargs", "{num_agents: 9}"], "data.env_kwargs: num_agents must be in [1, 5], got 9"),
        (["--trainer.devices", "0"], "trainer: `Trainer(devices='0')` value is not a valid input using cpu accelerator."),
        (["--trainer.max_epochs", "forever"], "trainer.max_epochs: expected a int, got forever"),
    ],
)
def test_bad_setting_is_one_line(capsys, data, args, message):
    status, line = run_omar(capsys, *fit_args(data, *args))
    assert (status, line) == (2, message)


@pytest.mark.parametrize(
    "callback, key, value, message",
    [
        ("SoftTargetUpdate", "rho", 0.0, "SoftTargetUpdate.rho must be in (0, 1], got 0.0"),
        ("EnvEvaluation", "every_n_updates", 0, "EnvEvaluation.every_n_updates must be >= 1, got 0"),
        ("UpdateCheckpoint", "every_n_updates", -2, "UpdateCheckpoint.every_n_updates must be >= 1, got -2"),
    ],
)
def test_bad_callback_setting_in_a_config_is_one_line(capsys, data, callback, key, value, message):
    import yaml

    config = yaml.safe_load(TINY.read_text())
    for cb in config["trainer"]["callbacks"]:
        if cb["class_path"].endswith(callback):
            cb["init_args"][key] = value
    path = data.parent / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert run_omar(capsys, "fit", "--config", str(path), "--data.path", str(data)) == (2, message)


def test_missing_config_file_and_subcommand(capsys, workdir):
    assert run_omar(capsys, "fit", "--config", "nowhere.yaml") == (2, f"config: file does not exist: '{workdir / 'nowhere.yaml'}'")
    status, line = run_omar(capsys, "train")
    assert status == 2 and "train" in line


def test_help_still_works(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0 and "--model" in capsys.readouterr().out


# ------------------------------------------------------------------ dataset files


def _written(workdir, name, **change):
    ds = synthetic_dataset(n=200, **change.pop("shape", {}))
    for field, (agent, fn) in change.items():
        getattr(ds, field)[agent] = fn(getattr(ds, field)[agent])
    return save_dataset(workdir / name, ds)


def _rewrite(src, dst, key, fn):
    with np.load(src) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[key] = fn(arrays[key])
    with open(dst, "wb") as f:
        np.savez(f, **arrays)
    return dst


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d, w: (w / "cut.npz").write_bytes(d.read_bytes()[:5000]) and w / "cut.npz",
         r"cut.npz: not a readable dataset file \(truncated or corrupt\?\): BadZipFile"),
        (lambda d, w: _rewrite(d, w / "int.npz", "agent_0/dones", lambda x: x.astype(np.int64)),
         r"int.npz: 'agent_0/dones' has dtype int64, expected float32 \(float64 is converted\)"),
        (lambda d, w: _rewrite(d, w / "nan.npz", "agent_1/rewards", lambda x: np.where(np.arange(len(x)) == 42, np.nan, x).astype(np.float32)),
         r"nan.npz: 'agent_1/rewards' contains NaN or inf \(first at row 42\)"),
        (lambda d, w: _rewrite(d, w / "shape.npz", "agent_2/obs", lambda x: x[:, :10]),
         r"shape.npz: 'agent_2/next_obs' has 18 features but 'agent_2/obs' has 10"),
        (lambda d, w: save_dataset(w / "two.npz", synthetic_dataset(n=50, obs_dims=(18, 18), act_dims=(2, 2))),
         r"two.npz: agents \['agent_0', 'agent_1'\] differ from the task's \['agent_0', 'agent_1', 'agent_2'\] \(data.task 'cooperative_navigation'"),
        (lambda d, w: save_dataset(w / "tag.npz", synthetic_dataset(n=50, task="predator_prey")),
         r"tag.npz: dataset is for task 'predator_prey' but data.task is 'cooperative_navigation'"),
        (lambda d, w: save_dataset(w / "wide.npz", synthetic_dataset(n=50, obs_dims=(20, 20, 20))),
         r"wide.npz: observation/action sizes .* differ from the task's"),
        (lambda d, w: w / "absent.npz", r"dataset file not found: absent.npz \(data.path\)"),
        (lambda d, w: w, r"is a directory, not a dataset file"),
    ],
    ids=["truncated", "int-dtype", "nan", "shape", "agent-count", "other-task", "obs-size", "missing", "directory"],
)
def test_bad_dataset_is_one_line(capsys, data, workdir, make, message):
    bad = make(data, workdir)
    status, line = run_omar(capsys, *fit_args(data, "--data.path", os.path.relpath(bad, workdir)))
    assert status == 2
    assert re.search(message, line), line


def test_evaluation_of_a_bad_dataset_is_one_line(capsys, data, workdir):
    bad = _rewrite(data, workdir / "nan.npz", "agent_0/obs", lambda x: np.full_like(x, np.inf))
    status, line = run_omar(capsys, "validate", "--config", str(TINY), "--data.path", str(bad), "--trainer.logger", "false")
    assert status == 2 and line.endswith("nan.npz: 'agent_0/obs' contains NaN or inf (first at row 0)")


# ------------------------------------------------------------------ checkpoints


def test_missing_truncated_and_foreign_checkpoints_are_one_line(capsys, trained, workdir):
    data, ckpt = trained
    validate = ["validate", "--config", str(TINY), "--data.path", str(data), "--trainer.logger", "false"]
    assert run_omar(capsys, *validate, "--ckpt_path", "gone.ckpt") == (2, "checkpoint file not found: gone.ckpt (ckpt_path)")
    cut = workdir / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[:3000])
    status, line = run_omar(capsys, *validate, "--ckpt_path", str(cut))
    assert status == 2 and line.startswith(f"{cut}: not a readable checkpoint (truncated or corrupt?): RuntimeError: PytorchStreamReader")
    torch.save({"weights": torch.ones(2)}, workdir / "foreign.ckpt")
    assert run_omar(capsys, *validate, "--ckpt_path", "foreign.ckpt") == (2, "foreign.ckpt: not a Lightning checkpoint (no 'state_dict')")


def test_checkpoint_of_other_settings_is_one_line(capsys, trained, workdir):
    data, ckpt = trained
    status, line = run_omar(capsys, "validate", "--config", str(TINY), "--data.path", str(data), "--trainer.logger", "false",
                            "--model.hidden_dim", "32", "--ckpt_path", str(ckpt))
    assert status == 2
    # the first tensor whose shape differs, and the settings that decide shapes (its name may change with the networks)
    assert re.fullmatch(
        rf"checkpoint {re.escape(str(ckpt))} does not fit this model: '[\w.]+' has shape \[[\d, ]*16[\d, ]*\] there but \[[\d, ]*32[\d, ]*\] "
        r"with these settings \(model.hidden_dim, model.input_norm, data.task and data.env_kwargs must be those of the run that wrote it\)",
        line,
    ), line


def test_checkpoint_with_non_finite_weights_is_refused(capsys, trained, workdir):
    data, ckpt = trained
    state = torch.load(ckpt, weights_only=False)
    key = next(k for k in state["state_dict"] if k.startswith("critic."))
    state["state_dict"][key].view(-1)[0] = float("nan")
    torch.save(state, workdir / "nan.ckpt")
    status, line = run_omar(capsys, "validate", "--config", str(TINY), "--data.path", str(data), "--trainer.logger", "false",
                            "--ckpt_path", "nan.ckpt")
    assert (status, line) == (2, f"checkpoint nan.ckpt: '{key}' is not finite (written after training diverged?)")


def test_one_line_keeps_the_setting_and_value_of_a_jsonargparse_report():
    report = ('Parser key "model":\n  Does not validate against any of the Union subtypes\n  Subtypes: [OMAR, NoneType]\n'
              "  Errors:\n    - Problem with given class_path 'omar_lightning.OMAR':\n        Parser key \"gamma\":\n"
              "          Expected a <class 'float'>. Got value: high\n    - Expected a <class 'NoneType'>\n")
    assert one_line(ValueError(report)) == "model.gamma: expected a float, got high"
    assert one_line(ValueError("plain message")) == "plain message"


def test_the_cli_trainer_writes_atomically_and_guards_divergence(workdir, data):
    from omar_lightning.callbacks import DivergenceGuard
    from omar_lightning.checkpoint_io import AtomicCheckpointIO
    from omar_lightning.cli import OMARCLI, OfflineAlgorithm, OfflineDataModule

    cli = OMARCLI(OfflineAlgorithm, OfflineDataModule, subclass_mode_model=True, auto_configure_optimizers=False, run=False,
                  args=["--config", str(TINY), "--data.path", str(data), "--trainer.logger", "false"])
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert sum(isinstance(c, DivergenceGuard) for c in cli.trainer.callbacks) == 1


def test_evaluating_the_last_checkpoint_when_there_is_none_is_an_error(capsys, data, workdir):
    config = tiny_config(workdir / "c.yaml", checkpoint_dir=workdir / "ckpts")
    status, line = run_omar(capsys, "validate", "--config", str(config), "--data.path", str(data), "--trainer.logger", "false",
                            "--ckpt_path", "last")
    assert status == 2 and line.startswith(f"--ckpt_path last: no last checkpoint in {workdir / 'ckpts'}; give the checkpoint's path")
    # once a run has written it, the same command evaluates it
    common = ["--config", str(config), "--data.path", str(data), "--trainer.logger", "false", "--trainer.enable_model_summary", "false"]
    main(["fit", *common, "--model.max_updates", "2"])
    main(["validate", *common, "--ckpt_path", "last"])
    assert "omar: error" not in capsys.readouterr().err
