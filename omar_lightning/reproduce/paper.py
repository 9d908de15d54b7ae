"""The paper's reported numbers (Pan et al., ICML 2022), for the results page to show beside ours.

Normalized scores, mean and std over 5 seeds; Tables 1 and 2 are raw returns of MA-CQL.
Keys: (task, tier) -> {algorithm or variant: (mean, std)}.
"""

from __future__ import annotations

from omar_lightning.data.format import TIERS

_ALG = ("maicq", "matd3bc", "macql", "omar")


def _rows(text: str, tasks: tuple[str, ...], tiers: tuple[str, ...], columns: tuple[str, ...]) -> dict:
    out: dict = {}
    values = iter(text.split())
    for tier in tiers:
        for task in tasks:
            out[(task, tier)] = {c: (float(next(values)), float(next(values))) for c in columns}
    return out


def _by_tier(rows: list[list[tuple[float, float]]]) -> dict[str, dict[str, tuple[float, float]]]:
    """One row per tier (paper order), columns MA-ICQ, MA-TD3+BC, MA-CQL, OMAR."""
    return {tier: dict(zip(_ALG, vals)) for tier, vals in zip(TIERS, rows)}

# Table 3, in the paper's order: tiers, then tasks; columns MA-ICQ, MA-TD3+BC, MA-CQL, OMAR.
TABLE3 = _rows(
    """
    6.3 3.5 9.8 4.9 24.0 9.8 34.4 5.3   2.2 2.6 5.7 3.5 5.0 8.2 11.1 2.8   1.0 3.2 2.8 5.5 0.6 2.0 5.9 5.2
    13.6 5.7 15.4 5.6 20.0 8.4 37.9 12.3   34.5 27.8 28.7 20.9 24.8 17.3 47.1 15.3   12.0 9.1 17.4 8.1 29.6 13.8 42.9 19.5
    29.3 5.5 29.3 4.8 34.1 7.2 47.9 18.9   63.3 20.0 65.1 29.5 61.7 23.1 66.7 23.2   71.9 20.0 73.4 9.3 58.6 11.2 74.6 11.5
    104.0 3.4 108.3 3.3 98.2 5.2 114.9 2.6   113.0 14.4 115.2 12.5 93.9 14.0 116.2 19.8   109.5 22.8 110.3 21.3 71.9 28.1 110.4 25.7
    """,
    ("cooperative_navigation", "predator_prey", "world"),
    TIERS,
    _ALG,
)

# Table 4 (cooperative navigation): samplers of OMAR per tier.
TABLE4 = {
    ("cooperative_navigation", tier): {"sampler=random": r, "sampler=cem": c, "default": g}
    for tier, r, c, g in zip(
        TIERS,
        [(24.3, 7.0), (23.5, 5.3), (41.2, 11.1), (101.0, 5.2)],
        [(25.8, 7.3), (32.6, 5.1), (45.0, 13.3), (106.4, 13.8)],
        [(34.4, 5.3), (37.9, 12.3), (47.9, 18.9), (114.9, 2.6)],
    )
}

# Table 5: centralized critics, one row per method and tier (the paper does not name the task).
TABLE5 = _by_tier(
    [
        [(5.2, 5.5), (7.9, 2.2), (12.8, 4.9), (21.6, 4.6)],
        [(10.1, 4.6), (9.3, 9.1), (11.2, 6.6), (19.1, 9.2)],
        [(27.4, 5.3), (29.4, 3.7), (26.3, 13.3), (33.7, 14.5)],
        [(96.7, 4.1), (108.1, 3.3), (69.5, 15.7), (105.9, 3.6)],
    ]
)

# Table 6: 2-agent HalfCheetah.
TABLE6 = {
    ("halfcheetah_2x3", tier): row
    for tier, row in _by_tier(
        [
            [(7.4, 0.0), (7.4, 0.0), (7.4, 0.0), (15.4, 12.3)],
            [(35.6, 2.7), (27.1, 5.5), (41.2, 10.1), (57.7, 5.1)],
            [(73.6, 5.0), (75.5, 3.7), (50.4, 10.8), (80.7, 10.2)],
            [(110.6, 3.3), (114.4, 3.8), (64.2, 24.9), (113.5, 4.3)],
        ]
    ).items()
}

# Tables 1 and 2: MA-CQL's raw return with a larger actor learning rate / more actor updates.
TABLE1_ACTOR_LR = {0.01: (267.9, 19.0), 0.05: (202.0, 38.9), 0.1: (100.1, 36.4)}
TABLE2_ACTOR_UPDATES = {1: (267.9, 19.0), 5: (278.6, 14.8), 20: (263.7, 23.1)}

# Section 3.1 (the 1-D Spread, medium-replay): Figures 1(b), 1(c), 1(d) and 2 are plots without
# printed numbers; what the paper's text says each shows, verbatim.
FIGURE1B = ("MA-CQL outperforms MA-TD3+BC, which pushes down Q-values of state-action pairs that are sampled from a random or the "
            "current policy while pushing up Q-values for state-action pairs in the dataset.",
            "Figure 1(b) further validates that OMAR significantly improves MA-CQL in terms of both performance and efficiency.")
FIGURE1C = ("From Figure 1(c), we observe that its performance degrades dramatically as there are more agents.",)
FIGURE2 = ("Figure 2 shows the performance improvement percentage of OMAR over MA-CQL with varying number of agents, where OMAR "
           "always outperforms MA-CQL.",
           "We also notice that the performance improvement of OMAR over MA-CQL is much more significant in the multi-agent setting "
           "in the Spread task than the single-agent setting",)
FIGURE1D = ("The green triangle represents the action predicted from the actor after the training step, where the policy gets stuck "
            "in a bad local optimum.",
            "In contrast to the policy update in MA-CQL, OMAR can better leverage the global information in the critic and help the "
            "actor to escape from the bad local optima.")
