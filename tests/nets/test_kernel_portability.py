"""The fold-batched kernels compile for a baseline x86-64 CPU (no AVX), where merkit builds
them with ``-march=native`` on such a machine: the AVX-only inline assembly is left out."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

KERNELS = Path(__file__).resolve().parents[2] / "src" / "merkit" / "nets" / "kernels"


@pytest.mark.slow  # one compile of the torch headers: about a minute
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 only")
@pytest.mark.parametrize("source", sorted(p.name for p in KERNELS.glob("*.cpp")))
def test_kernel_compiles_without_avx(source, tmp_path):
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    from torch.utils.cpp_extension import include_paths

    includes = [f"-I{p}" for p in [*include_paths(), sysconfig.get_paths()["include"]]]
    cmd = [cxx, "-std=c++17", "-O1", "-march=x86-64", "-fPIC", "-fopenmp", "-w",
           "-DTORCH_EXTENSION_NAME=portability", *includes, "-c", str(KERNELS / source),
           "-o", str(tmp_path / "kernel.o")]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    errors = [ln for ln in done.stderr.splitlines() if "error" in ln]
    assert done.returncode == 0, "\n".join(errors[:5])
