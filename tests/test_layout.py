"""What installing shotflow puts into a Python environment: the one import name `shotflow`.

The Prefect shell lives at the repository root on disk (flows/, tasks/, deployments/) and is
importable only as shotflow.flows, shotflow.tasks and shotflow.deployments, so a Prefect user's own
`flows/` folder is never shadowed by ours (nor ours by theirs).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHELL = ("flows", "tasks", "deployments")


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", SHELL)
def test_the_shell_is_not_a_top_level_import_name(name, tmp_path):
    # run outside the checkout: the editable install alone decides what is importable
    r = run_python(f"import {name}", tmp_path)
    assert r.returncode != 0, f"`import {name}` worked outside the checkout: installing shotflow claims {name!r}"
    assert f"ModuleNotFoundError: No module named '{name}'" in r.stderr, r.stderr


def test_the_shell_imports_as_shotflow_packages(tmp_path):
    r = run_python(
        "import shotflow.flows.render, shotflow.tasks.generate, shotflow.deployments.storyboards as d\n"
        "print(shotflow.flows.render.render_storyboard.name, d.ENTRYPOINT)",
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["render-storyboard", "flows/render.py:render_storyboard"]


def test_every_package_on_disk_is_installed():
    # pyproject lists the packages by hand (package-dir maps the shell under shotflow.*): a new
    # package folder that is not listed would work in the checkout and be missing from the wheel
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "shotflow").rglob("*.py")}
    on_disk |= {f"shotflow.{'.'.join(p.parent.relative_to(ROOT).parts)}" for d in SHELL for p in (ROOT / d).rglob("*.py")}
    assert on_disk - listed == set(), "folders of Python files missing from [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk == set(), "pyproject.toml lists packages that have no Python file"


def test_the_wheel_holds_only_shotflow(tmp_path):
    # a copy, so the build's scratch folders never land in the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("shotflow", *SHELL):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if r.returncode != 0 and (
        "No matching distribution found for setuptools" in r.stderr or "Could not find a version" in r.stderr
    ):
        pytest.skip(f"pip could not fetch the build backend (offline?): {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("shotflow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"shotflow"}, sorted(tops)
    for name in SHELL:
        assert f"shotflow/{name}/__init__.py" in names
    assert "shotflow/flows/render.py" in names
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["shotflow"]
