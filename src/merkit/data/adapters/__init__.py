"""Database adapters: native layouts on disk -> validated Sample tables.

``ADAPTERS`` maps a dataset name to its loader; :func:`load_dataset` calls one by name
and :func:`discover` lists the databases present under a data root::

    <root>/CASME2/CASME2-coding-*.xlsx, Cropped/sub01/EP02_01f/img46.jpg ...
    <root>/SMIC/{HS,VIS,NIR}/s1/micro/negative/s1_ne_01/image559740.bmp ...
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from merkit.data.adapters import casme2, casme2_sq, casme3, dfme, megc2019, mmew, samm, smic
from merkit.data.adapters._common import child_dir, found_in
from merkit.data.adapters.casme2 import load_casme2
from merkit.data.adapters.casme2_sq import load_casme_sq
from merkit.data.adapters.casme3 import load_casme3_a, load_casme3_c
from merkit.data.adapters.dfme import load_dfme
from merkit.data.adapters.folder import load_folder
from merkit.data.adapters.megc2019 import load_megc2019
from merkit.data.adapters.mmew import load_mmew
from merkit.data.adapters.samm import load_samm
from merkit.data.adapters.smic import load_smic, smic_clip_name, smic_subject_id

__all__ = [
    "ADAPTERS",
    "EXPECTED_LAYOUT",
    "discover",
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

Loader = Callable[..., pd.DataFrame]

#: dataset name -> loader ``f(root, **kw) -> Sample table``
ADAPTERS: dict[str, Loader] = {
    "CASME2": load_casme2,
    "SMIC_HS": functools.partial(load_smic, camera="hs"),
    "SMIC_VIS": functools.partial(load_smic, camera="vis"),
    "SMIC_NIR": functools.partial(load_smic, camera="nir"),
    "SAMM": load_samm,
    "CASME3_A": load_casme3_a,
    "CASME3_C": load_casme3_c,
    "CASME_SQ": load_casme_sq,
    "MMEW": load_mmew,
    "DFME": load_dfme,
    "MEGC2019": load_megc2019,
}
# A user's own recordings (a CSV of clips) load with ``load_folder(csv_path)``: it takes a
# file, not a data root, so it is not in ADAPTERS or discover().

#: what :func:`discover` looks for, in words (for messages)
EXPECTED_LAYOUT = (
    "CASME2/ with a coding sheet CASME2-coding-*.xlsx, SMIC/ with HS/, VIS/ or NIR/ camera "
    "folders, SAMM/ with SAMM_Micro_FACS_Codes*.xlsx, a CAS(ME)^3 part A/C sheet or frame tree, "
    "CAS(ME)^2 with CASME_sq_gt.xlsx or rawpic/, MMEW/ with its sheet, or a DFME sheet"
)


def load_dataset(name: str, root: str | Path, **kw) -> pd.DataFrame:
    """Load the database ``name`` (case-insensitive key of :data:`ADAPTERS`) from ``root``.

    Extra keyword arguments go to the loader (e.g. ``missing="skip"``, ``sheet=...``).
    """
    key = str(name).upper()
    if key not in ADAPTERS:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(ADAPTERS)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} does not exist or is not a folder")
    return ADAPTERS[key](root, **kw)


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
            f"{EXPECTED_LAYOUT})"
        )
    found = casme2.discover(root)
    try:
        s = smic.find_root(root)
        for cam in smic.CAMERAS:
            if child_dir(s, cam.upper()) is not None:
                found.append(smic.dataset_name(cam))
    except FileNotFoundError:
        pass
    found += samm.discover(root) + casme3.discover(root) + casme2_sq.discover(root)
    found += mmew.discover(root)
    if found_in(dfme.find_root, root):
        found.append("DFME")
    if {"CASME2", "SMIC_HS", "SAMM"} <= set(found) and found_in(megc2019.find_list, root):
        found.append("MEGC2019")
    return found
