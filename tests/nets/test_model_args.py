"""Model constructor arguments are checked by name and type before a network is built."""

from __future__ import annotations

import re

import pytest

from merkit.nets import MODELS, check_model_kwargs, create_model, model_arguments


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("r3d", {"width": "abc"},
         "model 'r3d': argument width='abc' (a str) does not match the expected type int"),
        ("r3d", {"width": 2.5},
         "model 'r3d': argument width=2.5 (a float) does not match the expected type int"),
        ("r3d", {"width": True},
         "model 'r3d': argument width=True (a bool) does not match the expected type int"),
        ("r3d", {"layers": [1, 2]}, "model 'r3d': argument layers=[1, 2] (a list) does not "
                                    "match the expected type tuple[int, int, int, int]"),
        ("off_apexnet", {"hidden": 256}, "model 'off_apexnet': argument hidden=256 (an int) "
                                         "does not match the expected type tuple[int, ...]"),
        ("fr", {"embed_dim": "big"}, "model 'fr': argument embed_dim='big' (a str) does not "
                                     "match the expected type int | None"),
        ("ststnet", {"dropout": "x"}, "model 'ststnet': argument dropout='x' (a str) does not "
                                      "match the expected type float"),
        ("r3d", {"widht": 8}, "model 'r3d' takes no argument 'widht'; its arguments: "
                              "num_classes (int), in_channels (int), width (int), layers "
                              "(tuple[int, int, int, int]), dropout (float)"),
    ],
)  # fmt: skip
def test_wrong_model_arguments_are_one_line_value_errors(name, kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        create_model(name, num_classes=3, **kwargs)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        check_model_kwargs(name, kwargs)


def test_fitting_arguments_build_the_network():
    # JSON lists stand for tuples, ints for floats, None where the annotation allows it
    net = create_model("r3d", num_classes=2, width=4, layers=[1, 1, 1, 1], dropout=0)
    assert net.stem[0].out_channels == 4 and net.fc.out_features == 2
    assert create_model("off_apexnet", hidden=[64]).head[0].out_features == 64
    create_model("fr", embed_dim=None, filters=[4, 8])
    with pytest.raises(ValueError, match=r"model 'ststnet' cannot be built with "
                       r"\{'dropout': 1\.5\}: "):  # fmt: skip
        create_model("ststnet", dropout=1.5)
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        check_model_kwargs("nope", {})


def test_every_registered_network_lists_annotated_arguments():
    for name in MODELS:
        args = model_arguments(name)
        assert args["num_classes"] is int, name
        assert all(hint is not None for hint in args.values()), name
    assert model_arguments("fr_fc")["attention"] is bool  # partial: still overridable
