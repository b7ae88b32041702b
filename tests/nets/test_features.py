"""Penultimate features of every network, the per-fold trainer and multi-label training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from merkit.nets import MODELS, create_model, input_kind
from merkit.nets.data import clip_volume, make_loader
from merkit.nets.multilabel import MultiLabelNet, decode_multilabel, encode_multilabel
from merkit.nets.train import TrainConfig, embed, train_fold

CLIP = (2, 3, 8, 32, 32)
FLOW = (2, 3, 28, 28)
#: width of the penultimate layer and the final linear layer applied to it
LAST = {
    "ststnet": (400, "fc"),
    "off_apexnet": (1024, "head.3"),  # Linear, ReLU, Dropout, Linear
    "basic_inception": (1024, "head.3"),
    "dual_inception": (1024, "head.3"),
    "fr": (256, "classifier.3"),
    "fr_fc": (256, "classifier.3"),
    "fr_concat": (256, "classifier.3"),
    "rcn_a": (64 * 7 * 7, "classifier"),
    "htnet": (1024, "fc"),
    "frl_dgt": (64, "head"),  # mean of the fused tokens after LayerNorm
    "r3d": (512, "fc"),
    "i3d": (40 + 56 + 16 + 16, "fc"),  # Mixed_4c at a quarter of I3D's channels
    "mersiam": (128, "fc"),  # the embedding (dropout only in training)
}


def test_every_registered_model_has_an_entry():
    assert set(LAST) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_features_feed_the_last_linear_layer(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=4).eval()
    x = torch.rand(FLOW if input_kind(name) == "flow" else CLIP)
    dim, last = LAST[name]
    with torch.no_grad():
        z = model.features(x)
        out = model(x)
        logits = out["logits"] if isinstance(out, dict) else out
        head = model.get_submodule(last)
        assert isinstance(head, torch.nn.Linear)
        assert z.shape == (2, dim)
        torch.testing.assert_close(head(z), logits)


def _multilabel_data(n=24, seed=0):
    """Label j is on when the u channel is bright in band j: 3 labels, learnable."""
    rng = np.random.default_rng(seed)
    Y = rng.integers(0, 2, (n, 3)).astype(np.int8)
    X = rng.normal(0.0, 0.1, (n, 3, 28, 28)).astype(np.float32)
    for j in range(3):
        X[Y[:, j] == 1, 0, 9 * j : 9 * j + 9, :] += 2.0
    return X, Y


def test_bit_codes_round_trip_and_reject_bad_targets():
    Y = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1]], dtype=np.int8)
    codes = encode_multilabel(Y)
    assert codes.tolist() == [5, 0, 7]
    assert np.array_equal(decode_multilabel(codes, 3), Y)
    t = decode_multilabel(torch.as_tensor(codes), 3)
    assert t.dtype == torch.float32 and t.tolist() == Y.tolist()
    with pytest.raises(ValueError, match="must be 0/1"):
        encode_multilabel(np.array([[2, 0]]))
    with pytest.raises(ValueError, match="1..16 labels"):
        encode_multilabel(np.zeros((2, 17)))


def test_multilabel_loss_is_the_mean_bce_and_logits_are_the_predicted_code():
    torch.manual_seed(0)
    net = MultiLabelNet(create_model("ststnet", num_classes=3), 3).eval()
    X, Y = _multilabel_data(4)
    x = torch.as_tensor(X)
    out = net(x)
    assert out["logits"].shape == (4, 8) and out["au_logits"].shape == (4, 3)
    code = (out["au_logits"] > 0).long() @ torch.tensor([1, 2, 4])
    assert torch.equal(out["logits"].argmax(1), code)
    targets = torch.as_tensor(encode_multilabel(Y))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        out["au_logits"], torch.as_tensor(Y, dtype=torch.float32)
    )
    torch.testing.assert_close(net.loss(out, targets), expected)
    with pytest.raises(ValueError, match="per-class weights do not apply"):
        net.loss(out, targets, weight=torch.ones(3))
    # FR adds lam x the BCE of its detectors
    fr = MultiLabelNet(create_model("fr", num_classes=3), 3).eval()
    out = fr(x)
    y = torch.as_tensor(Y, dtype=torch.float32)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    torch.testing.assert_close(
        fr.loss(out, targets), bce(out["au_logits"], y) + 0.85 * bce(out["proposal"], y)
    )


def test_train_fold_multilabel_learns_and_returns_features():
    X, Y = _multilabel_data(32)
    cfg = TrainConfig(epochs=30, batch_size=8, optimizer="adam", lr=1e-2, num_classes=3)
    tr, te = np.arange(24), np.arange(24, 32)
    got = train_fold("ststnet", X, Y, tr, te, cfg, seed=1, fold_index=2, multilabel=True,
                     features=True)  # fmt: skip
    assert got.y_pred.shape == (8, 3) and got.probs.shape == (8, 3)
    assert np.array_equal(got.y_pred, (got.probs > 0.5).astype(np.int8))
    assert (got.y_pred == Y[te]).mean() >= 0.9
    assert got.history["accuracy"][-1] > got.history["accuracy"][0]  # exact-match ratio
    assert got.features.shape == (8, 400)
    again = train_fold("ststnet", X, Y, tr, te, cfg, seed=1, fold_index=2, multilabel=True)
    np.testing.assert_array_equal(again.probs, got.probs)
    assert again.features is None
    # nothing to predict: a final model
    final = train_fold("ststnet", X, Y, tr, np.zeros(0, np.int64), cfg, multilabel=True)
    assert final.probs.shape == (0, 3) and final.y_pred.shape == (0, 3)


def test_train_fold_single_label_matches_embed():
    X, Y = _multilabel_data(20)
    y = Y[:, 0].astype(np.int64)
    cfg = TrainConfig(epochs=2, batch_size=8, optimizer="adam", lr=1e-3, num_classes=2)
    got = train_fold("off_apexnet", X, y, np.arange(15), np.arange(15, 20), cfg,
                     features=True)  # fmt: skip
    assert got.y_pred.dtype == np.int64 and got.probs.shape == (5, 2)
    np.testing.assert_allclose(got.probs.sum(axis=1), 1.0, atol=1e-6)
    z = embed(got.model, make_loader(X[15:], batch_size=2))
    np.testing.assert_allclose(z, got.features, rtol=1e-5, atol=1e-6)
    assert len(got.history["loss"]) == 2 and got.seconds > 0


def test_clip_volume_resamples_and_scales():
    frames = np.stack([np.full((6, 5), 10.0 * t) for t in range(7)])
    vol = clip_volume(frames, length=4)
    assert vol.shape == (1, 4, 6, 5) and vol.dtype == np.float32
    assert vol[0, 0, 0, 0] == pytest.approx(0.0, abs=1e-4)
    assert vol[0, -1, 0, 0] == pytest.approx(60.0 / 255.0, abs=1e-4)
    with pytest.raises(ValueError, match=r"\(T >= 2, H, W\) grey frames"):
        clip_volume(frames[:1])
