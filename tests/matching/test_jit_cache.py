"""The kernels' machine-code cache is stamped with the whole package's source: a change
to a module a kernel inlines from (here the C-API builders) invalidates it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import matching
from matching import jit as matching_jit
from matching import kernels_query

_STAMP = "import matching.jit as j; print(j.package_source_stamp())"


def _stamp_of(package_parent: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _STAMP],
        cwd=package_parent,
        env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def test_kernels_use_the_package_stamp() -> None:
    dispatcher: Any = kernels_query.k_query_fast  # typed as its function; a numba dispatcher
    locator = dispatcher._cache._impl.locator
    assert locator.get_source_stamp() == matching_jit.package_source_stamp()
    assert Path(locator.get_cache_path()).parent == Path(kernels_query.__file__).parent


def test_a_helper_module_change_moves_the_stamp(tmp_path: Path) -> None:
    source = Path(matching.__file__).parent
    shutil.copytree(source, tmp_path / "matching", ignore=shutil.ignore_patterns("__pycache__"))
    before = _stamp_of(tmp_path)
    assert before == matching_jit.package_source_stamp()  # the same sources, the same stamp
    pyobj = tmp_path / "matching" / "pyobj.py"
    pyobj.write_text(pyobj.read_text() + "\n# a builder changed\n")
    assert _stamp_of(tmp_path) != before


def test_numba_cache_dir_is_honoured(tmp_path: Path) -> None:
    """The Docker image sets NUMBA_CACHE_DIR (its site-packages are read-only)."""
    probe = (
        "from matching import kernels_query as k; loc = k.k_query_fast._cache._impl.locator; "
        "print(type(loc).__name__, loc.get_cache_path())"
    )
    root = Path(matching.__file__).parent.parent
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "NUMBA_CACHE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    name, path = out.stdout.split()
    assert name == "_UserDirLocator" and Path(path).is_relative_to(tmp_path)
