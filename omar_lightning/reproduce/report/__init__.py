"""``omar report``: docs/results.md and its figures, rebuilt from the run summaries alone.

Deterministic: the same summaries give the same page (cells, seeds and rows in a fixed order,
numbers rounded, no dates). A hand-written ``notes.md`` in the results directory, where our
results depart from the paper and why, is included verbatim.

Versions of the training update (``omar_lightning/update_version.py``) are never mixed: a cell
(all seeds of one config and overrides) shows only the seeds of the newest version among its
summaries, the older ones are left out and counted at the top of the page, and every number
made by an older version than the current one is marked ``†`` (``omar reproduce`` reruns
those cells).

Under Tables 3, 5 and 6 the page adds aggregate statistics (IQM, optimality gap, probability of
improvement, performance profiles with stratified-bootstrap intervals) of the current update
version's runs, per tier and over all tiers; the statistics are ``aggregate.py``'s. Under Tables 3
and 6, each cell where every method has two current seeds is compared with the paper's (winner,
ordering, OMAR's margin with Welch intervals; ``agreement.py``).

One module per concern: ``common`` (names, cells, formatting), ``plotting``, ``grid`` (the
paper's task x tier tables), ``aggregates`` (statistics and agreement), ``agents`` (agent count,
actor learning rate), ``line`` (the 1-D spread), ``landscape`` (Figure 1d), ``tau`` (Figure 3),
``official_reuse``, ``provenance`` (datasets and costs), and ``page``, which lays them out.
"""

from omar_lightning.reproduce.report.common import Results
from omar_lightning.reproduce.report.page import build_page, write_report

__all__ = ["Results", "build_page", "write_report"]
