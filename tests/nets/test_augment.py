"""Augmentation (merkit.nets.augment): each transform on a known input, the flow sign and
vector rules in merkit's stored encoding, seeding, the policies, and fit / fold batching."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from merkit.nets import create_model
from merkit.nets.augment import (
    POLICIES,
    affine_flow,
    augment_generator,
    crop_resize,
    flip,
    get_policy,
    mixup,
    random_affine,
    random_crop,
    resample_frames,
    soft_cross_entropy,
    temporal_jitter,
    temporal_shift,
)
from merkit.nets.data import make_loader
from merkit.nets.fold_batched import FoldSpec, batching_problem, train_folds
from merkit.nets.fr import FeatureRefinement
from merkit.nets.multilabel import MultiLabelNet
from merkit.nets.train import PRESETS, TrainConfig, compute_loss, fit, train_fold
from merkit.video.flow import flow_image


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rightward_flow() -> np.ndarray:
    """A 28 x 28 raw flow: a block moving 2 px right (u = 2) on a still face, and a block
    moving 1 px left elsewhere; v moves one block down. u values -1, 0, 2 encode to the
    integers 0, 85, 255 (no rounding ties)."""
    flow = np.zeros((28, 28, 2), np.float32)
    flow[6:12, 3:10, 0] = 2.0  # rightward, left half of the image
    flow[18:22, 20:25, 0] = -1.0
    flow[14:20, 5:9, 1] = 3.0
    return flow


def _encoded(flow: np.ndarray, channels: str = "uvs") -> torch.Tensor:
    """merkit's stored form of a flow (flow_image: per-image min-max 0..255), ``[1, 3, H, W]``."""
    img = flow_image(flow, size=flow.shape[:2]).astype(np.float32)
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    return x.flip(1) if channels == "svu" else x


def _mirror_raw(flow: np.ndarray) -> np.ndarray:
    out = flow[:, ::-1].copy()
    out[..., 0] *= -1
    return out


# --------------------------------------------------------------------------- flip
@pytest.mark.parametrize("channels", ["uvs", "svu"])
def test_flipping_a_rightward_flow_gives_a_leftward_one_in_the_stored_encoding(channels):
    flow = _rightward_flow()
    x = _encoded(flow, channels)
    iu = channels.index("u")
    assert x[0, iu, 8, 5] == 255 and x[0, iu, 0, 0] == 85  # rightward = above the still level
    got = flip(x, channels=channels)
    # the mirrored flow with u negated, encoded by merkit itself
    want = _encoded(_mirror_raw(flow), channels)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert got[0, iu, 8, 27 - 5] == 0 and got[0, iu, 0, 0] == 170  # leftward: below it
    # a plain image mirror would have kept the block rightward (255)
    assert x.flip(-1)[0, iu, 8, 22] == 255


def test_flip_negates_raw_u_and_only_mirrors_v_and_strain():
    x = torch.zeros(2, 3, 4, 5)
    x[:, 0, :, 1] = 2.0  # u rightward in column 1
    x[:, 1, :, 1] = -1.5
    x[:, 2, :, 1] = 0.75
    got = flip(x, encoding="raw", mask=torch.tensor([True, False]))
    assert got[0, 0, :, 3].tolist() == [-2.0] * 4 and got[0, 0].abs().sum() == 8.0
    assert got[0, 1, :, 3].tolist() == [-1.5] * 4 and got[0, 2, :, 3].tolist() == [0.75] * 4
    assert torch.equal(got[1], x[1])  # not selected: unchanged


def test_flipping_twice_is_the_identity():
    g = _gen(3)
    flows = torch.randint(0, 256, (4, 3, 28, 28), generator=g).float()
    flows[:, :, 0, 0], flows[:, :, 0, 1] = 0.0, 255.0
    for enc in ("minmax", "raw"):
        assert torch.equal(flip(flip(flows, encoding=enc), encoding=enc), flows)
    scaled = flows / 255  # FlowSet scale 1/255: the reflection uses each image's own range
    assert torch.allclose(flip(flip(scaled)), scaled, atol=1e-7)
    torch.testing.assert_close(flip(scaled)[:, 0], 1 - scaled[:, 0].flip(-1), rtol=0, atol=1e-7)
    clips = torch.rand(2, 1, 5, 6, 7, generator=g)
    assert torch.equal(flip(clips), clips.flip(-1))
    assert torch.equal(flip(flip(clips)), clips)


# --------------------------------------------------------------------------- affine
@pytest.mark.parametrize("channels", ["uvs", "svu"])
def test_rotating_a_uniform_rightward_flow_by_90_degrees_points_it_up(channels):
    x = torch.zeros(1, 3, 28, 28)
    iu, iv = channels.index("u"), channels.index("v")
    x[:, iu] = 2.0
    up = affine_flow(x, 90.0, channels=channels, encoding="raw")
    inner = (slice(None), slice(6, 22), slice(6, 22))
    assert up[0, iu][inner[1:]].abs().max() < 1e-5
    torch.testing.assert_close(up[0, iv][inner[1:]], torch.full((16, 16), -2.0))  # v < 0: up
    down = affine_flow(x, -90.0, channels=channels, encoding="raw")
    torch.testing.assert_close(down[0, iv][inner[1:]], torch.full((16, 16), 2.0))
    diag = affine_flow(x, 45.0, channels=channels, encoding="raw")[0]
    mag = torch.hypot(diag[iu], diag[iv])[10:18, 10:18]
    torch.testing.assert_close(mag, torch.full((8, 8), 2.0))  # same magnitude


def test_rotation_moves_the_picture_with_its_vectors_and_zoom_scales_them():
    x = torch.zeros(1, 3, 28, 28)
    x[0, 2, 14, 20] = 1.0  # a mark 6.5 px right of the centre (13.5, 13.5)
    turned = affine_flow(x, 90.0, encoding="raw")[0, 2]
    assert (turned > 0.99).nonzero().tolist() == [[7, 14]]  # now 6.5 px above it
    shifted = affine_flow(x, 0.0, 1.0, (2.0, -3.0), encoding="raw")[0, 2]
    assert (shifted > 0.99).nonzero().tolist() == [[11, 22]]
    u = torch.zeros(1, 3, 28, 28)
    u[:, 0] = 2.0
    u[:, 1] = -1.0
    zoomed = affine_flow(u, 0.0, 1.5, encoding="raw")[0]
    torch.testing.assert_close(zoomed[0], torch.full((28, 28), 3.0))  # 2 px -> 3 px
    torch.testing.assert_close(zoomed[1], torch.full((28, 28), -1.5))
    shrunk = affine_flow(u, 0.0, 0.5, encoding="raw")[0]
    assert shrunk[0, 14, 14] == pytest.approx(1.0) and shrunk[0, 0, 0] == 0.0  # zero outside
    same = affine_flow(u, 0.0, 1.0, encoding="raw")
    torch.testing.assert_close(same, u)


def _disc(cx: float, cy: float, r: float = 4.0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    return (1 - ((xx - cx) ** 2 + (yy - cy) ** 2) / r**2).clamp_min(0)


def test_minmax_affine_is_the_encoding_of_the_raw_one_under_its_assumptions():
    """Zero motion is the median (a still face) and u, v span the same range: then rotating
    the stored images equals encoding the rotated raw flow."""
    raw = torch.zeros(1, 3, 28, 28)
    raw[0, 0] = 2.0 * _disc(17, 10) - 1.0 * _disc(9, 18)
    raw[0, 1] = 2.0 * _disc(9, 18) - 1.0 * _disc(17, 10)  # same range as u
    raw[0, 2] = _disc(17, 10) + _disc(9, 18)

    def encode(f):
        lo, hi = f.amin(dim=(-2, -1), keepdim=True), f.amax(dim=(-2, -1), keepdim=True)
        return 255 * (f - lo) / (hi - lo)

    for angle, zoom, shift in [(10.0, 1.0, (0.0, 0.0)), (-8.0, 1.1, (1.0, -1.0)),
                               (0.0, 0.9, (0.5, 0.5))]:  # fmt: skip
        want = encode(affine_flow(raw, angle, zoom, shift, encoding="raw"))
        got = affine_flow(encode(raw), angle, zoom, shift)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-3)
        assert got.amin() == 0 and got.amax() == 255  # still a min-max image
    # u and v with different ranges: the stored units no longer agree (docs/augmentation.md)
    raw[0, 1] *= 0.2
    err = (affine_flow(encode(raw), 10.0) - encode(affine_flow(raw, 10.0, encoding="raw"))).abs()
    assert 1.0 < float(err[0, :2].max()) < 40.0


def test_random_affine_draws_small_per_sample_transforms():
    x = torch.zeros(3, 3, 28, 28)
    x[:, 0] = 2.0
    out = random_affine(x, _gen(1), degrees=10.0, scale=(0.9, 1.1), translate=0.05,
                        encoding="raw")[:, :2, 12:16, 12:16]  # fmt: skip
    angle = torch.rad2deg(torch.atan2(-out[:, 1], out[:, 0]))  # ccw on screen, y down
    assert angle.abs().max() <= 10.0 + 1e-4 and angle.std(dim=(-2, -1)).max() < 1e-3
    mag = torch.hypot(out[:, 0], out[:, 1])
    assert ((mag >= 1.8 - 1e-5) & (mag <= 2.2 + 1e-5)).all()
    assert len({round(float(a), 4) for a in angle[:, 0, 0]}) == 3  # one draw per sample


# --------------------------------------------------------------------------- crop
def test_crop_resize_takes_the_box_and_keeps_the_shape():
    w = 8
    ramp = torch.arange(float(w)).expand(1, 1, 6, w).clone()  # value = column
    out = crop_resize(ramp, 0.5, torch.tensor([0.5, 0.0]))  # the right half
    n = (2 * torch.arange(w) + 1) / w - 1
    want = ((0.5 * n + 0.5 + 1) * w - 1) / 2  # column sampled by each output pixel
    torch.testing.assert_close(out[0, 0, 3], want.clamp(max=w - 1).float())  # edge: border
    assert out[0, 0, 3, 0] == pytest.approx(3.75) and out[0, 0, 3, -1] == 7.0
    clip = torch.arange(float(w)).expand(2, 1, 4, 6, w).clone()
    got = crop_resize(clip, 0.5, torch.tensor([0.5, 0.0]))
    assert got.shape == clip.shape and torch.equal(got[0, 0, 0], got[1, 0, 3])  # frames share it
    assert torch.equal(crop_resize(clip, 1.0, torch.zeros(2)), clip)
    cropped = random_crop(torch.rand(3, 1, 4, 16, 16, generator=_gen(0)), _gen(1))
    assert cropped.shape == (3, 1, 4, 16, 16)
    with pytest.raises(ValueError, match="crop box leaves the image"):
        crop_resize(clip, 0.5, torch.tensor([0.6, 0.0]))


# --------------------------------------------------------------------------- time
def _ramp_clip(t: int = 6) -> torch.Tensor:
    return torch.arange(float(t)).view(1, 1, t, 1, 1).expand(2, 1, t, 3, 3).clone()


def test_temporal_shift_and_jitter_on_a_ramp():
    clip = _ramp_clip()
    got = temporal_shift(clip, 0.5)[0, 0, :, 1, 1]
    assert got.tolist() == [0.5, 1.5, 2.5, 3.5, 4.5, 5.0]  # the last frame repeats
    assert temporal_shift(clip, -2.0)[1, 0, :, 0, 0].tolist() == [0, 0, 0, 1, 2, 3]
    jit = temporal_jitter(clip, _gen(5), max_shift=1.0)[:, 0, 1:-1, 0, 0]
    delta = jit - torch.arange(1.0, 5.0)
    assert (delta.std(1) < 1e-6).all() and (delta.abs() <= 1.0).all()
    assert float(delta[0, 0]) != float(delta[1, 0])  # one shift per clip


def test_frame_rate_resampling_keeps_a_ramp_and_smooths_a_spike():
    clip = _ramp_clip()
    for factor in (0.5, 0.7, 1.0, 1.6):
        torch.testing.assert_close(resample_frames(clip, factor), clip)
    spike = torch.tensor([0.0, 0.0, 4.0, 0.0, 0.0]).view(1, 1, 5, 1, 1)
    assert resample_frames(spike, 0.5).flatten().tolist() == [0.0, 2.0, 4.0, 2.0, 0.0]
    assert torch.equal(resample_frames(spike, 1.0), spike)


# --------------------------------------------------------------------------- mixup
def test_mixup_is_a_convex_combination_with_soft_targets():
    b = 6
    x = torch.eye(b).view(b, 1, b, 1)  # sample i = e_i: the mix shows its weights
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    mixed, targets = mixup(x, y, _gen(2), alpha=0.4, num_classes=3)
    weights = mixed.view(b, b)
    assert (weights >= 0).all() and torch.allclose(weights.sum(1), torch.ones(b))
    lam = float(weights.max(1).values.min())
    assert 0 < lam <= 1 and ((weights > 0).sum(1) <= 2).all()
    torch.testing.assert_close(targets, weights @ torch.nn.functional.one_hot(y, 3).float())
    torch.testing.assert_close(targets.sum(1), torch.ones(b))
    again = mixup(x, y, _gen(2), alpha=0.4, num_classes=3)
    assert torch.equal(again[0], mixed) and torch.equal(again[1], targets)
    with pytest.raises(ValueError, match="mixup needs num_classes"):
        mixup(x, y, _gen(2))


def test_soft_targets_of_one_hot_give_the_class_index_losses():
    g = _gen(0)
    logits = torch.randn(5, 3, generator=g)
    y = torch.tensor([0, 2, 1, 2, 2])
    onehot = torch.nn.functional.one_hot(y, 3).float()
    w = torch.tensor([0.5, 2.0, 1.25])
    for weight in (None, w):
        want = torch.nn.functional.cross_entropy(logits, y, weight=weight)
        torch.testing.assert_close(soft_cross_entropy(logits, onehot, weight), want)
    fr = FeatureRefinement(3, embed_dim=16, detector_hidden=8, classifier_hidden=8)
    out = {"logits": logits, "proposal": torch.randn(5, 3, generator=g)}
    for weight in (None, w):
        torch.testing.assert_close(fr.loss(out, onehot, weight=weight),
                                   fr.loss(out, y, weight=weight))  # fmt: skip
    mixed = 0.3 * onehot + 0.7 * onehot[[1, 2, 3, 4, 0]]
    expected = 0.3 * fr.loss(out, y) + 0.7 * fr.loss(out, y[[1, 2, 3, 4, 0]])
    torch.testing.assert_close(fr.loss(out, mixed), expected)  # linear in the targets
    net = torch.nn.Linear(2, 3)
    torch.testing.assert_close(compute_loss(net, logits, mixed, w),
                               soft_cross_entropy(logits, mixed, w))  # fmt: skip


# --------------------------------------------------------------------------- policies
def _flows(n: int = 4, seed: int = 0) -> torch.Tensor:
    x = torch.randint(0, 256, (n, 3, 28, 28), generator=_gen(seed)).float()
    x[:, :, 0, 0], x[:, :, 0, 1] = 0.0, 255.0
    return x


@pytest.mark.parametrize("name", [n for n in POLICIES if n != "none"])
def test_same_seed_same_augmentation_other_seed_another(name):
    policy = get_policy(name, num_classes=3)
    x = _flows() if policy.kind == "flow" else torch.rand(4, 1, 8, 16, 16, generator=_gen(0))
    y = torch.tensor([0, 1, 2, 1])
    a, ta = policy(x, y, _gen(7))
    b, tb = policy(x, y, _gen(7))
    c, _ = policy(x, y, _gen(8))
    assert torch.equal(a, b) and torch.equal(ta, tb)
    assert not torch.equal(a, c) and not torch.equal(a, x)
    assert a.shape == x.shape and a.dtype == x.dtype
    if policy.mixes:
        assert ta.shape == (4, 3) and torch.allclose(ta.sum(1), torch.ones(4))
    else:
        assert torch.equal(ta, y)


def test_none_policy_is_the_identity_and_the_presets_keep_it():
    x, y = _flows(), torch.tensor([0, 1, 2, 1])
    out, targets = POLICIES["none"](x, y, _gen(0))
    assert out is x and targets is y
    assert all(cfg.augment == "none" for cfg in PRESETS.values())


def test_a_policy_refuses_the_other_input_kind_and_unknown_names():
    clips = torch.rand(2, 1, 4, 8, 8)
    with pytest.raises(ValueError, match=r"^augment policy 'flow' is for flow images \[B, C, "
                                         r"H, W\], not clips \[B, C, T, H, W\]; for clip inputs "
                                         r"use one of: none, clip, clip-mixup$"):  # fmt: skip
        POLICIES["flow"](clips, torch.zeros(2, dtype=torch.long), _gen(0))
    with pytest.raises(ValueError, match=r"^augment policy 'clip' is for clips"):
        POLICIES["clip"](_flows(2), torch.zeros(2, dtype=torch.long), _gen(0))
    with pytest.raises(ValueError, match=r"^augment='rotate' \(--augment\): unknown augmentation "
                                         r"policy; known: none, flow, flow-flip, flow-mixup, "
                                         r"clip, clip-mixup$"):  # fmt: skip
        TrainConfig(augment="rotate")
    with pytest.raises(ValueError, match=r"^flow images have 2 channels but channels='svu'"):
        flip(torch.zeros(1, 2, 4, 4), channels="svu")


def test_augment_generator_is_seeded_by_run_and_fold():
    draw = [torch.rand(3, generator=augment_generator(s, f)).tolist()
            for s, f in [(0, 5), (0, 5), (1, 5), (0, 6)]]  # fmt: skip
    assert draw[0] == draw[1] and draw[0] != draw[2] and draw[0] != draw[3]


# --------------------------------------------------------------------------- training
def test_to_dict_leaves_augment_out_at_its_default():
    before = {"epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
              "scheduler", "step_size", "gamma", "class_weight", "num_classes", "seed",
              "threads", "deterministic"}  # fmt: skip
    assert set(TrainConfig().to_dict()) == before
    assert set(TrainConfig(flow_channels="svu").to_dict()) == before
    assert TrainConfig(augment="flow").to_dict()["augment"] == "flow"
    assert "flow_channels" not in TrainConfig(augment="flow").to_dict()
    assert TrainConfig(augment="flow", flow_channels="svu").to_dict()["flow_channels"] == "svu"
    assert "flow_channels" not in TrainConfig(augment="clip", flow_channels="svu").to_dict()


def _data(n: int = 12):
    g = np.random.default_rng(0)
    y = np.arange(n) % 3
    X = g.integers(0, 60, (n, 3, 28, 28)).astype(np.float32)
    for i, c in enumerate(y):
        X[i, c, 8 * c : 8 * c + 8, 4:14] = 255.0  # class band in the left half
    X[:, :, 0, 0], X[:, :, 0, 1] = 0.0, 255.0
    return X, y.astype(np.int64)


def _fit(augment: str | None, *, seed: int | None = None, model: str = "ststnet", **cfg_kw):
    X, y = _data()
    cfg = TrainConfig(epochs=2, batch_size=4, optimizer="adam", lr=1e-2, **cfg_kw)
    if augment is not None:
        cfg = replace(cfg, augment=augment)
    torch.manual_seed(0)
    net = create_model(model, num_classes=3)
    hist = fit(net, make_loader(X, y, batch_size=4, shuffle=True, seed=1), cfg,
               augment_seed=seed)  # fmt: skip
    return net, hist


def _same(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))  # fmt: skip


def test_fit_without_augmentation_is_unchanged_and_with_it_seeded():
    plain, hist = _fit(None)
    assert _same(plain, _fit("none")[0]) and _same(plain, _fit("none", seed=9)[0])
    flipped, hist_f = _fit("flow", seed=3)
    assert not _same(plain, flipped) and hist_f["loss"] != hist["loss"]
    assert _same(flipped, _fit("flow", seed=3)[0])
    assert not _same(flipped, _fit("flow", seed=4)[0])
    assert not _same(flipped, _fit("flow", seed=3, flow_channels="svu")[0])  # u is elsewhere


def test_fit_with_mixup_trains_on_soft_targets_and_multilabel_refuses_it():
    net, hist = _fit("flow-mixup", seed=0, class_weight="balanced")
    assert all(np.isfinite(hist["loss"])) and all(0 <= a <= 1 for a in hist["accuracy"])
    assert not _same(net, _fit(None, class_weight="balanced")[0])
    X, y = _data()
    ml = MultiLabelNet(create_model("ststnet", num_classes=2), 2)
    cfg = TrainConfig(epochs=1, batch_size=4, augment="flow-mixup")
    codes = torch.as_tensor(y % 2)
    message = r"^augment='flow-mixup' mixes labels, but MultiLabelNet's loss takes class indices"
    with pytest.raises(ValueError, match=message):
        fit(ml, make_loader(X, codes.numpy(), batch_size=4), cfg)


def test_fold_batching_names_augmentation_and_auto_falls_back_to_per_fold():
    assert batching_problem("ststnet", n_folds=3, augment="flow") == (
        "augmentation (--augment flow) is per fold only"
    )
    X, y = _data()
    cfg = TrainConfig(epochs=1, batch_size=4, augment="flow")
    folds = [
        FoldSpec(np.arange(6, 12), np.arange(6), 0),
        FoldSpec(np.arange(6), np.arange(6, 12), 1),
    ]
    with pytest.raises(ValueError, match=r"^--fold-batching on: augmentation \(--augment flow\) "
                                         r"is per fold only; use auto or off$"):  # fmt: skip
        train_folds("ststnet", X, y, folds, cfg, fold_batching="on")
    auto = train_folds("ststnet", X, y, folds, cfg, seed=2, fold_batching="auto")
    alone = train_fold("ststnet", X, y, folds[1].train_idx, folds[1].test_idx, cfg, seed=2,
                       fold_index=1)  # fmt: skip
    assert np.array_equal(auto[1].probs, alone.probs) and _same(auto[1].model, alone.model)
