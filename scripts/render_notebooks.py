"""Execute notebooks in place at their full budget, so the committed files carry the outputs of a real run.

    python scripts/render_notebooks.py                      # every notebook in notebooks/
    python scripts/render_notebooks.py notebooks/01_quickstart.ipynb notebooks/03_full_vb.ipynb

Each notebook runs in a fresh ``python3`` kernel whose working directory is notebooks/ (as in
tests/test_notebooks.py), with ``PYRO_AEVB_NOTEBOOK_BUDGET`` removed from the environment so the notebook picks
its "full" budget.  ``MPLBACKEND`` is removed too: ipykernel then selects the inline backend, which embeds
every ``plt.show()`` figure as an image/png output (with ``MPLBACKEND=Agg`` the figures would be dropped).
tqdm's "IProgress not found" import warning is silenced (it would print an absolute site-packages path).
The executed notebook is written back over the file with nbformat; the wall time of each is printed.
A notebook whose cell raises is not written (the file keeps its previous contents) and the script exits 1.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"


def render(path, timeout=1800):
    """Execute ``path`` top to bottom at the full budget and write it back; returns the wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, startup_timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    t0 = time.time()
    client.execute()
    seconds = time.time() - t0
    nbformat.write(nb, path)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to execute in place (default: every notebooks/*.ipynb)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (default 1800)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOK_DIR.glob("*.ipynb"))

    # The kernel inherits this process's environment: unset budget -> "full"; no MPLBACKEND -> inline PNG figures.
    os.environ.pop("PYRO_AEVB_NOTEBOOK_BUDGET", None)
    os.environ.pop("MPLBACKEND", None)
    # tqdm.auto (imported by pyro_aevb) warns at import that ipywidgets is missing; the bars are off (progress=False),
    # and the warning text would put this machine's site-packages path into the committed outputs.
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"),
                                                          "ignore:IProgress not found"]))

    failed = []
    for path in paths:
        path = path.resolve()
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
        print(f"{name}: running ...", flush=True)
        try:
            seconds = render(path, timeout=args.timeout)
        except CellExecutionError as e:
            print(f"{name}: FAILED, file left unchanged\n{e}", flush=True)
            failed.append(name)
            continue
        size = path.stat().st_size / 1e6
        print(f"{name}: {seconds:.0f} s wall, {size:.2f} MB written", flush=True)
    if failed:
        print("failed: " + ", ".join(map(str, failed)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
