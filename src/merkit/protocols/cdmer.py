"""The 12 cross-database micro-expression recognition (CDMER) tasks, as data.

The benchmark (Zong et al., "Cross-database micro-expression recognition: a
benchmark", IEEE TKDE 2022, doi:10.1109/TKDE.2020.3018470) pairs four databases,
C = CASME II, H = SMIC-HS, V = SMIC-VIS, N = SMIC-NIR, in 12 source -> target
experiments with the 3 classes negative / positive / surprise. TYPE-I (Exp.1-6)
transfers between the SMIC cameras, TYPE-II (Exp.7-12) between CASME II and SMIC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "LETTERS",
    "TASKS",
    "TYPES",
    "CdmerTask",
    "available_tasks",
    "get_task",
    "resolve_tasks",
]

#: database letter of the benchmark -> merkit dataset name
LETTERS: dict[str, str] = {
    "C": "CASME2",
    "H": "SMIC_HS",
    "V": "SMIC_VIS",
    "N": "SMIC_NIR",
}
_NAME_TO_LETTER = {v: k for k, v in LETTERS.items()}

#: task types in table order
TYPES: tuple[str, ...] = ("TYPE-I", "TYPE-II")


@dataclass(frozen=True)
class CdmerTask:
    """One CDMER experiment.

    Attributes
    ----------
    exp : int
        Experiment number 1..12.
    source, target : str
        Dataset names (``"CASME2"``, ``"SMIC_HS"``, ``"SMIC_VIS"``, ``"SMIC_NIR"``).
    code : str
        Letter code, e.g. ``"C->V"``.
    type : str
        ``"TYPE-I"`` (Exp.1-6, SMIC cameras) or ``"TYPE-II"`` (Exp.7-12, CASME II and SMIC).
    """

    exp: int
    source: str
    target: str
    code: str
    type: str

    @property
    def name(self) -> str:
        """Column name used in tables and the results store: ``"Exp.<n>"``."""
        return f"Exp.{self.exp}"

    def __str__(self) -> str:
        return f"{self.name} ({self.code}: {self.source} -> {self.target})"


def _make(exp: int, code: str) -> CdmerTask:
    s, t = code.split("->")
    return CdmerTask(exp, LETTERS[s], LETTERS[t], code, "TYPE-I" if exp <= 6 else "TYPE-II")


#: the 12 tasks in experiment order
TASKS: tuple[CdmerTask, ...] = tuple(
    _make(i + 1, code)
    for i, code in enumerate(
        ["H->V", "V->H", "H->N", "N->H", "V->N", "N->V",
         "C->H", "H->C", "C->V", "V->C", "C->N", "N->C"]
    )
)  # fmt: skip


def get_task(key: CdmerTask | int | str) -> CdmerTask:
    """Look up a task by number (``9``), name (``"Exp.9"``, ``"exp9"``), letter code
    (``"C->V"``) or dataset pair (``"CASME2->SMIC_VIS"``)."""
    if isinstance(key, CdmerTask):
        return key
    if isinstance(key, int) and not isinstance(key, bool):
        if 1 <= key <= len(TASKS):
            return TASKS[key - 1]
        raise KeyError(f"CDMER experiment number must be 1..12, got {key}")
    if isinstance(key, str):
        k = key.strip()
        low = k.lower().replace(" ", "")
        if low.startswith("exp"):
            num = low[3:].lstrip(".")
            if num.isdigit():
                return get_task(int(num))
        if "->" in k:
            s, t = (p.strip() for p in k.split("->", 1))
            s, t = _NAME_TO_LETTER.get(s, s.upper()), _NAME_TO_LETTER.get(t, t.upper())
            for task in TASKS:
                if task.code == f"{s}->{t}":
                    return task
    known = ", ".join(f"{t.name}={t.code}" for t in TASKS)
    raise KeyError(f"unknown CDMER task {key!r}; known tasks: {known}")


def resolve_tasks(tasks: Iterable[CdmerTask | int | str] | None = None) -> list[CdmerTask]:
    """Tasks from a mixed list of keys (all 12 when ``None``), in experiment order, unique."""
    if tasks is None:
        return list(TASKS)
    if isinstance(tasks, (str, int, CdmerTask)):
        tasks = [tasks]
    found = {get_task(t) for t in tasks}
    return sorted(found, key=lambda t: t.exp)


def available_tasks(domains: Iterable[str]) -> list[CdmerTask]:
    """The tasks whose source and target databases are both among ``domains``.

    Parameters
    ----------
    domains : iterable of str
        Dataset names available (e.g. the keys of a features dict).
    """
    have = set(domains)
    return [t for t in TASKS if t.source in have and t.target in have]
