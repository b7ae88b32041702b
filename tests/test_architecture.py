"""The one-way architecture of docs/architecture.md, checked on the code itself.

* import-linter runs the contracts of ``[tool.importlinter]`` in pyproject.toml: the
  layers (no module imports a later layer) and no import cycle between the modules or
  packages of any one package. grimp, which import-linter builds its graph with, reads
  every import statement, also those inside functions.
* Imports inside functions are allowed only for torch-backed code and optional extras
  (:data:`LAZY_ALLOWED`): everything else sits at module level, where it shows.
* Every module of ``src/merkit`` belongs to a declared layer.

The checks are proved to bite: an upward import and a cycle planted in a copy of the
package are reported.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "merkit"
PYPROJECT = ROOT / "pyproject.toml"

#: modules that may be imported inside a function: torch and what needs it (merkit.nets,
#: the code of the [nets] extra), and the optional extras ([cluster], [landmarks]) and
#: skada, so that ``import merkit`` works without any of them
LAZY_ALLOWED = (
    "torch",
    "merkit.nets",
    "ray",
    "dask",
    "distributed",
    "dlib",
    "face_recognition_models",
    "skada",
)

#: package ``__init__`` modules that sit outside the layers because they import nothing
NAMESPACE_INITS = ("merkit", "merkit.results")


def _lint(pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    code = (
        "import sys\n"
        "from importlinter.cli import lint_imports\n"
        f"sys.exit(lint_imports(config_filename={str(PYPROJECT)!r}, no_cache=True,"
        " no_logo=True))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _module_name(path: Path, src: Path = SRC) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def function_level_imports(src: Path = SRC) -> list[str]:
    """``file:line imported`` for every import inside a function that is not allowed."""
    bad = []
    for path in sorted(src.rglob("*.py")):
        module = _module_name(path, src)
        tree = ast.parse(path.read_text(), filename=str(path))
        seen: set[int] = set()
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if id(node) in seen:
                    continue
                seen.add(id(node))
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [_resolve(node, module, path.name == "__init__.py")]
                else:
                    continue
                for name in names:
                    if not any(name == a or name.startswith(a + ".") for a in LAZY_ALLOWED):
                        bad.append(f"{path.relative_to(src.parent)}:{node.lineno} {name}")
    return bad


def _layers() -> list[str]:
    config = tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return [m.strip() for layer in contract["layers"] for m in layer.split("|")]


def test_contracts_kept() -> None:
    run = _lint()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 kept, 0 broken" in run.stdout, run.stdout


def test_no_function_level_imports_beyond_torch_and_extras() -> None:
    assert function_level_imports() == []


def test_every_module_sits_in_a_layer() -> None:
    layers = _layers()
    outside = []
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        if any(module == m or module.startswith(m + ".") for m in layers):
            continue
        if module in NAMESPACE_INITS:
            tree = ast.parse(path.read_text())
            imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
            if not any(
                isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith("merkit"))
                for n in imports
            ):
                continue
        outside.append(module)
    assert outside == [], f"modules outside every layer of pyproject.toml: {outside}"


def _planted(tmp_path: Path, target: str, line: str) -> Path:
    copy = tmp_path / "pkg"
    shutil.copytree(SRC, copy / "merkit", ignore=shutil.ignore_patterns("__pycache__"))
    path = copy / "merkit" / target
    path.write_text(path.read_text() + f"\n{line}\n")
    return copy


def test_upward_import_is_reported(tmp_path: Path) -> None:
    copy = _planted(tmp_path, "data/labels.py", "import merkit.protocols.cdmer  # planted")
    run = _lint(copy)
    assert run.returncode != 0
    assert "merkit.data is not allowed to import merkit.protocols" in run.stdout, run.stdout
    assert "merkit.data.labels -> merkit.protocols.cdmer" in run.stdout


def test_cycle_inside_a_package_is_reported(tmp_path: Path) -> None:
    # video.apex imports video.io; the planted import inside a function closes the loop
    copy = _planted(tmp_path, "video/io.py", "def _planted():\n    import merkit.video.apex")
    run = _lint(copy)
    assert run.returncode != 0
    assert "No cycles are allowed in merkit.video" in run.stdout, run.stdout
    last = len((copy / "merkit/video/io.py").read_text().splitlines())
    assert f"merkit/video/io.py:{last} merkit.video.apex" in function_level_imports(copy / "merkit")
