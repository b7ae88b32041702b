"""Where embarrassingly parallel work runs: joblib's loky processes, or a Ray / Dask cluster.

Grid points (:func:`merkit.protocols.runner.run_grid`, :func:`~merkit.protocols.runner.
run_cdmer`) and clips (:func:`merkit.features.extract.extract`) are independent jobs. A
:class:`Backend` runs them through :class:`joblib.Parallel` under
:func:`joblib.parallel_config`, so the scheduler is joblib's (loky), Ray's
(:func:`ray.util.joblib.register_ray`) or Dask's (``dask.distributed``): none is
written here. Every job is a pure function of its arguments, so the numbers do not depend
on the backend or the number of workers.

``backend="loky"``: ``n_jobs`` local worker processes (1: in this process).
``backend="ray"`` / ``"dask"`` with an ``address`` (``"auto"`` or ``"ray://host:10001"``
for Ray, ``"tcp://host:8786"`` for Dask): connect to that cluster, and leave it running
afterwards; Ray runs at most ``n_jobs`` jobs at once (-1: every CPU of the cluster), Dask
uses every worker of the cluster. Without an address: a local cluster of ``n_jobs``
workers (-1: one per CPU) is started on first use and shut down when the backend is
closed (a Ray runtime already initialised in this process is used as it is). Ray and Dask
are optional (``pip install "merkit[cluster]"``) and imported only when asked for.

Shared arguments (e.g. the task's feature matrices, passed as the same object to several
jobs) go to the workers once: loky memory-maps large arrays; an argument object given to
more than one job whose pickle exceeds :data:`SHARE_BYTES` is put in Ray's object store
once (``ray.put``) or scattered to every Dask worker once (joblib's ``scatter``), instead
of travelling with every job.

Resources per job (``map(..., resources={"CPU": 2, "GPU": 1})``, e.g. a training fold on
a GPU): on Ray such jobs are Ray tasks reserving them (``num_cpus`` / ``num_gpus`` / custom
resources; Ray sets ``CUDA_VISIBLE_DEVICES`` to the task's GPU), each result coming back as
soon as it and the jobs before it are done; Dask asks for those that its workers declare
(``dask worker --resources "GPU=1"``); loky ignores them.

Example::

    with Backend("dask", n_jobs=2) as be:          # local 2-worker Dask cluster
        squares = list(be.map([(pow, (i, 2)) for i in range(10)]))
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from joblib import Parallel, delayed, parallel_config

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "CLUSTER_EXTRA", "Backend", "ClusterExtraMissing", "open_backend"]

#: backend names accepted by :class:`Backend` (and ``--backend`` of the CLI)
BACKENDS: tuple[str, ...] = ("loky", "ray", "dask")

#: how to install the optional cluster dependencies
CLUSTER_EXTRA = 'pip install "merkit[cluster]"'

#: Ray's joblib backend returns lists only: jobs go in chunks of this many per worker so
#: that results come back (and are stored) while the run goes on
RAY_CHUNK_PER_WORKER = 8

#: Ray actor options of the resources Ray names itself (others go under ``resources``)
_RAY_OPTIONS = {"CPU": "num_cpus", "GPU": "num_gpus"}

#: arguments shared by several jobs and larger than this (pickled) go to a cluster once
SHARE_BYTES = 64 * 1024


class ClusterExtraMissing(ImportError):
    """Ray or Dask was asked for but is not installed."""


def _import_ray():
    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError as err:
        raise ClusterExtraMissing(
            f"backend 'ray' needs the ray package, which is not installed ({err}); "
            f"install the cluster extra: {CLUSTER_EXTRA}"
        ) from err
    return ray, register_ray


def _import_dask():
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as err:
        raise ClusterExtraMissing(
            f"backend 'dask' needs dask.distributed, which is not installed ({err}); "
            f"install the cluster extra: {CLUSTER_EXTRA}"
        ) from err
    return Client, LocalCluster


def _shared_arguments(calls: list[tuple[Callable, tuple]]) -> list[Any]:
    """Argument objects given to more than one call whose pickle exceeds SHARE_BYTES."""
    count: dict[int, int] = {}
    obj: dict[int, Any] = {}
    for _, args in calls:
        for a in args:
            if not isinstance(a, (str, bytes, int, float, bool, type(None))):
                count[id(a)] = count.get(id(a), 0) + 1
                obj[id(a)] = a
    return [obj[i] for i, c in count.items() if c > 1 and _pickled_size(obj[i]) > SHARE_BYTES]


def _call(func: Callable, *args: Any) -> Any:
    """``func(*args)``: the Ray task of a job (Ray fetches object references among ``args``)."""
    return func(*args)


def _resolving_refs(func: Callable, *args: Any) -> Any:
    """``func(*args)`` with Ray object references among ``args`` fetched (in a worker)."""
    import ray

    return func(*(ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in args))


def _pickled_size(obj: Any) -> int:
    try:
        return len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # not picklable without cloudpickle (closures...): sent with each job
        return 0


def _local_workers(n_jobs: int) -> int:
    if n_jobs >= 1:
        return int(n_jobs)
    return max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))  # -1: every CPU, -2: all but one


class Backend:
    """Runs independent jobs with joblib on loky processes or on a Ray / Dask cluster.

    Parameters
    ----------
    name : {"loky", "ray", "dask"}
    n_jobs : int
        Local workers (loky, or the local cluster started when no ``address`` is given;
        -1 = one per CPU); with an ``address``, the most jobs Ray runs at once (-1 = every
        CPU of the cluster; Dask always uses every worker).
    address : str, optional
        Cluster to connect to (Ray: ``"auto"``, ``"ray://host:10001"``; Dask:
        ``"tcp://host:8786"``). Not valid with loky.

    A cluster is started / connected on the first :meth:`map` that has work for it and
    released by :meth:`close` (or leaving a ``with`` block); a cluster this backend
    started is shut down, one it connected to keeps running.

    Raises
    ------
    ValueError
        Unknown backend name, or an address with loky.
    ClusterExtraMissing
        (an ImportError) ray / dask.distributed not installed; names the extra to install.
    """

    def __init__(self, name: str = "loky", n_jobs: int = 1, address: str | None = None) -> None:
        name = str(name).strip().lower()
        if name not in BACKENDS:
            raise ValueError(f"unknown parallel backend {name!r}; expected one of {BACKENDS}")
        if name == "loky" and address:
            raise ValueError(
                f"address {address!r} given for the local loky backend; use --backend ray "
                "or --backend dask to run on a cluster"
            )
        if int(n_jobs) == 0:
            raise ValueError("n_jobs must be >= 1 or negative (-1: every worker), got 0")
        if name == "ray":
            _import_ray()  # fail before any work when the extra is missing
        elif name == "dask":
            _import_dask()
        self.name = name
        self.n_jobs = int(n_jobs)
        self.address = address or None
        self._started = False
        self._close: list[Callable[[], None]] = []
        self._workers: int | None = None
        self._client = None  # dask.distributed Client while started
        self._parallel = None  # Ray: the joblib Parallel kept open across maps

    def __repr__(self) -> str:
        where = f", address={self.address!r}" if self.address else ""
        return f"Backend({self.name!r}, n_jobs={self.n_jobs}{where})"

    # ------------------------------------------------------------------ lifecycle
    @property
    def shares_filesystem(self) -> bool:
        """Whether the workers see this machine's files (loky, or a local cluster)."""
        return self.address is None

    @property
    def serial(self) -> bool:
        """Whether jobs run in this process (loky with one job)."""
        return self.name == "loky" and _local_workers(self.n_jobs) == 1

    @property
    def workers(self) -> int:
        """Worker slots of the backend (starts / connects to the cluster)."""
        self._start()
        assert self._workers is not None
        return self._workers

    def _start(self) -> None:
        if self._started:
            return
        if self.name == "loky":
            self._workers = _local_workers(self.n_jobs)
        elif self.name == "ray":
            self._start_ray()
        else:
            self._start_dask()
        self._started = True

    def _start_ray(self) -> None:
        ray, register_ray = _import_ray()
        if ray.is_initialized():
            log.info("ray: using the Ray runtime already initialised in this process")
        elif self.address:
            log.info("ray: connecting to the cluster at %s", self.address)
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
            self._close.append(ray.shutdown)
        else:
            n = _local_workers(self.n_jobs)
            log.info("ray: starting a local cluster of %d worker(s)", n)
            ray.init(
                num_cpus=n,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
            self._close.append(ray.shutdown)
        register_ray()
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._workers = cpus if self.n_jobs < 0 else min(self.n_jobs, cpus)

    def _start_dask(self) -> None:
        Client, LocalCluster = _import_dask()
        if self.address:
            log.info("dask: connecting to the scheduler at %s", self.address)
            client = Client(self.address)
            self._close.append(client.close)
        else:
            n = _local_workers(self.n_jobs)
            log.info("dask: starting a local cluster of %d worker(s)", n)
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # a free port: never clashes with another cluster
                silence_logs=logging.WARNING,
            )
            client = Client(cluster)
            self._close.extend([cluster.close, client.close])  # run in reverse order
        self._client = client
        cores = sum(client.ncores().values()) or 1
        self._workers = cores if self.n_jobs < 0 else min(self.n_jobs, cores)

    def close(self) -> None:
        """Shut down a cluster this backend started (disconnect from one it joined)."""
        while self._close:
            fn = self._close.pop()
            try:
                fn()
            except Exception as err:  # a failing shutdown must not hide the run's outcome
                log.warning("%s: shutting down failed: %s", self, err)
        self._started = False
        self._workers = None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ running
    def map(
        self,
        calls: Iterable[tuple[Callable, tuple]],
        *,
        resources: Mapping[str, float] | None = None,
    ) -> Iterator[Any]:
        """Run ``func(*args)`` for every ``(func, args)``; yield the results in order.

        Serial in this process for loky with one job, and for a single call that asks for
        no ``resources``; a worker's exception is raised here.

        Parameters
        ----------
        calls : iterable of (callable, tuple)
            The jobs; argument objects shared by several jobs go to a cluster once.
        resources : mapping of str to float, optional
            What one job needs, e.g. ``{"CPU": 2, "GPU": 1}``. On Ray each job is a task
            reserving it (``num_cpus``, ``num_gpus``, custom resources), at most ``n_jobs``
            and as many as the cluster holds at once, and its result comes back as soon as
            it and those before it are done; a resource the cluster lacks is dropped with a
            warning. Dask asks for those its workers declare (``dask worker --resources
            "GPU=1"``) and drops the others (a job would wait forever for them). loky
            ignores them. Jobs that ask for resources go to the workers even when there is
            one call.
        """
        calls = list(calls)
        if not calls:
            return
        wanted = {str(k): float(v) for k, v in (resources or {}).items() if float(v) > 0}
        if self.serial or (len(calls) == 1 and (self.name == "loky" or not wanted)):
            for func, args in calls:
                yield func(*args)
            return

        self._start()
        n = self._workers if self.name != "loky" else _local_workers(self.n_jobs)
        if self.name == "ray" and wanted:
            yield from self._ray_tasks(calls, wanted, n)
            return
        extra: dict[str, Any] = {}
        if self.name != "loky":
            shared = _shared_arguments(calls)
            if shared and self.name == "dask":
                extra["scatter"] = shared  # sent to every worker once, found by identity
            elif shared:
                ray, _ = _import_ray()
                refs = {id(a): ray.put(a) for a in shared}  # resolved in the worker
                calls = [(_resolving_refs, (f, *(refs.get(id(a), a) for a in args)))
                         for f, args in calls]  # fmt: skip
            if shared:
                log.debug("%s: %d shared argument(s) sent once", self, len(shared))
        if self.name == "dask":
            extra["client"] = self._client
            granted = self._dask_resources(wanted) if wanted else {}
            if granted:
                extra["resources"] = granted  # passed to client.submit
        jobs = [delayed(func)(*args) for func, args in calls]
        if self.name == "ray":  # no generator support: ordered chunks
            size = max(1, RAY_CHUNK_PER_WORKER * n)
            parallel = self._ray_pool(n)
            for start in range(0, len(jobs), size):
                yield from parallel(jobs[start : start + size])
            return
        with parallel_config(backend=self.name, n_jobs=n, **extra):
            yield from Parallel(n_jobs=n, return_as="generator")(jobs)

    def _ray_tasks(
        self, calls: list[tuple[Callable, tuple]], wanted: dict[str, float], n: int
    ) -> Iterator[Any]:
        """``calls`` as Ray tasks reserving ``wanted`` each, at most ``n`` (and what the
        cluster holds) at once; results in order, each as soon as it and those before it
        are done. Shared arguments go to the object store once; the tasks still running
        are cancelled when the caller stops early."""
        ray, _ = _import_ray()
        options, n = self._ray_options(wanted, n)
        task = ray.remote(_call).options(**options)
        shared = _shared_arguments(calls)
        refs = {id(a): ray.put(a) for a in shared}  # Ray fetches them in the worker
        if shared:
            log.debug("%s: %d shared argument(s) sent once", self, len(shared))
        running: dict[Any, int] = {}  # object ref -> position of the job
        finished: dict[int, Any] = {}
        submitted = returned = 0
        try:
            while returned < len(calls):
                while submitted < len(calls) and len(running) < n:
                    func, args = calls[submitted]
                    ref = task.remote(func, *(refs.get(id(a), a) for a in args))
                    running[ref] = submitted
                    submitted += 1
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    finished[running.pop(ref)] = ref
                while returned in finished:
                    yield ray.get(finished.pop(returned))
                    returned += 1
        finally:
            for ref in running:
                ray.cancel(ref)

    def _ray_options(self, wanted: dict[str, float], n: int) -> tuple[dict, int]:
        """Ray task options reserving ``wanted`` per job, and how many such jobs run at
        once (at most ``n``, and what the cluster's resources hold)."""
        ray, _ = _import_ray()
        have = ray.cluster_resources()
        options: dict[str, Any] = {}
        for name, amount in sorted(wanted.items()):
            if have.get(name, 0.0) < amount:
                log.warning("ray: a job asks for %g %s, the cluster has %g: jobs run without "
                            "reserving it", amount, name, have.get(name, 0.0))  # fmt: skip
                continue
            n = min(n, int(have[name] // amount))
            if name in _RAY_OPTIONS:
                options[_RAY_OPTIONS[name]] = amount
            else:
                options.setdefault("resources", {})[name] = amount
        return options, max(1, n)

    def _dask_resources(self, wanted: dict[str, float]) -> dict[str, float]:
        """The part of ``wanted`` that some worker of the Dask cluster declares."""
        workers = self._client.scheduler_info(n_workers=-1).get("workers", {})
        declared = {k for w in workers.values() for k in (w.get("resources") or {})}
        dropped = sorted(set(wanted) - declared)
        if dropped:
            log.info("dask: no worker declares %s (dask worker --resources); jobs do not ask "
                     "for it", ", ".join(dropped))  # fmt: skip
        return {k: v for k, v in wanted.items() if k in declared}

    def _ray_pool(self, n: int):
        """One joblib Parallel (Ray actor pool) for every map of this backend: creating
        the pool's actors takes seconds."""
        if self._parallel is None:
            with parallel_config(backend="ray", n_jobs=n):
                parallel = Parallel(n_jobs=n)
                parallel.__enter__()
            self._parallel = parallel

            def release() -> None:
                self._parallel = None
                parallel.__exit__(None, None, None)

            self._close.append(release)  # runs before the runtime shuts down
        return self._parallel


@contextmanager
def open_backend(
    backend: str | Backend = "loky", n_jobs: int = 1, address: str | None = None
) -> Iterator[Backend]:
    """A :class:`Backend` for a block: ``backend`` itself when it is one already (left
    open for its owner), else a new one closed at the end of the block."""
    if isinstance(backend, Backend):
        yield backend
        return
    be = Backend(backend, n_jobs, address)
    try:
        yield be
    finally:
        be.close()
