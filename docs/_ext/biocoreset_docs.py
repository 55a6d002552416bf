"""Sphinx extension generating reference content from the code at build time.

Directives (usable from MyST as ```` ```{biocoreset-cli} ```` etc.):

``biocoreset-cli``
    The help of :func:`biocoreset.cli.build_parser` and of every subcommand, one section each.
``biocoreset-components KIND``
    A table of the built-in components of ``KIND`` (adapter, curvature, scorer, selector, task):
    name, factory, plugin module and the factory's summary line.

Event hook: the page ``benchmarks`` gets every ``docs/benchmarks-*.md`` appended as an include, so
a new benchmark page needs no edit here.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def _role_text(match: re.Match) -> str:
    target = match.group(1)
    if "<" in target:
        return target.split("<")[0].strip()
    return target[1:].rsplit(".", 1)[-1] if target.startswith("~") else target


def _summary(obj: object) -> str:
    """The first paragraph of ``obj``'s docstring as plain text (roles and literals unwrapped)."""
    doc = inspect.getdoc(obj) or ""
    first = doc.strip().split("\n\n")[0].replace("\n", " ")
    return re.sub(r":[\w:]+:`([^`]+)`", _role_text, first).replace("``", "")


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, helps.get(name, ""), sub))
    return out


class CLIDirective(SphinxDirective):
    """Render ``biocoreset --help`` and each ``biocoreset COMMAND --help``."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from biocoreset.cli import build_parser

        old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "100"  # stable wrapping whatever the terminal
        try:
            parser = build_parser()
            parser.prog = "biocoreset"
            result: list[nodes.Node] = [nodes.literal_block(text=parser.format_help())]
            for name, help_text, sub in _subparsers(parser):
                section = nodes.section(ids=[f"cli-{name}"], names=[f"biocoreset {name}"])
                section += nodes.title(text=f"biocoreset {name}")
                section += nodes.paragraph(text=help_text[:1].upper() + help_text[1:] + ".")
                section += nodes.literal_block(text=sub.format_help())
                self.state.document.note_implicit_target(section)
                result.append(section)
        finally:
            if old is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = old
        return result


class ComponentsDirective(SphinxDirective):
    """A table of the built-in components of one kind."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        from biocoreset.plugins.hookspecs import KINDS
        from biocoreset.plugins.manager import BUILTIN_PLUGINS, load_registry, make_plugin_manager

        kind = self.arguments[0]
        if kind not in KINDS:
            raise self.error(f"unknown component kind {kind!r}; choose from {', '.join(KINDS)}")
        # built-ins only: the docs must not depend on what else is installed
        registry = load_registry(make_plugin_manager(entry_points=False))
        rows = [c for c in registry.components() if c.kind == kind and c.plugin in BUILTIN_PLUGINS]
        table = nodes.table()
        tgroup = nodes.tgroup(cols=4)
        table += tgroup
        for width in (15, 30, 25, 40):
            tgroup += nodes.colspec(colwidth=width)
        head = nodes.thead()
        tgroup += head
        head += self._row(["name", "factory", "plugin module", "description"])
        body = nodes.tbody()
        tgroup += body
        for comp in sorted(rows, key=lambda c: c.name):
            factory = f"{comp.factory.__module__}.{comp.factory.__qualname__}"
            row = self._row([comp.name, factory, comp.plugin, comp.description], literal=(0, 1, 2))
            summary = _summary(comp.factory)
            if summary:  # the factory's docstring, under its name
                row[1] += nodes.paragraph(text=summary)
            body += row
        hook = KINDS[kind]
        para = nodes.paragraph()
        para += nodes.Text("Registered by the hook ")
        para += nodes.literal(text=hook)
        para += nodes.Text("; the built-in components of kind ")
        para += nodes.literal(text=kind)
        para += nodes.Text(":")
        return [para, table]

    @staticmethod
    def _row(cells: list[str], literal: tuple[int, ...] = ()) -> nodes.row:
        row = nodes.row()
        for i, cell in enumerate(cells):
            entry = nodes.entry()
            para = nodes.paragraph()
            para += nodes.literal(text=cell) if i in literal else nodes.Text(cell)
            entry += para
            row += entry
        return row


def _append_benchmarks(app, docname: str, source: list[str]) -> None:
    if docname != "benchmarks":
        return
    docs = Path(app.srcdir)
    # the scale page first (it has the page-level overview), then the rest by name
    pages = sorted((p.name for p in docs.glob("benchmarks-*.md")), key=lambda n: (n != "benchmarks-scale.md", n))
    source[0] += "".join(f"\n\n```{{include}} {name}\n```\n" for name in pages)


def setup(app):
    app.add_directive("biocoreset-cli", CLIDirective)
    app.add_directive("biocoreset-components", ComponentsDirective)
    app.connect("source-read", _append_benchmarks)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
