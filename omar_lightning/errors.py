"""Errors that the ``omar`` command reports in one line (``omar: error: ...``).

:class:`omar_lightning.data.DatasetError` (a dataset file that cannot be used) lives with the
dataset format.
"""

from __future__ import annotations


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or weight; the message names the update."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model; the message names the file."""
