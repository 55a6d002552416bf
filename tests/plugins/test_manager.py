"""Plugin loading: built-ins, entry points, blocking, replacing, hook order, misspelt hooks, unknown
names."""

from __future__ import annotations

import types
from importlib.metadata import entry_points

import pytest

import biocoreset
from biocoreset import hookimpl, select
from biocoreset.errors import BioCoresetWarning, PluginError, UnknownComponentError
from biocoreset.plugins import get_registry, make_plugin_manager
from biocoreset.plugins.manager import BUILTIN_PLUGINS, load_registry


def test_builtins_registered():
    reg = get_registry()
    assert {"identity", "diagonal"} <= set(reg.names("curvature"))
    assert {"self-influence", "loss"} <= set(reg.names("scorer"))
    assert {"topk", "cci", "random", "cluster"} <= set(reg.names("selector"))
    assert "hf" in reg.names("adapter")
    for c in reg.components():
        if c.plugin in BUILTIN_PLUGINS:
            assert c.source == "built-in"


def test_example_plugin_discovered_through_entry_point():
    eps = [ep for ep in entry_points(group="biocoreset") if ep.name == "example"]
    assert eps, (
        "the example plugin is not installed: pip install ./examples/biocoreset-example-plugin "
        "(the README's test command does this)"
    )
    comp = get_registry().get("selector", "quantile-strata")
    assert comp.plugin == "example"
    assert comp.source.startswith("entry point (biocoreset-example-plugin")
    sel = select(list(range(100)), "quantile-strata", budget=10, strata=5)
    assert sel.indices.size == 10


def test_block_builtin_by_name(monkeypatch):
    monkeypatch.setenv("BIOCORESET_DISABLE_PLUGINS", "biocoreset.selectors.cci, example")
    biocoreset.plugins.reset()
    reg = get_registry()
    assert "cci" not in reg.names("selector")
    assert "quantile-strata" not in reg.names("selector")
    # the name is known to be the disabled built-in's: say so, and by which variable
    with pytest.raises(
        UnknownComponentError,
        match=r"selector 'cci' is provided by plugin 'biocoreset.selectors.cci', which is disabled "
        r"\(BIOCORESET_DISABLE_PLUGINS=biocoreset.selectors.cci, example\).*Available: cluster, random, topk",
    ):
        select([1.0, 2.0], "cci", budget=1)
    # a name no plugin provides: the usual message, naming the disabled entry point as a suspect
    with pytest.raises(
        UnknownComponentError,
        match=r"unknown selector 'quantile'.*Disabled plugins that might provide it: example",
    ):
        get_registry().get("selector", "quantile")


def test_replace_builtin():
    class MyTopK:
        name = "topk"

        def __init__(self, **_):
            pass

        def select(self, scores, budget, *, seed=0):
            import numpy as np

            return np.arange(budget, dtype=np.int64)

    plugin = types.SimpleNamespace(
        biocoreset_register_selectors=hookimpl(lambda register: register("topk", MyTopK))
    )
    # Without blocking, the duplicate name is an error naming both plugins. Hooks run in pluggy's
    # order (the newest plugin first), so "mine" registers topk first and the built-in second:
    # the fix offered first is to block the built-in (the plugin that registered it second).
    pm = make_plugin_manager(entry_points=False)
    pm.register(plugin, name="mine")
    with pytest.raises(PluginError) as err:
        load_registry(pm)
    msg = str(err.value)
    assert msg.startswith(
        "selector 'topk' is registered twice: first by plugin 'mine' (plugin), then by plugin "
        "'biocoreset.selectors.topk' (built-in). To use 'mine''s, block the plugin that registered "
        "it second: BIOCORESET_DISABLE_PLUGINS=biocoreset.selectors.topk."
    ), msg
    assert msg.endswith(
        "To keep 'biocoreset.selectors.topk''s, block the other: BIOCORESET_DISABLE_PLUGINS=mine."
    ), msg
    pm = make_plugin_manager(entry_points=False, disable=["biocoreset.selectors.topk"])
    pm.register(plugin, name="mine")
    reg = load_registry(pm)
    assert reg.get("selector", "topk").plugin == "mine"


def test_misspelt_hook_is_caught():
    bad = types.ModuleType("bad_plugin")
    bad.biocoreset_register_selector = hookimpl(lambda register: None)  # missing "s"
    pm = make_plugin_manager(entry_points=False)
    pm.register(bad, name="bad")
    import pluggy

    with pytest.raises(pluggy.PluginValidationError, match="unknown hook"):
        pm.check_pending()


def test_unknown_name_lists_choices_and_suggests():
    with pytest.raises(UnknownComponentError) as err:
        get_registry().get("curvature", "diagnal")
    msg = str(err.value)
    assert "Did you mean 'diagonal'?" in msg
    assert "Choices: " in msg and "diagonal, " in msg and "identity" in msg
    assert isinstance(err.value, LookupError)


def test_bad_component_name():
    plugin = types.SimpleNamespace(
        biocoreset_register_selectors=hookimpl(lambda register: register("My_Selector", object))
    )
    pm = make_plugin_manager(entry_points=False, builtins=())
    pm.register(plugin, name="p")
    with pytest.raises(PluginError, match="kebab-case"):
        load_registry(pm)


def _recorder(calls: list[str], tag: str, **marks):
    def biocoreset_register_scorers(register):
        calls.append(tag)

    return types.SimpleNamespace(
        biocoreset_register_scorers=hookimpl(**marks)(biocoreset_register_scorers)
    )


def test_hooks_run_through_pluggy_in_its_order():
    """Newest plugin first, ``tryfirst``/``trylast`` honoured: exactly pluggy's order."""
    calls: list[str] = []
    pm = make_plugin_manager(entry_points=False, builtins=())
    pm.register(_recorder(calls, "old"), name="old")
    pm.register(_recorder(calls, "new"), name="new")
    pm.register(_recorder(calls, "last", trylast=True), name="last")
    pm.register(_recorder(calls, "first", tryfirst=True), name="first")
    load_registry(pm)
    assert calls == ["first", "new", "old", "last"]
    calls.clear()
    pm.hook.biocoreset_register_scorers(register=lambda *a, **k: None)
    assert calls == ["first", "new", "old", "last"]


def test_each_registration_is_attributed_to_its_plugin():
    def selectors(register):
        register("from-module", MySelector, description="x")

    class Obj:
        @hookimpl
        def biocoreset_register_selectors(self, register):
            register("from-object", MySelector)

    pm = make_plugin_manager(entry_points=False)
    pm.register(types.SimpleNamespace(biocoreset_register_selectors=hookimpl(selectors)), name="a")
    pm.register(Obj(), name="b")
    pm.register(Obj(), name="c-plugin")  # same method code, another object
    with pytest.raises(
        PluginError,
        match=r"'from-object' is registered twice: first by plugin "
        r"'c-plugin' \(plugin\), then by plugin 'b'",
    ):
        load_registry(pm)
    pm.unregister(name="c-plugin")
    reg = load_registry(pm)
    assert reg.get("selector", "from-module").plugin == "a"
    assert reg.get("selector", "from-object").plugin == "b"
    assert reg.get("selector", "cci").plugin == "biocoreset.selectors.cci"


class MySelector:
    """A selector taking no options."""

    name = "mine"

    def select(self, scores, budget, *, seed=0):
        import numpy as np

        return np.arange(budget, dtype=np.int64)


def test_lazy_string_factories_from_a_plugin():
    plugin = types.SimpleNamespace(
        biocoreset_register_selectors=hookimpl(
            lambda register: (
                register("lazy-topk", "biocoreset.selectors.topk:TopKSelector"),
                register("lazy-missing", "biocoreset.selectors.nope:Nothing"),
                register("lazy-no-attr", "biocoreset.selectors.topk:Nothing"),
            )
        )
    )
    pm = make_plugin_manager(entry_points=False)
    pm.register(plugin, name="lazy")
    reg = load_registry(pm)
    assert reg.get("selector", "lazy-topk").create(largest=False).largest is False
    with pytest.raises(PluginError, match=r"cannot import 'biocoreset\.selectors\.nope'"):
        reg.get("selector", "lazy-missing").create()
    with pytest.raises(PluginError, match="has no attribute 'Nothing'"):
        reg.get("selector", "lazy-no-attr").create()
    bad = types.SimpleNamespace(
        biocoreset_register_selectors=hookimpl(lambda register: register("x", "no-colon"))
    )
    pm = make_plugin_manager(entry_points=False, builtins=())
    pm.register(bad, name="bad")
    with pytest.raises(PluginError, match=r"'package\.module:attr'"):
        load_registry(pm)


def test_disabling_a_component_name_warns_and_names_the_plugin(monkeypatch):
    monkeypatch.setenv("BIOCORESET_DISABLE_PLUGINS", "cci")
    with pytest.warns(BioCoresetWarning) as caught:
        reg = get_registry()
    msg = str(caught[0].message)
    assert "BIOCORESET_DISABLE_PLUGINS names 'cci', which is not a plugin" in msg
    assert "selector 'cci' comes from plugin 'biocoreset.selectors.cci'" in msg
    assert "BIOCORESET_DISABLE_PLUGINS=biocoreset.selectors.cci" in msg
    assert "cci" in reg.names("selector")  # nothing was disabled
    monkeypatch.setenv("BIOCORESET_DISABLE_PLUGINS", "biocoreset.selector.cci")
    biocoreset.plugins.reset()
    with pytest.warns(BioCoresetWarning, match=r"Did you mean 'biocoreset.selectors.cci'\?"):
        get_registry()
    monkeypatch.setenv("BIOCORESET_DISABLE_PLUGINS", "biocoreset.selectors.cci,example")
    biocoreset.plugins.reset()
    get_registry()  # real plugin names: no warning (warnings are errors in the tests)


def test_disabled_message_through_the_cli(monkeypatch, capsys):
    from biocoreset.cli import main

    monkeypatch.setenv("BIOCORESET_DISABLE_PLUGINS", "biocoreset.selectors.cci")
    assert main(["plugins", "--options", "cci", "--kind", "selector"]) == 2
    err = capsys.readouterr().err
    assert "which is disabled (BIOCORESET_DISABLE_PLUGINS=biocoreset.selectors.cci)" in err
