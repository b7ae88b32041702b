"""A new DA method needs one declaration next to its class and nothing else: registered,
the grid runner, ``--grid published`` / ``default``, the label-free picks and the papers'
parameter names all read it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from merkit.adapt import (
    METHODS,
    DomainAdaptationClassifier,
    MethodSpec,
    SVMBaseline,
    default_point,
    make_method,
    published_grid,
    published_names,
    register,
)
from merkit.protocols.grid import grid_points
from merkit.protocols.runner import run_grid
from merkit.store import ResultStore, read_grid


class NearestShiftedCentroid(DomainAdaptationClassifier):
    """Nearest source-class centroid after moving the target rows a share ``shift`` of the
    way from the target mean to the source mean."""

    method_specs = (
        MethodSpec(
            "centroid",
            grid=[{"shift": s} for s in (0.0, 0.5, 1.0)],
            paper_names={"shift": "alpha"},
        ),
    )
    requires_target = True

    def __init__(self, shift: float = 1.0) -> None:
        self.shift = shift

    def _fit(self, Xs, ys, Xt) -> None:
        self.offset_ = self.shift * (Xs.mean(axis=0) - Xt.mean(axis=0))
        self.centroids_ = np.stack([Xs[ys == c].mean(axis=0) for c in self.classes_])

    def decision_function(self, X) -> np.ndarray:
        Z = self._check_predict_X(X) + self.offset_
        return -((Z[:, None, :] - self.centroids_[None]) ** 2).sum(axis=-1)

    def _predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


@pytest.fixture
def registered():
    assert "centroid" not in METHODS
    register(NearestShiftedCentroid)
    yield
    del METHODS["centroid"]


def test_one_declaration_is_all_a_new_method_needs(registered, domains, tmp_path) -> None:
    assert isinstance(make_method("centroid", shift=0.5), NearestShiftedCentroid)
    assert published_grid("centroid") == [{"shift": 0.0}, {"shift": 0.5}, {"shift": 1.0}]
    assert default_point("centroid") == {"shift": 1.0}  # the class's own default
    assert published_names("centroid", {"shift": 0.5}) == {"alpha": 0.5}
    assert grid_points("centroid", "default", 40, 25) == [{"shift": 1.0}]
    run = run_grid(domains, "centroid", grid="published", store=tmp_path, progress=False)
    g = run.grid
    assert g["params"].tolist() == ['{"shift":0.0}', '{"shift":0.5}', '{"shift":1.0}'] * 2
    assert g["published_params"].tolist() == [
        '{"alpha":0.0}', '{"alpha":0.5}', '{"alpha":1.0}'] * 2  # fmt: skip
    assert np.isfinite(g[["reverse", "class_entropy", "entropy"]].to_numpy()).all()
    # each grid row = a plain fit of the class
    for r in g.itertuples():
        src, tgt = (domains["CASME2"], domains["SMIC_VIS"])
        if r.task == "Exp.10":
            src, tgt = tgt, src
        X = np.vstack([src.X, tgt.X])
        y = np.r_[src.y, -np.ones(len(tgt), dtype=int)]
        est = NearestShiftedCentroid(**json.loads(r.params)).fit(X, y)
        assert json.loads(r.y_pred) == est.predict(tgt.X).tolist()
    picks = run.selected.set_index(["task", "selection"])
    assert set(run.selected["selection"]) == {"oracle", "reverse", "class_entropy", "entropy",
                                              "default"}  # fmt: skip
    assert (picks.xs("default", level="selection")["params"] == '{"shift":1.0}').all()
    assert len(read_grid(tmp_path)) == 6 and len(ResultStore(tmp_path)) == 6 + 2 * 5


def test_register_refuses_a_taken_name_or_no_declaration() -> None:
    class Impostor(SVMBaseline):
        method_specs = (MethodSpec("svm"),)

    with pytest.raises(ValueError, match="'svm' already belongs to SVMBaseline"):
        register(Impostor)

    class Undeclared(SVMBaseline):
        method_specs = ()

    with pytest.raises(ValueError, match="declares no registry name"):
        register(Undeclared)
    assert METHODS["svm"] is SVMBaseline


def test_method_spec_checks_its_declaration() -> None:
    with pytest.raises(ValueError, match="lower case"):
        MethodSpec("TCA")
    with pytest.raises(ValueError, match="needs its axes"):
        MethodSpec("k", grid=lambda ns, nt: [{"n_components": 1}])
    with pytest.raises(ValueError, match="holds no point"):
        MethodSpec("empty", grid=[])
    spec = MethodSpec("k", grid=lambda ns, nt: [{"k": i} for i in range(ns)], axes=("k",))
    assert spec.published_grid(2, 5) == [{"k": 0}, {"k": 1}]
    with pytest.raises(ValueError, match="needs n_source and n_target"):
        spec.published_grid()
