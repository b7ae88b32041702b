"""Database adapters: native layouts on disk -> validated Sample tables.

Each adapter module declares, next to its code, what the registry needs (its ``ADAPTER``:
dataset names and loaders, layout check, layout in words); :data:`DATABASES` lists the
modules once, in order. From it, ``ADAPTERS`` maps a dataset name to its loader,
:func:`load_dataset` calls one by name and :func:`discover` lists the databases present
under a data root::

    <root>/CASME2/CASME2-coding-*.xlsx, Cropped/sub01/EP02_01f/img46.jpg ...
    <root>/SMIC/{HS,VIS,NIR}/s1/micro/negative/s1_ne_01/image559740.bmp ...
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pandas as pd

from merkit.data.adapters import (
    casme1,
    casme2,
    casme2_sq,
    casme3,
    dfme,
    fourd,
    megc2019,
    mmew,
    samm,
    smic,
)
from merkit.data.adapters._common import Loader
from merkit.data.adapters.casme1 import load_casme1
from merkit.data.adapters.casme2 import load_casme2
from merkit.data.adapters.casme2_sq import load_casme_sq
from merkit.data.adapters.casme3 import load_casme3_a, load_casme3_c
from merkit.data.adapters.dfme import load_dfme
from merkit.data.adapters.folder import load_folder
from merkit.data.adapters.fourd import load_4dme
from merkit.data.adapters.megc2019 import load_megc2019
from merkit.data.adapters.mmew import load_mmew
from merkit.data.adapters.samm import load_samm
from merkit.data.adapters.smic import load_smic, smic_clip_name, smic_subject_id

__all__ = [
    "ADAPTERS",
    "DATABASES",
    "EXPECTED_LAYOUT",
    "discover",
    "load_4dme",
    "load_casme1",
    "load_casme2",
    "load_casme3_a",
    "load_casme3_c",
    "load_casme_sq",
    "load_dataset",
    "load_dfme",
    "load_folder",
    "load_megc2019",
    "load_mmew",
    "load_samm",
    "load_smic",
    "smic_clip_name",
    "smic_subject_id",
]

#: the database adapter modules, in registry order: each declares its dataset names and
#: loaders, its layout check and its layout in words as its ``ADAPTER``
#: (:class:`~merkit.data.adapters._common.AdapterSpec`). A new database is its module
#: plus its name here.
DATABASES: tuple[ModuleType, ...] = (
    casme2,
    smic,
    samm,
    casme3,
    casme2_sq,
    mmew,
    dfme,
    megc2019,
    casme1,
    fourd,
)


def _loaders() -> dict[str, Loader]:
    """Dataset name -> loader of every module of :data:`DATABASES`, in their order."""
    out: dict[str, Loader] = {}
    for module in DATABASES:
        for name, loader in module.ADAPTER.loaders.items():
            if name in out:
                raise ValueError(f"dataset {name!r} is declared by two database adapters")
            out[name] = loader
    return out


def _expected_layout() -> str:
    """The layouts the modules of :data:`DATABASES` declare, in words, as one list."""
    *head, last = [m.ADAPTER.layout for m in DATABASES if m.ADAPTER.layout]
    return f"{', '.join(head)}, or {last}" if head else last


#: dataset name -> loader ``f(root, **kw) -> Sample table`` (the :data:`DATABASES`
#: declarations; :func:`load_dataset` and :func:`discover` read the tuple when called)
ADAPTERS: dict[str, Loader] = _loaders()
# A user's own recordings (a CSV of clips) load with ``load_folder(csv_path)``: it takes a
# file, not a data root, so it is not in ADAPTERS or discover().

#: what :func:`discover` looks for, in words (for messages)
EXPECTED_LAYOUT: str = _expected_layout()


def load_dataset(name: str, root: str | Path, **kw) -> pd.DataFrame:
    """Load the database ``name`` (case-insensitive key of :data:`ADAPTERS`) from ``root``.

    Extra keyword arguments go to the loader (e.g. ``missing="skip"``, ``sheet=...``).
    """
    key = str(name).upper()
    loaders = _loaders()
    if key not in loaders:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(loaders)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist or is not a folder")
    return loaders[key](root, **kw)


def discover(root: str | Path) -> list[str]:
    """Names of the databases whose layout exists under ``root`` (in :data:`ADAPTERS` order).

    ``root`` may be the data root (holding ``CASME2/``, ``SMIC/``) or one database folder.
    Only the layout is checked (coding sheet or ``Cropped/``, camera folders); loading
    checks the sheet and the frames and says what is missing.
    An empty list means nothing was recognised.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data root {root} does not exist or is not a folder (expected a folder holding "
            f"{_expected_layout()})"
        )
    found: list[str] = []
    for module in DATABASES:
        if set(module.ADAPTER.requires) <= set(found):
            found += module.ADAPTER.discover(root)
    return found
