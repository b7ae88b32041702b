"""``merkit extract``: every clip of the databases on disk described into one feature file."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.console import Console

from merkit._io import ensure_writable_dir
from merkit._progress import progress_bar
from merkit.data.adapters import discover
from merkit.data.schema import FeatureSet
from merkit.features.cache import FeatureCache
from merkit.features.extract import (
    Preprocess,
    check_clip_shape,
    configure_descriptor,
    extract,
    feature_file_paths,
    save_feature_file,
)
from merkit.features.registry import Descriptor
from merkit.parallel import Backend, open_backend
from merkit.workflows.databases import (
    feature_cache,
    load_databases,
    scheme_classes,
    skipped_clips,
)

__all__ = ["DatabaseFeatures", "ExtractResult", "extract_databases", "run_extract"]


@dataclass
class DatabaseFeatures:
    """Features of several databases with one descriptor (:func:`extract_databases`).

    Attributes
    ----------
    features : dict
        Database name -> FeatureSet.
    skipped : DataFrame
        ``dataset, subject, clip, reason`` of dropped clips (no face, skip mode).
    computed, cached : int
        Clips described now / read from the cache.
    descriptor : str
        Canonical descriptor spec.
    extraction : dict
        Database name -> :class:`merkit.features.extract.Extraction`.
    """

    features: dict[str, FeatureSet]
    skipped: pd.DataFrame
    computed: int
    cached: int
    descriptor: str
    extraction: dict = field(default_factory=dict)


def extract_databases(
    tables: dict[str, pd.DataFrame],
    *,
    descriptor: str | Descriptor = "lbp_top:r3p8",
    levels: str | None = None,
    scheme: str = "cdmer3",
    preprocess: Preprocess | None = None,
    on_missing: str = "raise",
    n_jobs: int = 1,
    cache: FeatureCache | str | Path | None = None,
    console: Console | None = None,
    progress: bool = True,
    backend: str | Backend = "loky",
    address: str | None = None,
) -> DatabaseFeatures:
    """Extract one descriptor for every database, with a progress bar per database
    (``n_jobs`` workers of ``backend``, one :class:`merkit.parallel.Backend` for all).

    ``levels`` (e.g. ``"1,2,4,8"``) replaces the descriptor's block levels.
    """
    desc = configure_descriptor(descriptor, levels)
    classes = scheme_classes(tables, scheme)
    out: dict[str, FeatureSet] = {}
    runs = {}
    with (
        progress_bar(progress, console=console) as bar,
        open_backend(backend, n_jobs, address) as be,
    ):
        for name, table in tables.items():
            task = bar.add_task(f"{desc.name} {name}", total=len(table))
            runs[name] = extract(
                table,
                desc,
                preprocess=preprocess,
                n_jobs=n_jobs,
                backend=be,
                cache=cache,
                on_missing=on_missing,
                classes=classes,
                name=name,
                progress=lambda k, task=task: bar.advance(task, k),
            )
            out[name] = runs[name].features
    skipped = [r.skipped for r in runs.values() if len(r.skipped)]
    return DatabaseFeatures(
        features=out,
        skipped=pd.concat(skipped, ignore_index=True)
        if skipped
        else next(iter(runs.values())).skipped,
        computed=sum(r.computed for r in runs.values()),
        cached=sum(r.cached for r in runs.values()),
        descriptor=desc.name,
        extraction=runs,
    )


@dataclass
class ExtractResult:
    """What :func:`run_extract` wrote."""

    npz: Path
    csv: Path
    skipped_csv: Path | None
    features: dict[str, FeatureSet]
    descriptor: str
    computed: int
    cached: int
    cache: Path | None
    seconds: float
    skipped: int = 0  # clips left out (frames missing, no face), listed in skipped_csv

    @property
    def clips(self) -> dict[str, int]:
        """Clips described per database."""
        return {name: len(fs) for name, fs in self.features.items()}

    @property
    def dim(self) -> int:
        """Feature columns."""
        return int(next(iter(self.features.values())).X.shape[1])


def run_extract(
    data_dir: str | Path,
    out: str | Path,
    *,
    descriptor: str = "lbp_top:r3p8",
    levels: str | None = None,
    weights: str | Path | None = None,
    datasets: Sequence[str] | None = None,
    scheme: str = "cdmer3",
    preprocess: Preprocess | None = None,
    skip_missing: bool = False,
    n_jobs: int = 1,
    cache: str | Path | bool | None = None,
    console: Console | None = None,
    progress: bool = True,
    backend: str | Backend = "loky",
    address: str | None = None,
    missing: str = "raise",
) -> ExtractResult:
    """Describe every clip of the databases under ``data_dir`` and write one feature file.

    Parameters
    ----------
    data_dir : path
        Databases in their native layouts.
    out : path
        ``F`` or ``F.npz``: writes ``F.npz`` and ``F.csv`` (and ``F.skipped.csv`` when
        clips were dropped), see :func:`merkit.features.extract.save_feature_file`.
    levels : str, optional
        Block levels replacing the descriptor's, e.g. ``"1,2,4,8"``.
    weights : path, optional
        Weights file of a deep descriptor (``c3d``, required there; an error for the others).
    datasets : sequence of str, optional
        Databases to describe (default: every one found).
    scheme : str
        Label scheme, or ``"none"`` (native emotions, every clip kept).
    preprocess : Preprocess, optional
        Frame size, TIM length, alignment.
    skip_missing : bool
        With alignment, drop (and list) clips without a face instead of failing.
    cache : path, bool or None
        Per-clip cache folder; None/True: ``<data_dir>/.merkit-cache``; False: none.
    n_jobs, backend, address
        Workers over clips: local processes (``"loky"``) or a Ray / Dask cluster
        (:class:`merkit.parallel.Backend`).
    missing : {"raise", "error", "skip"}
        Clips whose frames are missing: stop, or leave them out (listed in
        ``F.skipped.csv`` with the clips without a face).

    Raises
    ------
    PermissionError, NotADirectoryError
        The folder of ``out`` cannot be written (checked before any clip is read).
    """
    t0 = time.perf_counter()
    # unknown descriptors and unusable weights fail before reading
    desc = configure_descriptor(descriptor, levels, weights)
    check_clip_shape(desc, preprocess)
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder {data_dir} does not exist")
    ensure_writable_dir(feature_file_paths(out)[0].parent, "--out")  # before any clip
    names = list(datasets) if datasets else discover(data_dir)
    tables = load_databases(data_dir, names=names or None, scheme=scheme, missing=missing)
    store = feature_cache(data_dir, cache)
    got = extract_databases(
        tables,
        descriptor=desc,
        scheme=scheme,
        preprocess=preprocess,
        on_missing="skip" if skip_missing else "raise",
        n_jobs=n_jobs,
        cache=store,
        console=console,
        progress=progress,
        backend=backend,
        address=address,
    )
    pre = next(iter(got.extraction.values())).preprocess
    lists = [s for s in (skipped_clips(tables), got.skipped) if len(s)]
    skipped = pd.concat(lists, ignore_index=True) if lists else got.skipped
    npz, csv = save_feature_file(
        got.features,
        out,
        descriptor=desc,
        preprocess=pre,
        scheme=str(scheme),
        skipped=skipped,
    )
    skipped_csv = npz.with_name(npz.stem + ".skipped.csv") if len(skipped) else None
    return ExtractResult(
        npz=npz,
        csv=csv,
        skipped_csv=skipped_csv,
        features=got.features,
        descriptor=desc.name,
        computed=got.computed,
        cached=got.cached,
        cache=store.directory if store is not None else None,
        seconds=time.perf_counter() - t0,
        skipped=len(skipped),
    )
