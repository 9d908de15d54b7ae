"""Interruptions lose nothing: checkpoints are replaced atomically and a killed run resumes."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import omar_lightning.checkpoint_io as checkpoint_io
from omar_lightning.atomic import is_temporary, remove_stale_temporaries, temporary_name
from omar_lightning.checkpoint_io import AtomicCheckpointIO
from omar_lightning.data import save_dataset
from omar_lightning.errors import CheckpointError

from conftest import synthetic_dataset, tiny_config


def state(updates: int) -> dict:
    return {"state_dict": {"w": torch.full((64, 64), float(updates))}, "omar": {"updates": updates}}


def test_a_write_that_fails_half_way_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint(state(1), path)
    real_save = torch.save

    def half_then_fail(obj, f):
        real_save(obj, f)
        f.truncate(f.tell() // 2)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_io.torch, "save", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint(state(2), path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["omar"]["updates"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # the temporary file is gone too


def test_temporaries_of_dead_processes_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "last.ckpt"
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)
    ours = temporary_name(target)
    dead = ours.with_name(ours.name.replace(f".{os.getpid()}@", f".{dead_pid}@"))
    alive = ours.with_name(ours.name.replace(f".{os.getpid()}@", f".{os.getppid()}@"))
    other = temporary_name(tmp_path / "other.ckpt")
    for p in (dead, alive, other):
        p.write_bytes(b"partial")
    assert all(is_temporary(p) for p in (dead, alive, other)) and not is_temporary(target)
    AtomicCheckpointIO().save_checkpoint(state(3), target)
    assert not dead.exists() and alive.exists() and other.exists()
    assert remove_stale_temporaries(target) == []


def test_loading_refuses_a_partial_file(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint(state(4), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=r"last.ckpt: not a readable checkpoint \(truncated or corrupt\?\)"):
        AtomicCheckpointIO().load_checkpoint(path)


# ------------------------------------------------------------------ a real process, killed


def _wait(predicate, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.002)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _temporaries(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if is_temporary(p)] if directory.exists() else []


def _stop_inside_a_write(proc: subprocess.Popen, directory: Path, timeout: float) -> list[Path]:
    """SIGSTOP the process at a moment when a checkpoint's temporary file exists (a write is under way)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if _temporaries(directory):
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(0.05)  # let the stop land
            found = _temporaries(directory)
            if found:
                return found
            os.kill(proc.pid, signal.SIGCONT)  # the write finished meanwhile: try the next one
    raise AssertionError("the run never was inside a checkpoint write while watched")


def _metrics(run_dir: Path, version: int) -> list[dict]:
    with open(run_dir / "runs" / "tiny" / "logs" / f"version_{version}" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_sigkill_during_a_checkpoint_write_then_resume_with_ckpt_path_last(tmp_path):
    omar = shutil.which("omar", path=os.path.dirname(sys.executable))
    assert omar, "the console script `omar` is not installed next to this python"
    data = save_dataset(tmp_path / "d.npz", synthetic_dataset(n=400))
    ckpts = tmp_path / "ckpts"
    max_updates = 20
    config = tiny_config(tmp_path / "c.yaml", checkpoint_dir=ckpts, every_n_checkpoint=1, every_n_eval=1000, hidden_dim=64, max_updates=max_updates)
    cmd = [omar, "fit", "--config", str(config), "--data.path", str(data), "--data.generate", "false", "--trainer.enable_model_summary", "false"]

    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(lambda: (ckpts / "last.ckpt").exists() or proc.poll() is not None, 60, "the first checkpoint")
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        partial = _stop_inside_a_write(proc, ckpts, timeout=30)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # What the kill left: complete checkpoints, and temporary files that are not checkpoints.
    assert partial and all(p.suffix == ".tmp" and p.name.startswith(".") for p in partial)
    found = sorted(ckpts.glob("*.ckpt"))
    assert ckpts / "last.ckpt" in found and not any(is_temporary(p) for p in found)
    io = AtomicCheckpointIO()
    for p in found:
        loaded = io.load_checkpoint(p)
        assert all(torch.isfinite(v).all() for v in loaded["state_dict"].values() if v.is_floating_point())
    done = io.load_checkpoint(ckpts / "last.ckpt")["omar"]["updates"]
    assert 1 <= done < max_updates

    resumed = subprocess.run([*cmd, "--ckpt_path", "last"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert io.load_checkpoint(ckpts / "last.ckpt")["omar"]["updates"] == max_updates
    assert f"{max_updates:,} updates from update {done:,}" in resumed.stderr  # continued from the checkpoint, not from scratch
    # The resumed run continued its own log: every update once (rows the killed run logged after
    # its last checkpoint were dropped and logged again), no second version folder.
    rows = [int(float(r["updates"])) for r in _metrics(tmp_path, 0) if r.get("critic/loss")]  # training rows
    assert rows == list(range(1, max_updates + 1))
    assert not (tmp_path / "runs" / "tiny" / "logs" / "version_1").exists()
    assert not _temporaries(ckpts)  # the killed run's temporary files were cleaned by the next writes
