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

from merkit.data.adapters import casme2, smic
from merkit.data.adapters._common import child_dir
from merkit.data.adapters.casme2 import load_casme2
from merkit.data.adapters.smic import load_smic, smic_clip_name, smic_subject_id

__all__ = [
    "ADAPTERS",
    "EXPECTED_LAYOUT",
    "discover",
    "load_casme2",
    "load_dataset",
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
}

#: what :func:`discover` looks for, in words (for messages)
EXPECTED_LAYOUT = (
    "CASME2/ with a coding sheet CASME2-coding-*.xlsx, or SMIC/ with HS/, VIS/ or NIR/ "
    "camera folders"
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
    found: list[str] = []
    try:
        c2 = casme2.find_root(root)
        # a frame folder without its sheet still counts: loading then names what is missing
        if any(c2.glob(casme2.SHEET_GLOB)) or child_dir(c2, "Cropped") is not None:
            found.append("CASME2")
    except FileNotFoundError:
        pass
    try:
        s = smic.find_root(root)
        for cam in smic.CAMERAS:
            if child_dir(s, cam.upper()) is not None:
                found.append(smic.dataset_name(cam))
    except FileNotFoundError:
        pass
    return found
