"""Model cards: classes and AU outputs, clip networks, and how outputs become probabilities."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from merkit.nets.predict import (
    ModelCard,
    load_predictor,
    predict_outputs,
    read_model_card,
    write_model_card,
)
from merkit.nets.train import save_weights


def test_card_round_trip_with_aus_and_clip_inputs(tmp_path):
    card = ModelCard(model="r3d", classes=("neg", "pos"), aus=("AU1", "AU4", "AU12"),
                     input_kind="clip", size=(32, 32), scale=1 / 255,
                     model_kwargs={"width": 4, "in_channels": 1}, clip={"length": 8})  # fmt: skip
    assert card.num_outputs == 5
    back = read_model_card(write_model_card(tmp_path / "model.json", card))
    assert back == card
    net = back.build()
    assert net.fc.out_features == 5 and net.stem[0].in_channels == 1


def test_old_cards_read_as_flow_classifiers(tmp_path):
    path = tmp_path / "old.json"
    path.write_text('{"model": "ststnet", "classes": ["a", "b", "c"], "scale": 1.0}')
    card = read_model_card(path)
    assert (card.input_kind, card.aus, card.num_outputs) == ("flow", (), 3)


def test_card_errors_name_the_problem():
    with pytest.raises(ValueError, match="'r3d' takes clip inputs, the card says 'flow'"):
        ModelCard(model="r3d", classes=("a", "b"))
    with pytest.raises(ValueError, match="needs at least 2 classes or some AUs"):
        ModelCard(model="fr", classes=())
    with pytest.raises(ValueError, match="AUs repeated"):
        ModelCard(model="fr", classes=(), aus=("AU1", "AU1"))
    with pytest.raises(ValueError, match=r"au_threshold must be in \(0, 1\)"):
        ModelCard(model="fr", classes=(), aus=("AU1",), au_threshold=1.0)
    assert ModelCard(model="fr", classes=(), aus=("AU1", "AU2")).num_outputs == 2


def test_outputs_split_into_softmax_classes_and_sigmoid_aus(tmp_path):
    card = ModelCard(model="ststnet", classes=("a", "b", "c"), aus=("AU1", "AU2"))
    torch.manual_seed(0)
    net = card.build().eval()
    x = np.random.default_rng(0).random((4, 3, 28, 28)).astype(np.float32)
    classes, aus = predict_outputs(net, card, x)
    with torch.no_grad():
        logits = net(torch.as_tensor(x)).double()
    np.testing.assert_allclose(classes, torch.softmax(logits[:, :3], 1).numpy())
    np.testing.assert_allclose(aus, torch.sigmoid(logits[:, 3:]).numpy())
    np.testing.assert_allclose(classes.sum(axis=1), 1.0)
    # the weights of another output count are refused with the count in the message
    weights = save_weights(net, tmp_path / "w.pth")
    write_model_card(tmp_path / "w.json", ModelCard(model="ststnet", classes=("a", "b", "c")))
    with pytest.raises(ValueError, match="do not fit a 'ststnet' network with 3 outputs"):
        load_predictor(weights)
    only_aus = ModelCard(model="ststnet", classes=(), aus=("AU1", "AU2", "AU4", "AU5", "AU6"))
    classes, aus = predict_outputs(only_aus.build().eval(), only_aus, x)
    assert classes is None and aus.shape == (4, 5)


def test_a_folder_given_as_weights_names_a_weights_file_inside(tmp_path):
    net = ModelCard(model="ststnet", classes=("a", "b", "c")).build()
    run = tmp_path / "weights" / "ststnet-abc"
    save_weights(net, run / "seed0" / "CASME2_01.pth")
    save_weights(net, run / "final.pth")
    final = str(run / "final.pth")
    with pytest.raises(IsADirectoryError, match=f"is a folder, not a weights file; it holds 2 "
                       rf"\.pth file\(s\), e\.g\. '{re.escape(final)}'"):  # fmt: skip
        load_predictor(tmp_path / "weights")
    (tmp_path / "empty").mkdir()
    with pytest.raises(IsADirectoryError, match="it holds no .pth file"):
        load_predictor(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="weights file '.*nope.pth' does not exist"):
        load_predictor(tmp_path / "nope.pth")


def test_damaged_weights_are_named_before_the_card_is_looked_for(tmp_path):
    torch.manual_seed(0)
    good = save_weights(ModelCard(model="ststnet", classes=("a", "b", "c")).build(),
                        tmp_path / "good.pth").read_bytes()  # fmt: skip
    empty, cut = tmp_path / "empty.pth", tmp_path / "cut.pth"
    empty.write_bytes(b"")
    cut.write_bytes(good[: len(good) // 2])
    torch.save({"conv1.weight": torch.zeros(1), "note": "trained on X"}, tmp_path / "mixed.pth")
    # no card anywhere: the file's own problem is what is reported
    with pytest.raises(ValueError, match=r"weights file '.*empty\.pth' is empty \(0 bytes\)"):
        load_predictor(empty)
    with pytest.raises(ValueError, match=r"weights file '.*cut\.pth' is truncated \(\d+ bytes"):
        load_predictor(cut, model_name="ststnet")
    with pytest.raises(ValueError, match=r"mixed\.pth' is not a plain state_dict: entries "
                       r"\['note'\] are not tensors"):  # fmt: skip
        load_predictor(tmp_path / "mixed.pth", model_name="ststnet")


def test_card_with_bad_model_arguments_names_them(tmp_path):
    card = ModelCard(model="r3d", classes=("a", "b"), input_kind="clip",
                     model_kwargs={"width": "abc"})  # fmt: skip
    with pytest.raises(ValueError, match=r"model 'r3d': argument width='abc' \(a str\) does not "
                       r"match the expected type int"):  # fmt: skip
        card.build()
