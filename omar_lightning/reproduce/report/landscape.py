"""Figure 1d on mpe2's 2-D spread: Q1 over an agent's action plane with the action before an
actor update and after an MA-CQL and an OMAR update (``omar reproduce landscape``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from omar_lightning.plots import pyplot
from omar_lightning.plots import save_figure
from omar_lightning.reproduce.report.common import OLD, Results, group_key
from omar_lightning.reproduce.studies import spread
from omar_lightning.reproduce.summary import update_version
from omar_lightning.update_version import UPDATE_VERSION


def landscape_run(results: Results) -> dict[str, Any] | None:
    """The first seed's run of the landscape study, if it ran."""
    runs = results.runs(group_key("macql", spread(2), "medium_replay", analysis="landscape"))
    return runs[0] if runs else None


def landscape_text(run: dict[str, Any]) -> list[str]:
    """Where the three actions and Q1's maximum lie."""
    data = run["landscape"]
    return [f"Agent {data['agent']}, dataset row {data['dataset_row']}, after {data['updates']:,} MA-CQL updates: pi(o) moves from "
            f"({data['before'][0]:.3f}, {data['before'][1]:.3f}) to ({data['after_macql'][0]:.3f}, {data['after_macql'][1]:.3f}) with an MA-CQL "
            f"actor update and to ({data['after_omar'][0]:.3f}, {data['after_omar'][1]:.3f}) with an OMAR update (tau {data['omar_tau']}); "
            f"Q1's maximum on the grid is at ({data['argmax'][0]:.2f}, {data['argmax'][1]:.2f})."
            + (OLD if update_version(run) != UPDATE_VERSION else ""), ""]


def landscape_figure(run: dict[str, Any], path: Path) -> None:
    """Q1 as a colour map, the three actions and the grid's argmax on it, and a zoom around them."""
    data = run["landscape"]
    plt = pyplot()

    axis, q = np.array(data["axis"]), np.array(data["q1"])
    fig, ax = plt.subplots(figsize=(5.0, 4.8))
    mesh = ax.pcolormesh(axis, axis, q, shading="auto", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="Q1")
    ax.plot(*data["before"], "o", color="red", markersize=9, label="pi(o) before the update")
    ax.plot(*data["after_macql"], "^", color="lime", markersize=9, label="after an MA-CQL update")
    ax.plot(*data["after_omar"], "s", color="blue", markersize=8, label="after an OMAR update")
    ax.plot(*data["argmax"], "*", color="white", markeredgecolor="black", markersize=11, label="argmax of Q1 on the grid")
    # One actor step moves the action little: a zoomed inset around the three markers shows where.
    pts = np.array([data["before"], data["after_macql"], data["after_omar"]])
    half = max(0.02, 1.5 * float(np.abs(pts - pts[0]).max()))
    inset = ax.inset_axes([0.58, 0.06, 0.38, 0.38])
    inset.pcolormesh(axis, axis, q, shading="gouraud", cmap="viridis")
    for (x, y), style, colour in zip(pts, ("o", "^", "s"), ("red", "lime", "blue")):
        inset.plot(x, y, style, color=colour, markersize=6)
    inset.set_xlim(pts[0][0] - half, pts[0][0] + half)
    inset.set_ylim(pts[0][1] - half, pts[0][1] + half)
    inset.tick_params(labelsize=5)
    ax.indicate_inset_zoom(inset, edgecolor="white")
    ax.set_xlabel("action x", fontsize=8)
    ax.set_ylabel("action y", fontsize=8)
    ax.set_title(f"Q1 of agent {data['agent']}, 2-agent spread medium-replay (seed {run['cell']['seed']})", fontsize=8)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(0.0, -0.14), ncol=2)
    fig.tight_layout()
    save_figure(fig, path)
