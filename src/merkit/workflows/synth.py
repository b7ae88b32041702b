"""``merkit synth``: synthetic micro-expression databases in their native layouts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from merkit.data.synthetic import DEFAULT_DATABASES, synthesize

__all__ = ["run_synth"]


def run_synth(
    out: str | Path,
    *,
    seed: int = 0,
    size: str = "default",
    databases: Sequence[str] | None = None,
    overwrite: bool = False,
) -> dict:
    """Write synthetic databases to ``out`` (:func:`merkit.data.synthetic.synthesize`).

    Parameters
    ----------
    databases : sequence of str, optional
        Database names, case-insensitive; an item may be a comma list (``"SAMM,dfme"``).
        Default (or nothing named): the four CDMER databases.

    Returns
    -------
    dict
        The summary of :func:`~merkit.data.synthetic.synthesize` (``databases``: name ->
        ``clips``, ``subjects``, ``path``...).
    """
    names = tuple(n.strip().upper() for d in databases or () for n in d.split(",") if n.strip())
    return synthesize(out, seed=seed, size=size, databases=names or DEFAULT_DATABASES,
                      overwrite=overwrite)  # fmt: skip
