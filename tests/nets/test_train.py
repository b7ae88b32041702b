"""The training loop: determinism, losses, history, weights and a tiny LOSO run."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from merkit.metrics import uar, uf1
from merkit.nets import create_model
from merkit.nets.data import FlowSet, make_loader
from merkit.nets.train import (
    TrainConfig,
    WeightsFileError,
    class_weights,
    fit,
    load_weights,
    predict,
    read_state_dict,
    save_weights,
)
from merkit.protocols.deep import run_loso
from merkit.store import ResultStore


def _synthetic_flows(n_subjects=3, per_subject=6, seed=0) -> FlowSet:
    """Class c brightens a different quarter of the u channel: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    n = n_subjects * per_subject
    y = np.tile(np.arange(3), n // 3 + 1)[:n].astype(np.int64)
    X = rng.normal(0.0, 0.1, size=(n, 3, 28, 28)).astype(np.float32)
    for i, c in enumerate(y):
        X[i, 0, (c * 9) : (c * 9 + 9), :] += 1.0
        X[i, 1, :, (c * 9) : (c * 9 + 9)] += 1.0
    table = pd.DataFrame(
        {
            "subject": [f"SYN/{i // per_subject}" for i in range(n)],
            "clip": [f"clip{i:02d}" for i in range(n)],
        }
    )
    return FlowSet(X, y, table)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["ststnet", "fr", "off_apexnet", "rcn_a"])
def test_same_seed_same_weights_after_two_steps(name):
    data = _synthetic_flows()
    cfg = TrainConfig(epochs=1, batch_size=9, optimizer="sgd", lr=0.01, momentum=0.9, seed=3)
    states = []
    for _ in range(2):
        torch.manual_seed(11)
        model = create_model(name)
        fit(model, make_loader(data.X, data.y, batch_size=9, shuffle=True, seed=5), cfg)
        states.append(_state(model))
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    # a different seed (dropout masks) gives different weights
    torch.manual_seed(11)
    model = create_model(name)
    fit(
        model,
        make_loader(data.X, data.y, batch_size=9, shuffle=True, seed=5),
        TrainConfig(epochs=1, batch_size=9, lr=0.01, momentum=0.9, seed=4),
    )
    assert any(
        not torch.equal(states[0][k], v) for k, v in _state(model).items() if v.is_floating_point()
    )


def test_fit_restores_global_torch_state():
    model = create_model("ststnet")  # initialisation draws from the global RNG: do it first
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    data = _synthetic_flows()
    fit(model, make_loader(data.X, data.y, batch_size=6), TrainConfig(epochs=1, lr=1e-3, threads=1))
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads


def test_fit_learns_and_reports_history():
    data = _synthetic_flows(per_subject=9)
    model = create_model("off_apexnet")
    loader = make_loader(data.X, data.y, batch_size=9, shuffle=True)
    cfg = TrainConfig(
        epochs=15, optimizer="adam", lr=1e-3, scheduler="step", step_size=5, gamma=0.5
    )
    hist = fit(model, loader, cfg, val_loader=make_loader(data.X, data.y))
    assert len(hist["loss"]) == 15
    assert hist["lr"][:6] == pytest.approx([1e-3] * 5 + [5e-4])
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]
    y_pred, probs = predict(model, make_loader(data.X, batch_size=4))
    assert probs.shape == (27, 3)
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (y_pred == data.y).mean() == 1.0
    assert hist["val_accuracy"][-1] == 1.0


def test_class_weights_balanced_and_fixed():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    w = class_weights(y, TrainConfig(class_weight="balanced"))
    assert np.allclose(w.numpy(), [8 / 12, 8 / 6, 8 / 6])
    assert class_weights(y, TrainConfig()) is None
    fixed = class_weights(y, TrainConfig(class_weight=(1, 2, 3)))
    assert fixed.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="class_weight has 2 entries, num_classes is 3"):
        TrainConfig(class_weight=(1, 2))


def test_presets_follow_the_papers():
    st = TrainConfig.preset("ststnet")
    assert (st.optimizer, st.lr, st.batch_size, st.epochs) == ("adam", 5e-5, 256, 800)
    fr = TrainConfig.preset("fr_cde")
    assert (fr.optimizer, fr.lr, fr.batch_size, fr.momentum) == ("sgd", 1e-3, 32, 0.0)
    cd = TrainConfig.preset("fr_cdmer", epochs=3)
    assert (cd.lr, cd.momentum, cd.epochs) == (5e-4, 0.8, 3)
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        TrainConfig(optimizer="rmsprop")


def test_weights_roundtrip_weights_only(tmp_path):
    torch.manual_seed(0)
    model = create_model("fr")
    path = save_weights(model, tmp_path / "w" / "fr.pth")
    sd = torch.load(path, weights_only=True)
    assert set(sd) == set(model.state_dict())
    other = load_weights(create_model("fr"), path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, other.state_dict()[k])


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("epochs", 0, "epochs=0 (--epochs): must be at least 1; 0 epochs would score the "
                      "untrained network"),
        ("epochs", -3, "epochs=-3 (--epochs): must be at least 1"),
        ("epochs", 2.5, "epochs=2.5 (--epochs): must be a whole number >= 1"),
        ("batch_size", 0, "batch_size=0 (--batch-size): must be at least 1"),
        ("lr", 0.0, "lr=0.0 (--lr): the learning rate must be a number > 0"),
        ("lr", -1e-3, "lr=-0.001 (--lr): the learning rate must be a number > 0"),
        ("lr", float("nan"), "lr=nan (--lr): the learning rate must be a number > 0"),
        ("threads", 0, "threads=0 (--threads): must be at least 1"),
        ("step_size", 0, "step_size=0: must be at least 1"),
    ],
)  # fmt: skip
def test_non_positive_training_options_are_refused_by_name(option, value, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**{option: value})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig.preset("fr_cde", **{option: value})
    assert TrainConfig(**{option: 1}).to_dict()[option] == 1  # the least valid value


def _pickled_module(path):
    torch.save(torch.nn.Linear(2, 2), path)  # a whole pickled module, not a state_dict
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\); re-copy it or save the "
                                   r"weights again with torch\.save\("),
        (lambda p: p.write_text("hello"), r"is not a PyTorch weights file \(neither a "
                                      r"torch\.save zip archive nor a pickle\)"),
        (_pickled_module, r"carries pickled Python objects \(torch\.nn\.modules\.linear\.Linear\)"
                          r", not only tensors, so it was not loaded"),
        (lambda p: torch.save([torch.zeros(2)], p), r"holds a list, not a state_dict"),
        (lambda p: torch.save({"state_dict": {}, "epoch": 3}, p),
         r"is not a plain state_dict: entries \['state_dict', 'epoch'\] are not tensors; a "
         r"training checkpoint\?"),
    ],
    ids=["empty", "text", "pickled-module", "list", "checkpoint"],
)  # fmt: skip
def test_bad_weights_files_are_named_one_line_errors(tmp_path, make, message):
    path = tmp_path / "bad.pth"
    make(path)
    with pytest.raises(WeightsFileError) as err:
        load_weights(create_model("ststnet"), path)
    msg = str(err.value)
    assert re.match(rf"weights file {re.escape(repr(str(path)))} {message}", msg), msg
    assert "\n" not in msg and isinstance(err.value, ValueError)


@pytest.mark.parametrize("keep", [0.01, 0.5, 0.99])
def test_truncated_weights_file_is_named(tmp_path, keep):
    torch.manual_seed(0)
    good = save_weights(create_model("ststnet"), tmp_path / "good.pth").read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good[: int(len(good) * keep)])
    with pytest.raises(WeightsFileError) as err:
        read_state_dict(cut)
    assert str(err.value) == (
        f"weights file {str(cut)!r} is truncated ({cut.stat().st_size} bytes, the end of its "
        "zip archive is missing); re-copy it or save the weights again with "
        "torch.save(model.state_dict(), path)"
    )
    with pytest.raises(FileNotFoundError, match="weights file '.*absent.pth' does not exist"):
        read_state_dict(tmp_path / "absent.pth")


def test_tiny_loso_stores_pooled_predictions(tmp_path):
    data = _synthetic_flows(n_subjects=3, per_subject=6)
    store = ResultStore(tmp_path / "store")
    cfg = TrainConfig(epochs=2, batch_size=4, optimizer="adam", lr=1e-3)
    run = run_loso("fr", data, cfg, seeds=(0, 1), store=store, weights_dir=tmp_path / "w")
    preds = run.predictions
    assert len(preds) == 2 * 18
    assert sorted(preds["fold"].unique()) == ["SYN/0", "SYN/1", "SYN/2"]
    assert (preds["fold"] == preds["subject"]).all()
    for seed in (0, 1):
        p = preds[preds["seed"] == seed].sort_values("sample")
        assert p["sample"].tolist() == list(range(18))
        assert np.allclose(p[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1.0, atol=1e-5)
    results = store.results()
    assert len(results) == 2
    stored = store.predictions()
    assert len(stored) == 36
    assert set(stored["fold"]) == {"SYN/0", "SYN/1", "SYN/2"}
    for seed in (0, 1):
        p = preds[preds["seed"] == seed]
        row = results[results["seed"] == seed].iloc[0]
        assert row["mean_f1"] == pytest.approx(uf1(p["y_true"], p["y_pred"], labels=[0, 1, 2]))
        assert row["uar"] == pytest.approx(uar(p["y_true"], p["y_pred"], labels=[0, 1, 2]))
    assert len(list((tmp_path / "w" / "seed0").glob("*.pth"))) == 3
    # same seeds -> identical predictions
    again = run_loso("fr", data, cfg, seeds=(0,), folds=["SYN/1"])
    first = preds[(preds["seed"] == 0) & (preds["fold"] == "SYN/1")]
    assert np.allclose(again.predictions["prob_0"].to_numpy(), first["prob_0"].to_numpy())
    with pytest.raises(ValueError, match=r"folds \['SYN/9'\] are not subjects"):
        run_loso("fr", data, cfg, folds=["SYN/9"])


# ---------------------------------------------------------------- the in-memory fast path
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("own_generator", [True, False])
def test_index_batches_equal_iterating_the_loader(shuffle, drop_last, own_generator):
    from torch.utils.data import DataLoader, TensorDataset

    from merkit.nets.train import _in_memory, _index_batches

    X = torch.arange(23, dtype=torch.float32).reshape(23, 1)
    y = torch.arange(23)

    def loader():
        gen = torch.Generator().manual_seed(7) if own_generator else None
        return DataLoader(TensorDataset(X, y), batch_size=5, shuffle=shuffle, generator=gen,
                          drop_last=drop_last)  # fmt: skip

    a, b = loader(), loader()
    assert _in_memory(a) is not None
    torch.manual_seed(3)
    expected = [[yb.tolist() for _, yb in a] for _ in range(3)]
    after_loader = torch.rand(2)
    torch.manual_seed(3)
    got = [[y[i].tolist() for i in _index_batches(b, 23)] for _ in range(3)]
    assert got == expected
    assert torch.equal(torch.rand(2), after_loader)  # the same global RNG draws
    if own_generator:
        assert torch.equal(a.generator.get_state(), b.generator.get_state())
    flat = sum(got[0], [])
    assert len(got[0]) == (4 if drop_last else 5)
    assert len(set(flat)) == len(flat) == (20 if drop_last else 23)


def test_in_memory_only_for_plain_loaders():
    from torch.utils.data import DataLoader, TensorDataset, default_collate

    from merkit.nets.train import _in_memory

    ds = TensorDataset(torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64))
    assert _in_memory(make_loader(np.zeros((4, 2)), np.zeros(4))) is not None
    assert _in_memory(DataLoader(ds, collate_fn=lambda b: default_collate(b))) is None
    assert _in_memory(DataLoader(ds, shuffle=True, generator=torch.Generator(),
                                 num_workers=0, batch_size=None)) is None  # fmt: skip
    assert _in_memory([(torch.zeros(4, 2), torch.zeros(4))]) is None


@pytest.mark.parametrize("name", ["ststnet", "off_apexnet"])
def test_fit_fast_path_equals_the_generic_loop(name):
    """make_loader's tensors are batched without the DataLoader: same weights, bit for bit
    (OFF-ApexNet also trains channels-last on both paths)."""
    from torch.utils.data import DataLoader, TensorDataset, default_collate

    data = _synthetic_flows(per_subject=9)
    cfg = TrainConfig(epochs=2, batch_size=8, optimizer="sgd", lr=0.01, momentum=0.9, seed=1)
    states, preds = [], []
    for fast in (True, False):
        torch.manual_seed(5)
        model = create_model(name)
        if fast:
            loader = make_loader(data.X, data.y, batch_size=8, shuffle=True, seed=9)
        else:  # a custom collate makes it a generic DataLoader
            ds = TensorDataset(torch.as_tensor(data.X), torch.as_tensor(data.y))
            loader = DataLoader(ds, batch_size=8, shuffle=True,
                                collate_fn=lambda b: default_collate(b),
                                generator=torch.Generator().manual_seed(9))  # fmt: skip
        hist = fit(model, loader, cfg)
        states.append(_state(model))
        preds.append(predict(model, make_loader(data.X, batch_size=5))[1])
        assert len(hist["loss"]) == 2
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    assert np.array_equal(preds[0], preds[1])


def test_channels_last_rule_and_weights_come_back_contiguous():
    from merkit.nets.train import _channels_last

    x = torch.zeros(2, 3, 28, 28)
    assert _channels_last(create_model("fr"), x)
    assert _channels_last(create_model("dual_inception"), x)
    assert _channels_last(create_model("off_apexnet"), x)
    assert not _channels_last(create_model("ststnet"), x)  # convolutions on the input only
    assert not _channels_last(create_model("fr"), torch.zeros(2, 3, 4, 28, 28))
    data = _synthetic_flows()
    model = create_model("basic_inception")
    fit(model, make_loader(data.X, data.y, batch_size=6), TrainConfig(epochs=1))
    for name, p in model.state_dict().items():
        assert p.is_contiguous(), name


def test_epoch_end_sees_every_epoch_and_changes_nothing():
    data = _synthetic_flows(per_subject=9)
    cfg = TrainConfig(epochs=4, batch_size=9, optimizer="adam", lr=1e-3, seed=2)
    seen, states = [], []
    for callback in (True, False):
        torch.manual_seed(4)
        model = create_model("off_apexnet")  # dropout: the callback must not move the RNG

        def record(epoch, m):
            seen.append((epoch, m.training))
            predict(m, make_loader(data.X, batch_size=7))

        fit(model, make_loader(data.X, data.y, batch_size=9, shuffle=True, seed=3), cfg,
            epoch_end=record if callback else None)  # fmt: skip
        states.append(_state(model))
    assert seen == [(1, True), (2, True), (3, True), (4, True)]
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


def test_predict_fast_path_equals_plain_iteration():
    data = _synthetic_flows()
    torch.manual_seed(0)
    model = create_model("ststnet").eval()
    y_fast, p_fast = predict(model, make_loader(data.X, batch_size=4))
    p_plain = [torch.softmax(model(torch.as_tensor(data.X[i:i + 4])), 1).detach()
               for i in range(0, len(data.X), 4)]  # fmt: skip
    assert np.array_equal(p_fast, torch.cat(p_plain).numpy())
    assert np.array_equal(y_fast, p_fast.argmax(1))


def test_adam_is_fused_and_matches_the_reference_update():
    from merkit.nets.train import _optimizer

    lin = torch.nn.Linear(4, 3)
    ref = torch.nn.Linear(4, 3)
    ref.load_state_dict(lin.state_dict())
    opt = _optimizer(lin, TrainConfig(optimizer="adam", lr=0.1, weight_decay=0.01))
    assert opt.param_groups[0]["fused"] is True
    assert type(_optimizer(lin, TrainConfig(optimizer="adamw", lr=0.1))) is torch.optim.AdamW
    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.1, weight_decay=0.01, foreach=False)
    x = torch.arange(8.0).reshape(2, 4)
    for _ in range(3):
        for m, o in ((lin, opt), (ref, ref_opt)):
            o.zero_grad()
            m(x).pow(2).sum().backward()
            o.step()
    torch.testing.assert_close(lin.weight, ref.weight, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(lin.weight, torch.nn.Linear(4, 3).weight)  # it did move


def test_session_flushes_denormals_and_restores_them():
    from merkit.nets.train import torch_session

    tiny = torch.tensor([1e-39])  # a float32 denormal
    assert float(tiny * 1.0) > 0
    with torch_session(0):
        assert float(tiny * 1.0) == 0.0
        with torch_session(1):
            pass
        assert float(tiny * 1.0) == 0.0  # still on after a nested session closes
    assert float(tiny * 1.0) > 0
