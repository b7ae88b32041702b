"""The leak audit's record (train_fold / train_folds_batched ``audit_every``): the test
predictions after each evaluated epoch are those of the network at that epoch, and
recording them changes neither the weights nor the fold's results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from merkit.nets.fold_batched import FoldSpec, train_folds_batched
from merkit.nets.train import TrainConfig, audit_epochs, train_fold
from tests.nets.test_lazy_data import N, _clips

rng = np.random.default_rng(0)
X = rng.random((36, 3, 28, 28), dtype=np.float32)
Y = np.arange(36) % 3
X[np.arange(36), Y, :6, :6] += 1.0  # something to learn
TRAIN, TEST = np.arange(28), np.arange(28, 36)
CFG = TrainConfig(epochs=4, batch_size=8, optimizer="adam", lr=1e-2, num_classes=3)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_audit_epochs_are_every_nth_and_the_last():
    assert audit_epochs(10, 1) == list(range(1, 11))
    assert audit_epochs(10, 3) == [3, 6, 9, 10]
    assert audit_epochs(10, 20) == [10]
    assert audit_epochs(10, 0) == []


@pytest.mark.parametrize("model", ["ststnet", "off_apexnet"])
def test_recording_changes_nothing_and_the_last_entry_is_the_folds_prediction(model):
    plain = train_fold(model, X, Y, TRAIN, TEST, CFG, seed=2)
    audited = train_fold(model, X, Y, TRAIN, TEST, CFG, seed=2, audit_every=1)
    assert plain.audit is None
    assert _same_weights(plain.model, audited.model)
    np.testing.assert_array_equal(plain.probs, audited.probs)
    epochs, probs = audited.audit
    np.testing.assert_array_equal(epochs, [1, 2, 3, 4])
    assert probs.shape == (4, len(TEST), 3) and probs.dtype == np.float32
    np.testing.assert_array_equal(probs[-1], audited.probs)
    assert not np.allclose(probs[0], probs[-1])  # the epochs differ: the record is not a copy


def test_an_epochs_entry_is_what_the_network_predicts_after_that_many_epochs():
    # constant learning rate: the first 2 epochs of a 4-epoch run are a 2-epoch run
    audited = train_fold("ststnet", X, Y, TRAIN, TEST, CFG, seed=5, audit_every=2)
    short = train_fold("ststnet", X, Y, TRAIN, TEST, TrainConfig(**{**CFG.__dict__, "epochs": 2}),
                       seed=5)  # fmt: skip
    np.testing.assert_array_equal(audited.audit[0], [2, 4])
    np.testing.assert_allclose(audited.audit[1][0], short.probs, rtol=0, atol=1e-6)


def test_recording_from_disk_leaves_the_dropout_draws_alone(tmp_path):
    # reading the test clips from disk between epochs (a DataLoader) must not move the
    # global RNG that draws the next epochs' dropout masks
    _, lazy, y = _clips(tmp_path)
    cfg = TrainConfig(epochs=3, batch_size=4, optimizer="adam", lr=1e-2, num_classes=3)
    kw = {"model_kwargs": {"in_channels": 1, "width": 2, "dropout": 0.5}, "seed": 3}
    plain = train_fold("r3d", lazy, y, np.arange(10), np.arange(10, N), cfg, **kw)
    audited = train_fold("r3d", lazy, y, np.arange(10), np.arange(10, N), cfg, audit_every=1, **kw)
    assert _same_weights(plain.model, audited.model)
    np.testing.assert_array_equal(plain.probs, audited.probs)
    assert audited.audit[1].shape == (3, N - 10, 3)


def test_multilabel_folds_and_empty_test_sets_record_nothing_and_bad_values_are_refused():
    got = train_fold("ststnet", X, Y, TRAIN, np.zeros(0, np.int64), CFG, audit_every=1)
    assert got.audit is None
    with pytest.raises(ValueError, match=r"audit_every=-1: must be >= 0 \(0 records nothing\)"):
        train_fold("ststnet", X, Y, TRAIN, TEST, CFG, audit_every=-1)


def test_fold_batched_path_records_the_same_way():
    subj = np.arange(36) % 4
    folds = [FoldSpec(np.flatnonzero(subj != s), np.flatnonzero(subj == s), s) for s in range(4)]
    cfg = TrainConfig.preset("ststnet", num_classes=3, epochs=4)
    plain = train_folds_batched("ststnet", X, Y, folds, cfg, seed=1)
    audited = train_folds_batched("ststnet", X, Y, folds, cfg, seed=1, audit_every=2)
    short = train_folds_batched("ststnet", X, Y, folds,
                                TrainConfig(**{**cfg.__dict__, "epochs": 2}), seed=1)  # fmt: skip
    for p, a, s in zip(plain, audited, short, strict=True):
        assert _same_weights(p.model, a.model)
        np.testing.assert_array_equal(p.probs, a.probs)
        np.testing.assert_array_equal(a.audit[0], [2, 4])
        np.testing.assert_array_equal(a.audit[1][-1], a.probs)
        np.testing.assert_allclose(a.audit[1][0], s.probs, rtol=0, atol=1e-6)
