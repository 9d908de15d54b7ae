"""Read flashbax Vaults without JAX (the optional extra ``vault``: ``pip install 'omar-lightning[vault]'``).

The layout, as flashbax writes and reads it (``flashbax/vault/vault.py``, vault versions 1.0 to
1.2): a vault is the folder ``<rel_dir>/<vault_name>/<vault_uid>/`` holding

* ``metadata.json``: ``{"version": 1.x, "structure_shape": ..., "structure_dtype": ..., ...}``,
  the experience tree (nested JSON objects, as orbax's ``serialize_tree`` writes a dict) with
  each leaf's shape as a Python tuple string, ``"(B, T, ...)"``, and its dtype name. ``B`` is
  the buffer's ``add_batch_size``; ``T`` is the time axis of the buffer the vault was made
  from, not the vault's length. Version 1.0 vaults call the shape tree ``"structure"``; any
  further keys are the writer's own metadata.
* one TensorStore OCDBT key-value database (``manifest.ocdbt`` and ``d/...``) in that folder,
  holding a zarr (v2) array for each leaf, keyed by the leaf's path with a ``.`` after every
  key (``"observations."``, ``"infos.state."``), of shape ``(B, 10**13, ...)`` (the time axis
  is open), gzip level 5 by default, chunked by TensorStore's defaults; and the int32 array
  ``"vault_index"`` of shape ``[1]``: the number of time steps written.

Reading a leaf is reading ``array[:, :vault_index]``. flashbax opens each array with the spec
``{"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": "file://<folder>", "path": <key>}}``;
so does :func:`read_vault`, with TensorStore alone.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from omar_lightning.data.format import DatasetError, _reason

METADATA_FILE = "metadata.json"
INDEX_KEY = "vault_index"
MAJOR_VERSION = 1


def _tensorstore(where: str) -> Any:
    try:
        import tensorstore
    except ImportError:
        raise DatasetError(f"{where}: reading a flashbax Vault needs tensorstore: pip install 'omar-lightning[vault]'") from None
    return tensorstore


def is_vault(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a vault folder (``<vault_name>/<vault_uid>``, holding ``metadata.json``)."""
    return (Path(path) / METADATA_FILE).is_file()


def vault_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The vault's ``metadata.json``, checked for a major version flashbax reads; DatasetError naming the file."""
    file = Path(path) / METADATA_FILE
    try:
        meta = json.loads(file.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: no {METADATA_FILE}; not a flashbax Vault folder (<vault_name>/<vault_uid>)") from None
    except (OSError, ValueError) as e:
        raise DatasetError(f"{file}: not readable JSON: {e}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("version"), (int, float)):
        raise DatasetError(f"{file}: no 'version'; not a flashbax Vault metadata file")
    if int(meta["version"] // 1) != MAJOR_VERSION:
        raise DatasetError(f"{file}: vault version {meta['version']}, this reader reads version {MAJOR_VERSION}.x")
    if not isinstance(meta.get("structure_shape", meta.get("structure")), dict):
        raise DatasetError(f"{file}: no 'structure_shape' tree; not a flashbax Vault metadata file")
    return meta


def _leaves(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        name = f"{prefix}{key}."
        if isinstance(value, dict):
            yield from _leaves(value, name)
        else:
            yield name, value


def vault_leaves(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Leaf keys of the vault (``"observations"``, ``"infos.state"``) and their shapes in
    ``metadata.json`` (``(B, T, ...)``, ``T`` the source buffer's time axis)."""
    meta = vault_metadata(path)
    out = {}
    for name, shape in _leaves(meta.get("structure_shape", meta.get("structure"))):
        try:
            parsed = ast.literal_eval(shape) if isinstance(shape, str) else None
        except (ValueError, SyntaxError):
            parsed = None
        if not (isinstance(parsed, tuple) and len(parsed) >= 2 and all(isinstance(d, int) for d in parsed)):
            raise DatasetError(f"{Path(path) / METADATA_FILE}: leaf {name!r} has shape {shape!r}, expected '(batch, time, ...)'")
        out[name[:-1]] = parsed
    return out


def _spec(folder: Path, key: str) -> dict[str, Any]:
    return {"driver": "zarr", "kvstore": {"driver": "ocdbt", "base": f"file://{folder}", "path": key}}


def read_vault(path: str | os.PathLike, keys: list[str] | None = None, row: int | None = None) -> dict[str, np.ndarray]:
    """Arrays of a vault, ``[B, vault_index, ...]`` (or ``[vault_index, ...]`` of batch row ``row``).

    Args:
        path: the vault folder ``<vault_name>/<vault_uid>``.
        keys: leaves to read (default all), named as :func:`vault_leaves` names them.
        row: read only this batch row.

    Raises:
        DatasetError: naming the folder or leaf: no vault, no tensorstore, a missing or unreadable
            leaf, a leaf whose stored shape disagrees with ``metadata.json``, a row out of range.
    """
    folder = Path(path).resolve()
    where = str(path)
    leaves = vault_leaves(folder)
    ts = _tensorstore(where)
    wanted = list(leaves) if keys is None else keys
    missing = [k for k in wanted if k not in leaves]
    if missing:
        raise DatasetError(f"{where}: the vault has no leaf {missing[0]!r} (it has {sorted(leaves)})")
    try:
        index = int(ts.open(_spec(folder, INDEX_KEY)).result().read().result()[0])
    except Exception as e:  # noqa: BLE001 - any failure to open the index is a damaged vault
        raise DatasetError(f"{where}: cannot read the vault's '{INDEX_KEY}': {_reason(e)}") from None
    out = {}
    for key in wanted:
        shape = leaves[key]
        try:
            store = ts.open(_spec(folder, key + ".")).result()
        except Exception as e:  # noqa: BLE001
            raise DatasetError(f"{where}: cannot open leaf {key!r}: {_reason(e)}") from None
        stored = tuple(int(d) for d in store.shape)
        if len(stored) != len(shape) or stored[0] != shape[0] or stored[2:] != shape[2:] or stored[1] < index:
            raise DatasetError(f"{where}: leaf {key!r} is stored with shape {stored}, metadata.json says {shape} ({index} steps written)")
        if row is not None and not 0 <= row < stored[0]:
            raise DatasetError(f"{where}: batch row {row} does not exist; the vault has {stored[0]} (rows 0..{stored[0] - 1})")
        view = store[:, :index] if row is None else store[row, :index]
        try:
            out[key] = np.asarray(view.read().result())
        except Exception as e:  # noqa: BLE001
            raise DatasetError(f"{where}: cannot read leaf {key!r}: {_reason(e)}") from None
    return out

