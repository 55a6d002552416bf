"""Every public name, hook, built-in plugin, component factory and CLI command has a docstring,
and the reference pages render it.

The fast tests check the docstrings in the code; the ``slow`` ones build the HTML once (a
module-scoped fixture) and look for each name, and the start of its docstring, in the reference
pages.
"""

from __future__ import annotations

import argparse
import html
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import biocoreset
from biocoreset.cli import build_parser
from biocoreset.plugins import hookspecs
from biocoreset.plugins.builtins import BUILTINS, BuiltinPlugin
from biocoreset.plugins.manager import BUILTIN_PLUGINS, load_registry, make_plugin_manager

ROOT = Path(__file__).resolve().parents[1]

PUBLIC = [n for n in biocoreset.__all__ if not (n.startswith("__") and n.endswith("__"))]
HOOKS = [*hookspecs.KINDS.values(), hookspecs.FAMILY_HOOK]


def _builtin_components():
    registry = load_registry(make_plugin_manager(entry_points=False))
    return [c for c in registry.components() if c.plugin in BUILTIN_PLUGINS]


COMPONENTS = _builtin_components()


def _subcommands() -> list[tuple[str, str, argparse.ArgumentParser]]:
    parser = build_parser()
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            out += [(name, helps.get(name) or "", sub) for name, sub in action.choices.items()]
    return out


COMMANDS = _subcommands()


def _own_doc(obj: object) -> str:
    """The docstring written for ``obj`` itself (not inherited from its type or a base class)."""
    if inspect.isclass(obj):
        return inspect.cleandoc(obj.__dict__.get("__doc__") or "")
    if inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.ismodule(obj):
        return inspect.cleandoc(obj.__doc__ or "")
    return ""


def _attribute_doc(name: str, obj: object) -> str:
    """The attribute docstring (a string right after the assignment) of a module-level data name."""
    from sphinx.pycode import ModuleAnalyzer

    for modname, module in sorted(sys.modules.items()):
        if modname.split(".")[0] != "biocoreset" or getattr(module, name, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:
            continue
        if ("", name) in docs:
            return "\n".join(docs[("", name)]).strip()
    return ""


def _doc(name: str, obj: object) -> str:
    return _own_doc(obj) or _attribute_doc(name, obj)


# -- the docstrings exist --------------------------------------------------------------------------


@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_has_docstring(name):
    assert _doc(name, getattr(biocoreset, name)), f"biocoreset.{name} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_hookspec_has_docstring(hook):
    assert _own_doc(getattr(hookspecs, hook)), f"hook {hook} has no docstring"


@pytest.mark.parametrize("modname", BUILTIN_PLUGINS)
def test_builtin_plugin_has_docstrings(modname):
    """A built-in plugin is registered lazily under its module's name (its hooks live in
    :class:`~biocoreset.plugins.builtins.BuiltinPlugin`): the module and every component it
    registers are documented."""
    module = importlib.import_module(modname)
    assert _own_doc(module), f"built-in plugin module {modname} has no docstring"
    entries = [e for kind in BUILTINS[modname].values() for e in kind]
    assert entries, f"{modname} registers nothing"
    for name, _target, description in entries:
        assert description, f"{modname}: {name!r} has no description"
    for hook in HOOKS:
        assert _own_doc(getattr(BuiltinPlugin, hook)), f"BuiltinPlugin.{hook} has no docstring"


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: f"{c.kind}-{c.name}")
def test_component_factory_has_docstring(component):
    assert _own_doc(component.factory), (
        f"{component.kind} {component.name!r}: factory {component.factory!r} "
        f"(registered by {component.plugin}) has no docstring"
    )


def test_every_kind_has_a_builtin():
    assert {c.kind for c in COMPONENTS} == set(hookspecs.KINDS)


@pytest.mark.parametrize("command", [c[0] for c in COMMANDS])
def test_cli_command_has_help(command):
    help_text, sub = {n: (h, s) for n, h, s in COMMANDS}[command]
    assert help_text.strip(), f"`biocoreset {command}` has no help text"
    assert sub.get_default("func") is not None, f"`biocoreset {command}` has no handler"


def test_docstring_check_catches_a_missing_one():
    def undocumented():
        pass

    class Undocumented(biocoreset.ScoreConfig):
        pass

    assert not _own_doc(undocumented)
    assert not _own_doc(Undocumented)
    assert not _doc("x", 3)


# -- the docstrings are rendered -------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_html(tmp_path_factory) -> dict[str, str]:
    """The reference pages, built once: ``{page name: html}``."""
    pytest.importorskip("sphinx")
    out = tmp_path_factory.mktemp("html")
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-E", "-b", "html", str(ROOT / "docs"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {p.stem: p.read_text(encoding="utf-8") for p in (out / "reference").glob("*.html")}


def _text(page: str) -> str:
    page = re.sub(r"<script.*?</script>|<style.*?</style>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _plain(rst: str) -> str:
    """The first sentence of a docstring as it reads once rendered (roles and literals resolved)."""

    def role(m: re.Match) -> str:
        kind, target = m.group(1), m.group(2)
        if "<" in target:
            return target.split("<")[0].strip()
        text = target[1:].rsplit(".", 1)[-1] if target.startswith("~") else target
        return text + "()" if kind.split(":")[-1] in {"func", "meth"} else text

    first = rst.strip().split("\n\n")[0]
    first = re.sub(r":([\w:]+):`([^`]+)`", role, first)
    first = first.replace("``", "").replace("`", "").replace("**", "").replace("*", "")
    return re.sub(r"\s+", " ", first)


def _rendered(pages: dict[str, str], doc: str, words: int = 4) -> bool:
    """Whether the first ``words`` words of ``doc`` appear in the pages (whitespace ignored:
    the HTML splits literals and roles into spans)."""
    start = _unquote("".join(_plain(doc).split()[:words]))
    text = _unquote("".join(_text(p) for p in pages.values()))
    return bool(start) and start in re.sub(r"\s+", "", text)


def _unquote(text: str) -> str:
    """Undo Sphinx's smart quotes and dashes."""
    for a, b in (("’", "'"), ("‘", "'"), ("“", '"'), ("”", '"'), ("—", "---"), ("–", "--")):
        text = text.replace(a, b)
    return text


def _has_id(pages: dict[str, str], anchor: str) -> bool:
    return any(f'id="{anchor}"' in p for p in pages.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", PUBLIC)
def test_public_name_rendered(reference_html, name):
    obj = getattr(biocoreset, name)
    ids = [f"biocoreset.{name}"]
    if getattr(obj, "__module__", None):
        ids.append(f"{obj.__module__}.{name}")
    ids += [
        f"{m}.{name}"
        for m, mod in sys.modules.items()
        if m.startswith("biocoreset.") and getattr(mod, name, None) is obj
    ]
    assert any(_has_id(reference_html, i) for i in ids), (
        f"biocoreset.{name} is not in the reference pages"
    )
    assert _rendered(reference_html, _doc(name, obj)), (
        f"the docstring of biocoreset.{name} is not rendered"
    )


@pytest.mark.slow
@pytest.mark.parametrize("hook", HOOKS)
def test_hook_rendered(reference_html, hook):
    assert _has_id(reference_html, f"biocoreset.plugins.hookspecs.{hook}")
    assert _rendered(reference_html, _own_doc(getattr(hookspecs, hook)))


@pytest.mark.slow
@pytest.mark.parametrize("modname", BUILTIN_PLUGINS)
def test_builtin_plugin_rendered(reference_html, modname):
    assert _has_id(reference_html, f"module-{modname}"), f"{modname} is not in the reference pages"
    assert _rendered(reference_html, _own_doc(importlib.import_module(modname)))


@pytest.mark.slow
@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: f"{c.kind}-{c.name}")
def test_component_rendered(reference_html, component):
    text = _text(
        reference_html[
            {
                "adapter": "adapters",
                "curvature": "curvatures",
                "scorer": "scorers",
                "selector": "selectors",
                "task": "tasks",
            }[component.kind]
        ]
    )
    factory = f"{component.factory.__module__}.{component.factory.__qualname__}"
    assert factory in text, f"{component.kind} {component.name!r} ({factory}) is not listed"
    assert _rendered(reference_html, _own_doc(component.factory)), (
        f"docstring of {factory} is not rendered"
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", [c[0] for c in COMMANDS])
def test_cli_command_rendered(reference_html, command):
    page = reference_html["cli"]
    assert f'id="cli-{command}"' in page, f"`biocoreset {command}` is not on the CLI page"
    help_text = {n: h for n, h, _ in COMMANDS}[command]
    assert " ".join(help_text.split()[1:5]) in _text(page)
