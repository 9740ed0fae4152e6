"""``{cli-help}``: the `pyro-aevb` command-line reference, generated from `pyro_aevb.cli.build_parser()`.

The directive renders the top-level `--help` and then one section per subcommand with its `--help` text, so the
page always lists exactly the flags the installed parser has (new subcommands and flags appear by themselves)."""
from __future__ import annotations

import argparse
import os

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

WIDTH = "100"  # argparse wraps help text at $COLUMNS; fixed so that the page does not depend on the terminal


def _help(parser: argparse.ArgumentParser) -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = WIDTH
    try:
        return parser.format_help()
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of every subcommand, in the parser's order."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, helps.get(name, ""), sub))
    return out


class CliHelp(SphinxDirective):
    """One section per subcommand (title, its one-line help, its ``--help`` text), after the top-level usage."""

    has_content = False

    def _section(self, title: str, summary: str, text: str) -> nodes.section:
        section = nodes.section(ids=[nodes.make_id(title)], names=[nodes.fully_normalize_name(title)])
        section += nodes.title(title, title)
        if summary:
            section += nodes.paragraph(summary, summary)
        block = nodes.literal_block(text, text, language="text")
        section += block
        self.state.document.note_implicit_target(section, section)
        return section

    def run(self) -> list[nodes.Node]:
        from pyro_aevb.cli import build_parser

        parser = build_parser()
        out = [self._section("Usage", "", _help(parser))]
        for name, summary, sub in subcommands(parser):
            out.append(self._section(f"pyro-aevb {name}", summary, _help(sub)))
        return out


def setup(app):
    app.add_directive("cli-help", CliHelp)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
