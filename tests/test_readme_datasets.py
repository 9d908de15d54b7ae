"""The README's own-data instructions, followed literally: its code blocks run as written, its
checksum recipe gives the stored checksum, and its field tables list what the files hold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from omar_lightning.data import load_dataset
from omar_lightning.data.format import FIELDS, REQUIRED_META, checksum

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n### {title}\n")
    end = text.find("\n#", start + 5)
    return text[start : end if end != -1 else len(text)]


def block(first_line: str) -> str:
    """The README's python code block that starts with ``first_line``."""
    for code in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S):
        if code.startswith(first_line + "\n"):
            return code
    raise AssertionError(f"README has no python block starting {first_line!r}")


WRITE = "# Own data: write a dataset file from your arrays"
CHECK = "# Own data: the checksum by hand"


def table_keys(text: str) -> list[str]:
    """First-column names of the markdown tables in ``text``."""
    return re.findall(r"^\| `([^`]+)` \|", text, flags=re.M)


def test_readme_example_writes_a_dataset_and_its_checksum_recipe_holds(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(block(WRITE), "README write", "exec"), {})
    printed = capsys.readouterr().out.strip()
    ds = load_dataset(tmp_path / "my_dataset.npz")
    assert printed == ds.meta["checksum"]
    assert ds.num_transitions == 1000 and ds.agent_names == ["agent_0", "agent_1", "agent_2"]
    assert ds.meta["format_version"] == 1 and ds.meta["obs_dims"] == [18, 18, 18] and ds.meta["act_dims"] == [2, 2, 2]
    # the hand recipe, run as written, agrees with the stored checksum ...
    exec(compile(block(CHECK), "README checksum", "exec"), {})
    # ... and with the library's; and it sees a change of one value
    with np.load(tmp_path / "my_dataset.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "metadata"}
        meta = json.loads(str(z["metadata"]))
    assert checksum(arrays) == meta["checksum"]
    arrays["agent_1/rewards"][7] += 1.0
    np.savez(tmp_path / "my_dataset.npz", metadata=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(AssertionError):
        exec(compile(block(CHECK), "README checksum", "exec"), {})


def test_readme_field_tables_are_exact(tmp_path, monkeypatch, capsys):
    keys = table_keys(section("Dataset files"))
    arrays = [k for k in keys if k.startswith("<agent>/")]
    assert [k.split("/", 1)[1] for k in arrays] == list(FIELDS)
    fields = set(keys) - set(arrays)
    assert set(REQUIRED_META) <= fields
    required = {k for k in fields if re.search(rf"^\| `{re.escape(k)}` \| required", section("Dataset files"), flags=re.M)}
    assert required == set(REQUIRED_META)
    # every field a written file holds is listed: the README's example, a generated tier, an import
    from omar_lightning.cli import main

    written = []
    monkeypatch.chdir(tmp_path)
    exec(compile(block(WRITE), "README write", "exec"), {})
    written.append(load_dataset(tmp_path / "my_dataset.npz").meta)
    try:
        main(["collect", "dataset", "--task", "cooperative_navigation", "--tier", "random", "--size", "50", "--reference-episodes", "1",
              "--out", str(tmp_path / "gen.npz"), "--no-progress"])
    except SystemExit as e:
        assert not e.code
    written.append(load_dataset(tmp_path / "gen.npz").meta)
    rng = np.random.default_rng(0)
    own = {}
    for i in range(3):
        traj = rng.standard_normal((26, 18))
        own |= {f"obs_{i}": traj[:-1], f"actions_{i}": rng.uniform(-1, 1, (25, 2)), f"rewards_{i}": rng.standard_normal(25),
                f"next_obs_{i}": traj[1:], f"dones_{i}": np.zeros(25)}
    np.savez(tmp_path / "mine.npz", **own)
    try:
        main(["datasets", "import", "arrays", str(tmp_path / "mine.npz"), "--task", "cooperative_navigation", "--tier", "mine",
              "--out", str(tmp_path / "imp.npz"), "--s-random", "0", "--s-expert", "1"])
    except SystemExit as e:
        assert not e.code
    written.append(load_dataset(tmp_path / "imp.npz").meta)
    capsys.readouterr()
    for meta in written:
        assert set(meta) <= fields, sorted(set(meta) - fields)
