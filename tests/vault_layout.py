"""Write small flashbax Vaults for tests, in the layout flashbax's ``Vault`` creates and writes.

Facts from flashbax/vault/vault.py (version 1.2): ``<rel_dir>/<vault_name>/<vault_uid>/`` holds
``metadata.json`` ``{"version": 1.2, "structure_shape": {leaf: "(B, T, ...)"}, "structure_dtype":
{leaf: dtype name}}`` (nested like the experience dict; ``T`` the source buffer's time axis),
and one OCDBT database with a zarr array per leaf keyed ``"<key>."`` (``"infos.state."`` for
nested keys), created with shape ``(B, 10**13, ...)`` and a gzip level 5 compressor, written
along the time axis from 0, plus the int32 ``vault_index`` ``[1]`` holding the steps written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

TIME_AXIS_MAX_LENGTH = int(10e12)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}."] = np.asarray(v)
    return out


def _map(tree: dict[str, Any], fn) -> dict[str, Any]:
    return {k: _map(v, fn) if isinstance(v, dict) else fn(np.asarray(v)) for k, v in tree.items()}


def write_vault(folder: Path, experience: dict[str, Any], buffer_time: int | None = None, version: float = 1.2,
                structure_key: str = "structure_shape") -> Path:
    """``experience`` (nested dict of arrays ``[B, T, ...]``) as the vault ``folder`` (``<name>.vlt/<uid>``).

    ``buffer_time``: the time axis recorded in metadata.json (a flashbax buffer's, >= T)."""
    import tensorstore as ts

    folder = Path(folder).resolve()
    folder.mkdir(parents=True)
    steps = next(iter(_flat(experience).values())).shape[1]
    buffer_time = buffer_time or steps
    meta = {
        "version": version,
        structure_key: _map(experience, lambda x: str((x.shape[0], buffer_time, *x.shape[2:]))),
        "structure_dtype": _map(experience, lambda x: x.dtype.name),
    }
    (folder / "metadata.json").write_text(json.dumps(meta))

    def spec(key: str) -> dict[str, Any]:
        return {"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": f"file://{folder}", "path": key}}

    for key, x in _flat(experience).items():
        s = spec(key)
        s["metadata"] = {"compressor": {"id": "gzip", "level": 5}}
        store = ts.open(s, shape=(x.shape[0], TIME_AXIS_MAX_LENGTH, *x.shape[2:]), dtype=x.dtype.name, create=True).result()
        store[:, 0:steps, ...].write(x).result()
    index = ts.open(spec("vault_index"), dtype=ts.int32, shape=(1,), create=True).result()
    index.write(steps).result()
    return folder
