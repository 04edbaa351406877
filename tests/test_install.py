"""merc-bench installs like a normal package: the sdist holds every built-in plugin and the package
data, a wheel built from that sdist installs into a clean virtual environment, and the installed
command trains from a folder that is not the repository, with every component loaded from the wheel.

One test, about 20-40 s: building from a copy of the sources (the repository gets no build/ or
egg-info folders), then the sdist, a wheel built from the sdist (so a file the sdist forgets fails
here, as it would for anyone installing from PyPI's sdist), then a fresh venv.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

import merc_bench

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DATA = "merc_bench/reference_data/summer_paper.csv"
TINY = ["--set", "dataset.train_dialogues=6", "--set", "dataset.dev_dialogues=3", "--set", "dataset.test_dialogues=4",
        "--set", "model.hidden_size=8", "--epochs", "1", "--no-track"]


def _built_in_plugins() -> list[str]:
    """The top-level packages pyproject's entry points name: every one must travel with the package."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return sorted(project["entry-points"]["merc_bench"].values())


def _copy_sources(target: Path) -> None:
    """What the sdist is built from: the project's metadata, the core and the plugins."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, target / name)
    for folder in ("merc_bench", "plugins"):
        shutil.copytree(ROOT / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def archive_text(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        return archive.read(name).decode("utf-8")


def _check(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)
    assert done.returncode == 0, f"{command} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _environment_for(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return env | {"PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "OMP_NUM_THREADS": "1",
                  "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sdist_and_wheel_install_and_run_outside_the_repository(tmp_path):
    plugins = _built_in_plugins()
    sources, dist, wheels = tmp_path / "src", tmp_path / "dist", tmp_path / "wheels"
    _copy_sources(sources)

    # The sdist, by the build backend itself (python -m build is not installed; no network needed).
    built = _check([sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.build_sdist({str(dist)!r}))"],
                   cwd=sources).stdout.split()[-1]
    sdist = dist / built
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = [f"plugins/{p}/__init__.py" for p in plugins if f"plugins/{p}/__init__.py" not in names]
    assert not missing, f"the sdist lacks {missing}"
    assert {PACKAGE_DATA, "merc_bench/__init__.py", "pyproject.toml", "README.md", "LICENSE"} <= names

    # The wheel from the sdist, not from the tree: what pip does for anyone without a wheel.
    _check([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
            "-w", str(wheels), str(sdist)], cwd=tmp_path)
    (wheel,) = wheels.glob("merc_bench-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert not [p for p in plugins if f"{p}/__init__.py" not in names]
    assert PACKAGE_DATA in names
    assert f"merc_bench-{merc_bench.__version__}.dist-info/METADATA" in names  # the version from one place
    assert f"merc_bench-{merc_bench.__version__}.dist-info/licenses/LICENSE" in names  # the licence text travels
    metadata = archive_text(wheel, f"merc_bench-{merc_bench.__version__}.dist-info/METADATA")
    assert "License-Expression: Apache-2.0" in metadata

    # A clean venv; the dependencies come from this environment through a .pth file, because the test
    # must run offline and torch alone is gigabytes. The .pth adds only this environment's
    # site-packages folders to sys.path: their own .pth files (the editable install's finder, which
    # maps merc_bench to the repository) are not run, so merc_bench can only come from the wheel.
    venv = tmp_path / "venv"
    _check([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    purelib = _check([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(purelib, "outer-environment.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    env = _environment_for(venv)
    _check([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], env=env)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["MERC_BENCH_CACHE"] = str(elsewhere / "cache")
    merc = str(venv / "bin" / "merc-bench")
    assert _check([merc, "--version"], cwd=elsewhere, env=env).stdout.strip() == f"merc-bench {merc_bench.__version__}"
    where = _check([str(python), "-c", _WHERE_FROM], cwd=elsewhere, env=env).stdout
    origin = json.loads(where.splitlines()[-1])
    venv_root = str(venv.resolve())
    assert origin["merc_bench"].startswith(venv_root), origin["merc_bench"]
    assert set(origin["plugins"]) >= set(plugins), origin["plugins"]
    outside = {name: path for name, path in origin["plugins"].items() if not path.startswith(venv_root)}
    assert not outside, f"built-in plugins loaded from outside the venv: {outside}"
    assert origin["recipes"] >= 10 and "synthetic" in origin["datasets"]

    listing = _check([merc, "list"], cwd=elsewhere, env=env).stdout
    assert "bigru-concat" in listing and "synthetic" in listing
    _check([merc, "run", "bigru-concat", "--out", "r", *TINY], cwd=elsewhere, env=env)
    results = json.loads((elsewhere / "r" / "results.json").read_text(encoding="utf-8"))
    assert results["recipe"] == "bigru-concat" and len(results["seeds"]) == 1


#: Run in the venv: where merc_bench and each built-in plugin's module were imported from (by the
#: registry, through the entry points), and what got registered.
_WHERE_FROM = """
import json, sys
import merc_bench
from merc_bench.plugins import plugin_manager
registry = merc_bench.get_registry()
plugins = {p.__name__: p.__file__ for _, p in plugin_manager().list_name_plugin() if hasattr(p, "__file__")}
print(json.dumps({"merc_bench": merc_bench.__file__, "plugins": plugins,
                  "recipes": len(list(registry.entries("recipe"))),
                  "datasets": [e.name for e in registry.entries("dataset")]}))
"""
