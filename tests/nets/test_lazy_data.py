"""Clip volumes read from disk clip by clip (ClipArray, ClipDataset): the same numbers as
in memory, whatever the number of loader workers, reading only the clips asked for, and
one-line errors naming a missing or damaged cache file."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from merkit.nets import data as nd
from merkit.nets.data import ClipArray, ClipDataset, ClipInputError, make_loader
from merkit.nets.fold_batched import train_folds_batched
from merkit.nets.train import TrainConfig, _in_memory, _labels_of, train_fold

SHAPE = (1, 4, 12, 12)  # C, T, H, W
N = 14


def _clips(root: Path, n: int = N, seed: int = 0) -> tuple[np.ndarray, ClipArray, np.ndarray]:
    """``n`` random clips with a class-dependent bright frame, saved one ``.npy`` each."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.random((n, *SHAPE), dtype=np.float32)
    X[np.arange(n), 0, y] += 1.0  # class c: frame c brighter
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, clip in enumerate(X):
        paths.append(root / f"clip{i:02d}.npy")
        np.save(paths[-1], clip)
    return X, ClipArray(paths, SHAPE, names=[f"DFME/sub{i:02d}/c{i}" for i in range(n)]), y


def _count_reads(monkeypatch) -> list[str]:
    """Names of the files ``np.load`` opens from now on (in this process)."""
    reads: list[str] = []
    real = np.load
    monkeypatch.setattr(nd.np, "load", lambda p, **kw: reads.append(Path(p).name) or
                        real(p, **kw))  # fmt: skip
    return reads


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _fold(X, y, cfg, **kw):
    return train_fold("r3d", X, y, np.arange(10), np.arange(10, N), cfg, seed=3, fold_index=1,
                      model_kwargs={"in_channels": 1, "width": 2}, features=True,
                      **kw)  # fmt: skip


CFG = TrainConfig(epochs=3, batch_size=4, optimizer="adam", lr=1e-2, num_classes=3)


def test_clip_array_indexes_like_the_stacked_array_without_reading(tmp_path, monkeypatch):
    X, lazy, _ = _clips(tmp_path)
    reads = []
    real = np.load
    monkeypatch.setattr(nd.np, "load", lambda p, **kw: reads.append((Path(p).name, kw)) or
                        real(p, **kw))  # fmt: skip
    view = lazy[np.array([5, 2, 9])][1:]
    mask = lazy[np.arange(N) % 2 == 1]
    assert reads == []  # views read nothing
    assert isinstance(view, ClipArray) and view.shape == (2, *SHAPE) and len(mask) == 7
    assert view.names == ("DFME/sub02/c2", "DFME/sub09/c9") and lazy.dtype == np.float32
    assert lazy.nbytes == X.nbytes and lazy.ndim == 5
    one = lazy[-1]
    assert reads == [("clip13.npy", {"mmap_mode": "r", "allow_pickle": False})]
    assert type(one) is np.ndarray and one.flags.owndata and one.dtype == np.float32
    np.testing.assert_array_equal(one, X[13])
    np.testing.assert_array_equal(view.take([1, 0]), X[[9, 2]])
    np.testing.assert_array_equal(np.asarray(mask), X[1::2])
    # the object holds file names only, never an array: it pickles to a few hundred bytes
    assert not any(isinstance(v, np.ndarray) for v in vars(lazy).values())
    assert len(pickle.dumps(lazy)) < 2_000 < X.nbytes


def test_a_batch_reads_only_its_own_clips(tmp_path, monkeypatch):
    X, lazy, y = _clips(tmp_path)
    reads = _count_reads(monkeypatch)
    loader = make_loader(lazy[np.arange(4, 12)], y[4:12], batch_size=3, shuffle=True, seed=1)
    batch, labels = next(iter(loader))
    rows = [int(name[4:6]) for name in reads]  # clipNN.npy
    assert len(rows) == 3 and all(4 <= r < 12 for r in rows)
    assert torch.equal(batch, torch.from_numpy(X[rows])) and labels.tolist() == y[rows].tolist()
    assert _in_memory(loader) is None  # the DataLoader path, not the tensor fast path
    assert _labels_of(loader).tolist() == y[4:12].tolist() and len(reads) == 3  # no read


def test_lazy_training_equals_in_memory_bit_for_bit(tmp_path, monkeypatch):
    X, lazy, y = _clips(tmp_path)
    mem = _fold(X, y, CFG)
    reads = _count_reads(monkeypatch)
    disk = _fold(lazy, y, CFG)
    # every training clip once per epoch, every test clip once for predict and for embed
    assert len(reads) == CFG.epochs * 10 + 2 * (N - 10)
    a, b = _state(mem.model), _state(disk.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert mem.history == disk.history and len(mem.history["loss"]) == 3
    np.testing.assert_array_equal(mem.probs, disk.probs)
    np.testing.assert_array_equal(mem.features, disk.features)
    np.testing.assert_array_equal(mem.y_pred, disk.y_pred)
    assert mem.features.shape == (4, 16) and np.allclose(mem.probs.sum(1), 1.0, atol=1e-6)
    # the weights moved, and another seed gives other weights: the equality is not vacuous
    assert mem.history["loss"][-1] < mem.history["loss"][0]
    other = train_fold("r3d", lazy, y, np.arange(10), np.arange(10, N), CFG, seed=4,
                       fold_index=1, model_kwargs={"in_channels": 1, "width": 2})  # fmt: skip
    assert not torch.equal(other.model.fc.weight, disk.model.fc.weight)


def test_worker_processes_change_nothing(tmp_path):
    _, lazy, y = _clips(tmp_path)
    cfg = TrainConfig(epochs=2, batch_size=4, optimizer="adam", lr=1e-2, num_classes=3)
    runs = [_fold(lazy, y, cfg, workers=w) for w in (0, 2)]
    a, b = (_state(r.model) for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    np.testing.assert_array_equal(runs[0].probs, runs[1].probs)
    assert runs[0].history == runs[1].history
    pinned = _fold(lazy, y, cfg, pin_memory=True)  # no accelerator here: no effect, no error
    assert torch.equal(_state(pinned.model)["fc.weight"], a["fc.weight"])


def test_make_loader_refuses_negative_workers(tmp_path):
    _, lazy, y = _clips(tmp_path, n=3)
    with pytest.raises(ValueError, match=r"^workers=-1 \(--workers\): must be a whole number >= 0"):
        make_loader(lazy, y, workers=-1)
    with pytest.raises(ValueError, match="ClipDataset: X has 3 clips, y 2"):
        make_loader(lazy, y[:2])


def _damage(lazy: ClipArray, how: str) -> str:
    path = Path(lazy.paths[4])
    if how == "missing":
        path.unlink()
        return "is missing"
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:300])
        return r"is damaged or truncated \(.+\)"
    if how == "empty":
        path.write_bytes(b"")
        return r"is damaged or truncated \(.+\)"
    np.save(path, np.zeros((1, 4, 12, 11), np.float32))
    return r"holds an array of shape \(1, 4, 12, 11\), expected \(1, 4, 12, 12\)"


@pytest.mark.parametrize("how", ["missing", "truncated", "empty", "shape"])
def test_missing_or_damaged_cache_file_is_a_named_one_line_error(tmp_path, how):
    _, lazy, y = _clips(tmp_path, n=6)
    what = _damage(lazy, how)
    todo = "" if how == "missing" else "delete the file and "
    message = (rf"^clip DFME/sub04/c4: its cached input '.*clip04\.npy' {what}; {todo}run the "
               r"same merkit train --data command again: clips missing from the cache are "
               r"computed again$")  # fmt: skip
    with pytest.raises(ClipInputError, match=message) as err:
        lazy.load(4)
    assert "\n" not in str(err.value) and isinstance(err.value, ValueError)
    np.testing.assert_array_equal(lazy.load(3).shape, SHAPE)  # the other clips still read


def test_a_worker_error_stays_one_line(tmp_path):
    _, lazy, y = _clips(tmp_path, n=6)
    _damage(lazy, "missing")
    loader = make_loader(lazy, y, batch_size=6, workers=2)
    with pytest.raises(ClipInputError) as err:
        list(loader)
    msg = str(err.value)
    assert msg.startswith("clip DFME/sub04/c4: its cached input '") and "\n" not in msg
    assert msg.endswith(
        "is missing; run the same merkit train --data command again: clips "
        "missing from the cache are computed again"
    )


def test_fold_batched_path_refuses_on_disk_inputs(tmp_path):
    _, lazy, y = _clips(tmp_path, n=6)
    with pytest.raises(ValueError, match="fold-batched path holds every input in memory"):
        train_folds_batched("ststnet", lazy, y, [], CFG)


def test_clip_dataset_items_are_what_the_tensor_dataset_gives(tmp_path):
    X, lazy, y = _clips(tmp_path, n=5)
    ds = ClipDataset(lazy, y)
    x, t = ds[2]
    assert x.dtype == torch.float32 and t.dtype == torch.int64 and t.ndim == 0
    assert torch.equal(x, torch.from_numpy(X[2])) and int(t) == 2
    xb, yb = ds.__getitems__([3, 0])  # what the DataLoader asks for: one whole batch
    assert torch.equal(xb, torch.from_numpy(X[[3, 0]])) and yb.tolist() == [0, 0]
    assert xb.is_contiguous() and yb.dtype == torch.int64
    assert ClipDataset(lazy).y.tolist() == [-1] * 5
