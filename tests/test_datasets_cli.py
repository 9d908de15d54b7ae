"""``omar datasets list|info|verify``: tables, statistics, checksums, one-line errors."""

import json

import numpy as np
import pytest
from conftest import run_datasets, synthetic_dataset

from omar_lightning.data import save_dataset


@pytest.fixture
def tree(tmp_path):
    ds = synthetic_dataset(n=100)
    ds.meta["episode_returns"] = {"mean": 10.0, "std": 2.0, "min": 5.0, "max": 14.0, "count": 4}
    good = save_dataset(tmp_path / "data" / "coop" / "random.npz", ds)
    altered = tmp_path / "data" / "coop" / "altered.npz"
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["agent_0/rewards"] = arrays["agent_0/rewards"] + 1
    np.savez(altered, **arrays)
    truncated = tmp_path / "data" / "trunc.npz"
    truncated.write_bytes(good.read_bytes()[:500])
    (tmp_path / "data" / ".hidden.npz.123.tmp").write_bytes(b"partial")
    return tmp_path, good, altered, truncated


run = run_datasets


def test_list_shows_good_files_and_one_line_per_bad_file(tree, capsys):
    root, good, altered, truncated = tree
    code, out, err = run(["list", str(root / "data")], capsys)
    assert code == 1
    assert "random.npz" in out and "cooperative_navigation" in out and "10.00" in out and "30.00" in out
    assert "altered.npz" in out  # list does not verify checksums
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{truncated}: not a readable dataset file")


def test_info_prints_metadata_and_statistics(tree, capsys):
    _, good, _, _ = tree
    code, out, _ = run(["info", str(good)], capsys)
    assert code == 0 and "100 transitions" in out and "return mean 10.00 std 2.00" in out and "S_random -10.00, S_expert 30.00" in out
    assert "(normalized 50.0)" in out and "agent_2: obs 18, act 2" in out
    code, out, _ = run(["info", "--json", str(good)], capsys)
    s = json.loads(out)
    assert s["num_transitions"] == 100 and s["episode_returns_normalized"] == pytest.approx(50.0) and set(s["agents"]) == {"agent_0", "agent_1", "agent_2"}


def test_verify_checks_checksums(tree, capsys):
    root, good, altered, truncated = tree
    code, out, err = run(["verify", str(good), str(altered), str(truncated), str(root / "missing.npz")], capsys)
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(f"OK   {good}")
    assert lines[1] == f"FAIL {altered}: checksum mismatch: the arrays do not match metadata 'checksum' (file altered or damaged)"
    assert "not a readable dataset file" in lines[2]
    assert lines[3] == f"FAIL dataset file not found: {root / 'missing.npz'}"
    code, out, _ = run(["verify", str(good)], capsys)
    assert code == 0


def test_list_of_an_empty_or_missing_folder(tmp_path, capsys):
    code, out, _ = run(["list", str(tmp_path)], capsys)
    assert code == 0 and out.strip() == f"no dataset files found under {tmp_path}"
    code, _, err = run(["list", str(tmp_path / "nope")], capsys)
    assert code == 1 and err.strip() == f"{tmp_path / 'nope'}: no such folder"
