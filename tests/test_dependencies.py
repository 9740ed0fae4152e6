"""pyproject.toml's requirement ranges and constraints.txt's pins, put to pip's own resolver offline.

pip resolves ``pyro-aevb`` (its requirements read from pyproject.toml) beside a torch the user already has, among
metadata-only wheels made here: torch releases inside and outside the range, each with the torchvision built for it
(which pins that torch, as the real ones do), pyro-ppl, and every other requirement at its constraints.txt version.
No network, no machine configuration (PIP_CONFIG_FILE=os.devnull): what is checked is the ranges themselves.
"""

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11's tomllib")

ROOT = Path(__file__).resolve().parents[1]
# (torch, the torchvision built for it); 2.4/0.19 is the lower end of the range, 2.14.1/0.29.1 the tested one
TORCH = {"2.3.1": "0.18.1", "2.4.0": "0.19.0", "2.13.0": "0.28.0", "2.14.1": "0.29.1", "3.0.0": "1.0.0"}
PYRO = {"1.9.0": "torch>=2.0", "1.9.1": "torch>=2.0", "1.9.2": "torch>=2.0", "1.10.0": "torch>=2.0"}


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower().replace("_", "-")


def _pins() -> dict:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {_name(line): line.split("==")[1].strip() for line in lines if "==" in line and not line.startswith("#")}


def _wheel(folder: Path, name: str, version: str, requires=()) -> None:
    """A wheel holding only its metadata: enough for pip's resolver, never installed."""
    dist = f"{name.replace('-', '_')}-{version}"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as z:
        z.writestr(f"{dist}.dist-info/METADATA", metadata)
        z.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                              "Tag: py3-none-any\n")
        z.writestr(f"{dist}.dist-info/RECORD", "")


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    """A find-links folder: pyro-aevb with pyproject.toml's requirements, and the packages it may resolve to."""
    folder = tmp_path_factory.mktemp("wheels")
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    _wheel(folder, "pyro-aevb", "0.1.0", requirements)
    for torch, torchvision in TORCH.items():
        _wheel(folder, "torch", torch)
        _wheel(folder, "torchvision", torchvision, [f"torch=={torch}"])
    for pyro, requires in PYRO.items():
        _wheel(folder, "pyro-ppl", pyro, [requires])
    pins = _pins()
    for name in {_name(r) for r in requirements} - {"torch", "torchvision", "pyro-ppl"}:
        _wheel(folder, name, pins[name])
    return folder


def _resolve(index: Path, *requirements: str, constraints=None):
    """pip install --dry-run among the wheels of ``index`` only: ({name: version}, pip's stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no pip.conf of this machine: no other index, find-links or cap
    report = index.parent / f"report-{os.getpid()}.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-index", "--find-links",
           str(index), "--disable-pip-version-check", "--quiet", "--report", str(report), *requirements]
    if constraints:
        cmd += ["-c", str(constraints)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return None, proc.stderr
    chosen = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    return chosen, proc.stderr


@pytest.mark.parametrize("torch", ["2.4.0", "2.13.0", "2.14.1"])
def test_the_package_installs_beside_a_torch_of_its_range(index, torch):
    """A user's torch inside the range is kept, with the torchvision built for it: pip resolves without changing it."""
    chosen, err = _resolve(index, "pyro-aevb", f"torch=={torch}", f"torchvision=={TORCH[torch]}")
    assert chosen is not None, err
    assert chosen["torch"] == torch and chosen["torchvision"] == TORCH[torch] and chosen["pyro-aevb"] == "0.1.0"


@pytest.mark.parametrize("torch", ["2.3.1", "3.0.0"])
def test_a_torch_outside_the_range_is_refused(index, torch):
    """Below 2.4 (no fused CPU Adagrad) and from 3.0 on, pip refuses rather than installing a broken combination."""
    chosen, err = _resolve(index, "pyro-aevb", f"torch=={torch}")
    assert chosen is None and ("ResolutionImpossible" in err or "conflict" in err.lower()), err


def test_constraints_pin_the_tested_versions_inside_the_ranges(index):
    """With constraints.txt (what make install and CI use) pip picks exactly its pins, which the ranges admit."""
    chosen, err = _resolve(index, "pyro-aevb", constraints=ROOT / "constraints.txt")
    assert chosen is not None, err
    pins = _pins()
    assert {name: version for name, version in chosen.items() if name != "pyro-aevb"} == \
        {name: pins[name] for name in chosen if name != "pyro-aevb"}
    assert (chosen["torch"], chosen["torchvision"], chosen["pyro-ppl"]) == ("2.14.1", "0.29.1", "1.9.2")


def test_every_requirement_and_extra_is_pinned():
    """Every package named in pyproject.toml, extras included, has an exact pin in constraints.txt."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = {_name(r) for r in project["dependencies"]}
    named |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    assert sorted(named - set(_pins())) == []
