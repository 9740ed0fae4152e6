"""models/ and guides/ ship as pyro_aevb.models / pyro_aevb.guides, never as top-level packages."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = (
    "import importlib.util, pyro_aevb.models, pyro_aevb.guides; "
    "assert importlib.util.find_spec('models') is None and importlib.util.find_spec('guides') is None; "
    "print(pyro_aevb.models.__file__)"
)


def test_installed_package_maps_models_and_guides(tmp_path):
    """The editable install (make install) serves pyro_aevb.models from the repository's models/ folder."""
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == ROOT / "models" / "__init__.py"


def test_wheel_contents_and_import(tmp_path):
    """A built wheel holds pyro_aevb/models and pyro_aevb/guides and nothing else at the top level,
    and imports from a clean directory."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("pyro_aevb-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"pyro_aevb"}
    assert "pyro_aevb/models/vae.py" in names and "pyro_aevb/guides/amortized.py" in names
    # every Python file of the source tree is in the wheel, at its pyro_aevb.* place
    sources = [p.relative_to(ROOT).as_posix() for p in (ROOT / "pyro_aevb").rglob("*.py")]
    sources += ["pyro_aevb/" + p.relative_to(ROOT).as_posix() for d in ("models", "guides")
                for p in (ROOT / d).rglob("*.py")]
    missing = [s for s in sources if "__pycache__" not in s and s not in names]
    assert not missing, f"not packaged: {missing}"
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    # -S: no site module, so the editable install's .pth finder is not loaded; the dependencies come
    # from the venv's site-packages put on sys.path by hand, after the wheel's target directory.
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    code = f"import sys; sys.path[:0] = [{str(target)!r}, {site_packages!r}]; " + PROBE
    proc = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(target / "pyro_aevb" / "models" / "__init__.py")
