"""The documentation cannot rot: the site builds with warnings as errors, its API reference documents every public
name, and every ```python block of README.md and of the site's pages runs.

The site needs the `docs` extra (`pip install -e '.[docs]'`, which `make install` does): without it these tests
fail, they are not skipped.  The code blocks of one page run in order in one namespace, in a fresh interpreter whose
working directory is a temporary folder, as a reader pasting them one after the other would.  A block that cannot
run there is preceded by a visible comment `<!-- no-run: reason -->`.
"""
import importlib
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGE_BUDGET_S = 120  # a page's blocks together; the whole set takes well under a minute on 2 cores
NO_RUN = re.compile(r"<!--\s*no-run:\s*(?P<reason>.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)$")
DOCUMENTED_MODULES = ["pyro_aevb", "pyro_aevb.models", "pyro_aevb.guides", "pyro_aevb.inputs", "pyro_aevb.labels",
                      "pyro_aevb.evaluation", "pyro_aevb.infer", "pyro_aevb.applications"]


def code_blocks(text: str):
    """(first line number, language, code, no-run reason or None) of every fenced block of a Markdown text."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        lang = m["info"].strip().split(" ")[0].strip("{}") if m["info"].strip() else ""
        j = i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip(fence[0]) == ""):
            j += 1
        code = textwrap.dedent("\n".join(line[indent:] if line[:indent].strip() == "" else line
                                         for line in lines[i + 1:j]))
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = NO_RUN.search(lines[k]) if k >= 0 else None
        blocks.append((i + 2, lang, code, marker["reason"] if marker else None))
        i = j + 1
    return blocks


def pages():
    """README.md and every Markdown page of the site (not the build output)."""
    found = [ROOT / "README.md"] + sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.relative_to(DOCS).parts)
    return [p for p in found if any(lang == "python" for _, lang, _, _ in code_blocks(p.read_text()))]


def test_code_block_extraction():
    """The extractor finds fenced blocks, their language and line, and the no-run marker only where it is."""
    text = "# t\n\n```python\nx = 1\n```\n\n<!-- no-run: needs a GPU -->\n```python\nimport cuda\n```\n" \
           "  ```bash\n  make test\n  ```\n````markdown\n```python\nnested\n```\n````\n"
    got = code_blocks(text)
    assert [(line, lang, reason) for line, lang, _, reason in got] == [
        (4, "python", None), (9, "python", "needs a GPU"), (12, "bash", None), (15, "markdown", None)]
    assert got[0][2] == "x = 1" and got[2][2] == "make test" and got[3][2] == "```python\nnested\n```"


def test_readme_is_a_front_page():
    """The README stays short, has the two commands and a Python quickstart that runs (below), and leads to the site."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 13_000, "README.md is the front page: move details to a page in docs/"
    assert "make run" in readme and "make test" in readme and "make docs" in readme
    blocks = [b for b in code_blocks(readme) if b[1] == "python"]
    assert blocks and all(reason is None for *_, reason in blocks), "the README's quickstart must run as it stands"
    for link in re.findall(r"\]\((docs/[^)#\s]+)", readme):
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page, tmp_path):
    blocks = [(line, code, reason) for line, lang, code, reason in code_blocks(page.read_text()) if lang == "python"]
    for line, _, reason in blocks:
        assert reason is None or reason, f"{page.name}:{line}: a no-run marker must give its reason"
    runnable = [(line, code) for line, code, reason in blocks if reason is None]
    assert runnable, f"{page.name}: every python block is marked no-run; keep at least one runnable"
    script = tmp_path / "blocks.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        namespace = {{"__name__": "__main__"}}
        for line, code in {runnable!r}:
            exec(compile(code, "{page.relative_to(ROOT)}:" + str(line), "exec"), namespace)
    """))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg", PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=PAGE_BUDGET_S)
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, (f"a python block of {page.relative_to(ROOT)} failed "
                                  f"(line numbers are the block's first line + n):\n{proc.stderr[-4000:]}")
    print(f"{page.relative_to(ROOT)}: {len(runnable)} blocks in {seconds:.1f} s")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Build the site as `make docs` does (warnings are errors), into a temporary folder."""
    try:
        import myst_nb, sphinx, furo, sphinx_autodoc_typehints  # noqa: F401
    except ImportError as e:  # a missing extra is a failure, never a skip
        pytest.fail(f"the docs extra is not installed ({e}): pip install -e '.[docs]' (make install does)")
    out = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-j", "1", "-q",
                           "-d", str(out / "doctrees"), str(DOCS), str(out / "html")],
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    print(f"site built in {time.perf_counter() - start:.1f} s")
    assert proc.returncode == 0, f"the site does not build cleanly:\n{proc.stderr[-6000:]}"
    return out / "html"


def test_site_builds(site):
    for page in ["index", "getting_started", "own_model", "runs", "cli", "applications", "reproduction", "full_vb",
                 "speed", "beyond_the_paper", "notebooks", "api/index", "notebooks/01_quickstart"]:
        assert (site / f"{page}.html").exists(), page
    cli = (site / "cli.html").read_text()
    from pyro_aevb.cli import build_parser
    for action in build_parser()._subparsers._group_actions[0].choices["train"]._actions:
        for flag in action.option_strings:
            assert flag in cli, f"the CLI reference misses train {flag}"


def test_api_reference_documents_every_public_name(site):
    from sphinx.util.inventory import InventoryFile

    with open(site / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", os.path.join)
    documented = {name for kind, objects in inventory.items() if kind.startswith("py:") for name in objects}
    modules = {name: importlib.import_module(name) for name in DOCUMENTED_MODULES}
    missing = []
    for name, module in modules.items():
        public = getattr(module, "__all__", None) or [n for n, v in vars(module).items() if not n.startswith("_")
                                                      and getattr(v, "__module__", None) == name]
        for attr in public:
            obj = getattr(module, attr)
            if f"{name}.{attr}" in documented:
                continue
            # documented once, under another documented module that exports the same object
            if not any(f"{other}.{attr}" in documented and getattr(m, attr, None) is obj
                       for other, m in modules.items()):
                missing.append(f"{name}.{attr}")
    assert not missing, f"not in the API reference: {missing}"
