"""The MEGC 2019 flow-folder reader on tiny fake folders: name mapping and errors."""

from __future__ import annotations

import numpy as np
import pytest

from merkit.nets.data import (
    FlowSet,
    canonical_subject,
    make_loader,
    megc2019_flow_filename,
    read_megc2019_flow,
)
from merkit.video.flow import save_flow_image

ROWS = [("casme2", "sub01", "EP02_01f", 1), ("smic", "s01", "s01_ne_01", 0),
        ("samm", "006", "006_1_2", 2)]  # fmt: skip


def _folder(tmp_path, rows=ROWS, extra_files=()):
    img = tmp_path / "STSNet_whole_norm_u_v_os"
    img.mkdir(parents=True)
    lines = ["dataset,sub,filename_o,label,apex,imagename,sub_filename"]
    rng = np.random.default_rng(0)
    for ds, sub, clip, lab in rows:
        lines.append(f"{ds},{sub},{clip},{lab},,x.jpg,")
        save_flow_image(img / f"{sub}_{clip} .png",
                        rng.integers(0, 256, (28, 28, 3), dtype=np.uint8))  # fmt: skip
    for name in extra_files:
        save_flow_image(img / name, np.zeros((28, 28, 3), np.uint8))
    (tmp_path / "combined_3_class2_for_optical_flow.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_name_mapping_round_trip():
    assert canonical_subject("smic", "s01") == "SMIC_HS/s1"
    assert canonical_subject("casme2", "sub07") == "CASME2/07"
    assert canonical_subject("samm", "6") == "SAMM/006"
    assert megc2019_flow_filename("SMIC_HS/s1", "s1_ne_01") == "s01_s01_ne_01 .png"
    assert megc2019_flow_filename("SAMM/006", "006_1_2") == "006_006_1_2 .png"
    with pytest.raises(ValueError, match="unknown MEGC 2019 dataset 'casme3'"):
        canonical_subject("casme3", "1")


def test_reader_channels_and_scale(tmp_path):
    root = _folder(tmp_path)
    uvs = read_megc2019_flow(root)
    svu = read_megc2019_flow(root, channels="svu", scale=1 / 255)
    assert uvs.X.shape == (3, 3, 28, 28)
    assert uvs.y.tolist() == [1, 0, 2]
    assert uvs.table["subject"].tolist() == ["CASME2/01", "SMIC_HS/s1", "SAMM/006"]
    assert np.allclose(svu.X * 255, uvs.X[:, ::-1], atol=1e-3)
    assert isinstance(uvs.subset(np.array([2])), FlowSet)


def test_reader_missing_image_names_the_row(tmp_path):
    root = _folder(tmp_path)
    (root / "STSNet_whole_norm_u_v_os" / "s01_s01_ne_01 .png").unlink()
    with pytest.raises(FileNotFoundError, match=r"row 3 \(smic, s01, s01_ne_01\).*s01_s01_ne_01"):
        read_megc2019_flow(root)


def test_reader_rejects_unused_and_duplicate(tmp_path):
    root = _folder(tmp_path / "a", extra_files=["sub09_EP01_01 .png"])
    with pytest.raises(ValueError, match="1 images match no row"):
        read_megc2019_flow(root)
    dup = _folder(tmp_path / "b", rows=ROWS + [("smic", "s1", "s1_ne_01", 0)])
    with pytest.raises(ValueError, match="already used by row 3"):
        read_megc2019_flow(dup)


def test_make_loader_is_seeded():
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    orders = [
        [int(x[0, 0]) for x, _ in make_loader(X, np.zeros(10), batch_size=1, shuffle=True, seed=s)]
        for s in (1, 1, 2)
    ]
    assert orders[0] == orders[1] != orders[2]
    assert sorted(orders[0]) == list(range(0, 20, 2))
