"""MERSiam: shapes, parameter counts, within-batch pairs, focal loss, two-stage training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from merkit.nets import count_parameters, create_model
from merkit.nets.data import make_loader
from merkit.nets.mersiam import MERSiam, focal_loss, within_batch_pairs
from merkit.nets.train import PRESETS, TrainConfig, fit, train_fold


def c3d_count(width: int, embed: int, classes: int, cin: int = 3) -> int:
    """Trainable weights from the layer formula: 8 bias-free 3x3x3 convolutions with
    BatchNorm (scale + shift), embedding, pair head, classifier."""
    chans = [cin] + [width * m for m in (1, 2, 4, 4, 8, 8, 8, 8)]
    convs = sum(27 * a * b + 2 * b for a, b in zip(chans[:-1], chans[1:], strict=True))
    return convs + (chans[-1] * embed + embed) + (embed + 1) + (embed * classes + classes)


@pytest.mark.parametrize(("width", "embed", "expected"),
                         [(16, 128, 1_747_700), (64, 512, 27_923_396), (2, 8, 27_506)])  # fmt: skip
def test_parameter_counts(width, embed, expected):
    model = create_model("mersiam", width=width, embed_dim=embed)
    assert count_parameters(model) == c3d_count(width, embed, 3) == expected


def test_forward_shapes_dfme_sequence_and_composite_image():
    torch.manual_seed(0)
    model = create_model("mersiam", num_classes=7, width=2, embed_dim=16).eval()
    with torch.no_grad():
        seq = model(torch.rand(2, 3, 10, 112, 112))
        one = model(torch.rand(2, 3, 1, 28, 28))
    assert seq.shape == (2, 7) and one.shape == (2, 7)
    assert model.features(torch.rand(2, 3, 1, 28, 28)).shape == (2, 16)
    model.set_stage("prior")
    out = model(torch.rand(2, 3, 1, 28, 28))
    assert set(out) == {"logits", "embedding"} and out["embedding"].shape == (2, 16)
    with pytest.raises(ValueError, match=r"MERSiam expects a 5-D tensor \[B, C, T, H, W\]"):
        model(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match="MERSiam stage 'nope'"):
        model.set_stage("nope")


def test_pairs_are_the_balanced_within_batch_pairs():
    y = torch.tensor([0, 0, 1, 2])  # candidates (row-major i < j): only (0, 1) is same-class
    torch.manual_seed(0)
    i, j, t = within_batch_pairs(y)
    assert (i[0].item(), j[0].item(), t[0].item()) == (0, 1, 1.0)
    assert t.tolist().count(1.0) == t.tolist().count(0.0) == 1  # 1 same, 1 of 5 different
    assert bool((y[i[1]] != y[j[1]]).item()) and bool((i < j).all())
    # all same: every candidate kept; all different likewise
    i, j, t = within_batch_pairs(torch.tensor([2, 2, 2]))
    assert (i.tolist(), j.tolist(), t.tolist()) == ([0, 0, 1], [1, 2, 2], [1.0, 1.0, 1.0])
    i, j, t = within_batch_pairs(torch.tensor([0, 1, 2]))
    assert t.tolist() == [0.0, 0.0, 0.0]
    # 8 samples, 4 + 4: 12 same, 16 different -> 12 + 12; the same seed, the same pairs
    y = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])
    torch.manual_seed(3)
    a = within_batch_pairs(y)
    torch.manual_seed(3)
    b = within_batch_pairs(y)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert int(a[2].sum()) == 12 and len(a[2]) == 24
    assert torch.equal(a[2], (y[a[0]] == y[a[1]]).float())
    assert len(within_batch_pairs(torch.tensor([1]))[0]) == 0


def test_focal_loss_hand_value_and_cross_entropy_limit():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([0, 2])
    p0 = math.exp(2) / (math.exp(2) + 2)
    p1 = 1 / (2 + math.e)
    terms = [-((1 - p0) ** 2) * math.log(p0), -((1 - p1) ** 2) * math.log(p1)]
    assert focal_loss(logits, y).item() == pytest.approx(sum(terms) / 2, rel=1e-6)
    w = torch.tensor([0.5, 1.0, 2.0])
    assert focal_loss(logits, y, weight=w).item() == pytest.approx(
        (0.5 * terms[0] + 2.0 * terms[1]) / 2.5, rel=1e-6)  # fmt: skip
    for weight in (None, w):
        torch.testing.assert_close(focal_loss(logits, y, gamma=0.0, weight=weight),
                                   F.cross_entropy(logits, y, weight=weight))  # fmt: skip


def test_losses_of_the_two_stages():
    torch.manual_seed(0)
    model = MERSiam(num_classes=3, width=2, embed_dim=8, dropout=0.0)
    x, y = torch.rand(4, 3, 1, 16, 16), torch.tensor([0, 0, 1, 2])
    model.set_stage("prior")
    out = model(x)
    torch.manual_seed(5)
    got = model.loss(out, y)
    torch.manual_seed(5)
    i, j, t = within_batch_pairs(y)
    logit = model.pair_head(torch.abs(out["embedding"][i] - out["embedding"][j])).squeeze(1)
    torch.testing.assert_close(got, F.binary_cross_entropy_with_logits(logit, t))
    correct, count = model.stage_accuracy(out, y)
    assert count == 6 and 0 <= int(correct) <= 6
    model.set_stage("target")
    logits = model(x)
    torch.testing.assert_close(model.loss(logits, y), focal_loss(logits, y, gamma=2.0))
    with pytest.raises(ValueError, match="class indices"):
        model.loss(logits, torch.rand(4, 3))


def test_default_network_is_small_enough_for_a_cpu():
    model = create_model("mersiam")
    assert (model.fc.in_features, model.encoder.conv5b[0].out_channels) == (128, 128)
    assert np.isclose(count_parameters(model) / 1e6, 1.7477, atol=1e-4)


# --------------------------------------------------------------------------- training


def _toy(n: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Flow sequences [n, 3, 2, 16, 16]; class k brightens a band of the u channel."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(128, 20, (n, 3, 2, 16, 16)).astype(np.float32)
    for k in range(3):
        X[y == k, 0, :, 5 * k : 5 * k + 5, :] += 40
    return X, y


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_prior_stage_trains_the_encoder_then_the_target_stage_the_classifier(monkeypatch):
    X, y = _toy()
    torch.manual_seed(0)
    model = MERSiam(num_classes=3, width=2, embed_dim=8)
    init = {name: _params(getattr(model, name)) for name in ("encoder", "fc", "pair_head")}
    at_switch: dict = {}
    original = MERSiam.set_stage

    def spy(self, stage):
        if stage == "target":
            at_switch.update({n: _params(getattr(self, n)) for n in init})
        original(self, stage)

    monkeypatch.setattr(MERSiam, "set_stage", spy)
    cfg = TrainConfig.preset("mersiam", epochs=2, prior_epochs=2)
    loader = make_loader(X, y, batch_size=8, shuffle=True, seed=0)
    history = fit(model, loader, cfg)
    assert history["stage"] == ["prior", "prior", "target", "target"]
    assert len(history["loss"]) == len(history["accuracy"]) == len(history["lr"]) == 4
    assert all(0.0 <= a <= 1.0 for a in history["accuracy"])
    assert not _same(at_switch["encoder"], init["encoder"])  # the prior stage learned
    assert not _same(at_switch["pair_head"], init["pair_head"])
    assert _same(at_switch["fc"], init["fc"])  # the classifier waits for the target stage
    final = {n: _params(getattr(model, n)) for n in init}
    assert not _same(final["fc"], at_switch["fc"]) and not _same(final["encoder"],
                                                                 at_switch["encoder"])  # fmt: skip
    assert _same(final["pair_head"], at_switch["pair_head"])  # unused in the target stage
    assert model.stage == "target" and not model.training


def test_only_training_rows_are_seen_in_either_stage(monkeypatch):
    X, y = _toy(n=18)
    X[:, 0, 0, 0, 0] = np.arange(18)  # each row names itself
    seen: set[int] = set()
    original = MERSiam.features

    def spy(self, x):
        if self.training:
            seen.update(int(v) for v in x[:, 0, 0, 0, 0].tolist())
        return original(self, x)

    monkeypatch.setattr(MERSiam, "features", spy)
    cfg = TrainConfig.preset("mersiam", epochs=1, prior_epochs=1)
    train, test = np.arange(12), np.arange(12, 18)
    got = train_fold("mersiam", X, y, train, test, cfg, model_kwargs={"width": 2, "embed_dim": 8})
    assert seen == set(range(12))
    assert got.probs.shape == (6, 3)


def test_same_seed_same_predictions_and_one_stage_networks_unchanged():
    X, y = _toy()
    cfg = TrainConfig.preset("mersiam", epochs=2, prior_epochs=1)
    kw = {"width": 2, "embed_dim": 8}
    a, b = (train_fold("mersiam", X, y, np.arange(18), np.arange(18, 24), cfg, seed=3,
                       model_kwargs=kw) for _ in range(2))  # fmt: skip
    np.testing.assert_array_equal(a.probs, b.probs)
    c = train_fold("mersiam", X, y, np.arange(18), np.arange(18, 24), cfg, seed=4, model_kwargs=kw)
    assert not np.array_equal(a.probs, c.probs)
    assert "prior_epochs" not in TrainConfig().to_dict()
    assert "prior_epochs" not in PRESETS["fr_cde"].to_dict()
    assert PRESETS["mersiam"].to_dict()["prior_epochs"] == 10
    flows = np.zeros((4, 3, 28, 28), np.float32)
    with pytest.raises(ValueError, match=r"prior_epochs=1 \(--prior-epochs\): STSTNet has no "):
        train_fold("ststnet", flows, np.array([0, 1, 2, 0]), np.arange(4), np.arange(0),
                   TrainConfig(epochs=1, prior_epochs=1))  # fmt: skip


def test_no_augmentation_policy_for_flow_sequences():
    X, y = _toy(n=8)
    cfg = TrainConfig.preset("mersiam", epochs=1, prior_epochs=0, augment="clip")
    with pytest.raises(ValueError, match="MERSiam takes flow sequences; no augmentation"):
        train_fold("mersiam", X, y, np.arange(8), np.arange(0), cfg,
                   model_kwargs={"width": 2, "embed_dim": 8})  # fmt: skip


def test_a_submodule_named_stages_is_not_a_training_stage():
    # R3D holds its residual stages in ``self.stages``: one stage of training all the same
    X, y = np.random.default_rng(0).random((4, 1, 4, 16, 16), np.float32), np.array([0, 1, 2, 0])
    cfg = TrainConfig(epochs=1, batch_size=4)
    got = train_fold("r3d", X, y, np.arange(4), np.arange(0), cfg,
                     model_kwargs={"width": 2, "in_channels": 1})  # fmt: skip
    assert set(got.history) == {"loss", "accuracy", "lr"} and len(got.history["loss"]) == 1
