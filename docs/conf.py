"""Sphinx configuration of the pyro-aevb site: `make docs` builds it into docs/_build/html (warnings are errors).

Pages are MyST Markdown; the notebooks in ../notebooks (reached through the docs/notebooks link) are rendered from
their stored outputs, never executed; the CLI reference is generated from `pyro_aevb.cli.build_parser()`."""
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "pyro-aevb"
author = "the pyro-aevb developers"
copyright = "2026, the pyro-aevb developers"
try:
    from importlib.metadata import version as _version
    release = _version("pyro-aevb")
except Exception:  # building from a tree that is not installed
    release = ""

extensions = [
    "myst_nb",                      # MyST Markdown pages and .ipynb notebooks (includes myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_autodoc_typehints",
    "cli_help",                     # docs/_ext/cli_help.py: the `pyro-aevb` reference from the argparse parser
]

source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = [
    "_build", "_ext", "Thumbs.db", ".DS_Store",
    "results/**",                   # raw outputs of reproduction runs, linked from reproduction.md as files
    "notebooks/experiments/**", "notebooks/.ipynb_checkpoints/**", "**/.ipynb_checkpoints",
]

# Optional pages (install, training options, the gallery) are `:glob:` entries of the index's toctrees, so a page
# appears in the site as soon as its file exists.  Sphinx warns about a glob that matches nothing (a warning it
# does not let `suppress_warnings` silence), so `_rewrite_source` removes such an entry before the index is parsed.
GLOB_CHARS = set("*?[")
NOTEBOOK_LINK = re.compile(r"\]\((?P<prefix>(?:\.\./)*)\.\./notebooks/(?P<name>[\w-]+)\.ipynb\)")


def _rewrite_source(app, docname, source):
    # Links to a notebook as GitHub shows them, `(../notebooks/NAME.ipynb)`, are links to its page here.
    source[0] = NOTEBOOK_LINK.sub(r"](\g<prefix>notebooks/\g<name>)", source[0])
    if docname != root_doc:
        return
    kept = []
    for line in source[0].splitlines(keepends=True):
        entry = line.strip()
        if entry and GLOB_CHARS & set(entry) and not entry.startswith((":", "`", "#")) and " " not in entry:
            if not any(any(HERE.glob(entry + suffix)) for suffix in (".md", ".ipynb")):
                continue
        kept.append(line)
    source[0] = "".join(kept)


def setup(app):
    app.connect("source-read", _rewrite_source)

# MyST
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3            # `[...](#a-heading)` links inside and across pages

# myst-nb: render the notebooks' stored outputs; never execute them while building the site.
nb_execution_mode = "off"
nb_merge_streams = True

# autodoc
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
typehints_fully_qualified = False
always_document_param_types = False
napoleon_google_docstring = True
napoleon_numpy_docstring = True

# HTML
html_theme = "furo"
html_title = f"pyro-aevb {release}".strip()
html_static_path = []
html_show_sourcelink = False
