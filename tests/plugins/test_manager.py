"""Plugin loading: built-ins, entry points, blocking, replacing, misspelt hooks, unknown names."""

from __future__ import annotations

import types
from importlib.metadata import entry_points

import pytest

import biocoreset
from biocoreset import hookimpl, select
from biocoreset.errors import PluginError, UnknownComponentError
from biocoreset.plugins import get_registry, make_plugin_manager
from biocoreset.plugins.manager import BUILTIN_PLUGINS, load_registry


def test_builtins_registered():
    reg = get_registry()
    assert {"identity", "diagonal"} <= set(reg.names("curvature"))
    assert {"self-influence", "loss"} <= set(reg.names("scorer"))
    assert {"topk", "cci", "random"} <= set(reg.names("selector"))
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
    with pytest.raises(
        UnknownComponentError, match=r"unknown selector 'cci'.*Choices: random, topk"
    ):
        select([1.0, 2.0], "cci", budget=1)


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
    # Without blocking, the duplicate name is an error naming both plugins.
    pm = make_plugin_manager(entry_points=False)
    pm.register(plugin, name="mine")
    with pytest.raises(
        PluginError, match=r"'topk' is registered twice.*biocoreset.selectors.topk.*mine"
    ):
        load_registry(pm)
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
