"""The class capabilities of a registered adapter (``factory``, ``from_path``, ``model_sizes``):
classmethods of the adapter class with neutral defaults, read by ``load_model`` and
``model_sizes`` through ``Component.adapter_class()``."""

from __future__ import annotations

import pytest

from biocoreset.errors import ConfigError
from biocoreset.modelio import load_model, model_sizes
from biocoreset.plugins import hookimpl, manager
from biocoreset.protocols import AdapterBase, adapter_class
from biocoreset.testing import TinyAdapter, tiny_adapter


class SizedAdapter(TinyAdapter):
    """A plugin adapter class with its own loader and named sizes."""

    name = "sized"
    loaded_from: str | None = None

    @classmethod
    def factory(cls):
        return make_sized

    @classmethod
    def from_path(cls, path, *, seed: int = 0, **options):
        adapter = tiny_adapter(seed=seed)
        adapter.loaded_from = str(path)
        return adapter

    @classmethod
    def model_sizes(cls):
        return {"toy": {"layers": 1, "hidden": 8, "heads": 1, "params": 10}}


def make_sized(*, seed: int = 0):
    """Build the toy adapter.

    Args:
        seed: Weight seed.
    """
    return tiny_adapter(seed=seed)


def make_plain(*, seed: int = 0, checkpoint: str | None = None):
    """A factory function with no class: ``--model PATH`` arrives as ``checkpoint=``.

    Args:
        seed: Weight seed.
        checkpoint: A saved model.
    """
    adapter = tiny_adapter(seed=seed)
    adapter.loaded_from = checkpoint
    return adapter


def make_legacy(*, seed: int = 0):
    """The older contract: ``from_path`` and ``model_sizes`` as function attributes.

    Args:
        seed: Weight seed.
    """
    return tiny_adapter(seed=seed)


def _legacy_from_path(path, *, seed: int = 0):
    adapter = tiny_adapter(seed=seed)
    adapter.loaded_from = f"legacy:{path}"
    return adapter


make_legacy.from_path = _legacy_from_path  # type: ignore[attr-defined]
make_legacy.model_sizes = lambda: {"old": {"layers": 2}}  # type: ignore[attr-defined]


class _Plugin:
    @hookimpl
    def biocoreset_register_adapters(self, register):
        register("sized", SizedAdapter, description="class with capabilities")
        register("plain", make_plain, description="factory function")
        register("legacy", make_legacy, description="function attributes")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch):
    pm = manager.make_plugin_manager(entry_points=False)
    pm.register(_Plugin(), name="toy-adapters")
    reg = manager.load_registry(pm)
    monkeypatch.setattr(manager, "_registry", reg)
    return reg


def test_the_defaults_are_neutral():
    class Bare(AdapterBase):
        def __init__(self, *, checkpoint=None):
            self.checkpoint = checkpoint

    assert Bare.factory() is Bare
    assert Bare.model_sizes() == {}
    assert Bare.from_path("some/folder").checkpoint == "some/folder"
    assert Bare().validate("r1", "acgu") == "acgu"


def test_a_registered_class_is_built_by_its_factory_and_loads_by_its_from_path(registry, tmp_path):
    component = registry.get("adapter", "sized")
    assert component.registered() is SizedAdapter and component.load() is make_sized
    assert [o.name for o in component.options()] == ["seed"]
    assert component.create(seed=1).name == "tiny"
    loaded = load_model(tmp_path, adapter="sized", options={"seed": 2}, device=None)
    assert loaded.loaded_from == str(tmp_path)
    assert model_sizes("sized") == {"toy": {"layers": 1, "hidden": 8, "heads": 1, "params": 10}}
    with pytest.raises(ConfigError, match="Did you mean 'seed'"):
        load_model(tmp_path, adapter="sized", options={"sed": 2}, device=None)


def test_a_factory_function_gets_the_neutral_class(registry, tmp_path):
    cls = registry.get("adapter", "plain").adapter_class()
    assert issubclass(cls, AdapterBase) and cls.model_sizes() == {}
    loaded = load_model(tmp_path, adapter="plain", device=None)
    assert loaded.loaded_from == str(tmp_path)  # the older checkpoint= contract
    assert model_sizes("plain") == {}
    with pytest.raises(ConfigError, match="unknown option 'sed' for adapter 'plain'"):
        load_model(tmp_path, adapter="plain", options={"sed": 2}, device=None)


def test_function_attributes_still_work_with_a_deprecation_warning(registry, tmp_path):
    with pytest.warns(DeprecationWarning, match="from_path and model_sizes as function attr"):
        loaded = load_model(tmp_path, adapter="legacy", options={"seed": 1}, device=None)
    assert loaded.loaded_from == f"legacy:{tmp_path}"
    with pytest.warns(DeprecationWarning):
        assert model_sizes("legacy") == {"old": {"layers": 2}}


def test_adapter_class_of_a_class_is_the_class():
    assert adapter_class(SizedAdapter) is SizedAdapter
    assert adapter_class(make_plain).factory() is make_plain


def test_the_builtins_declare_their_sizes_on_the_class():
    from biocoreset.adapters.hf import HFAdapter, make_hf_adapter
    from biocoreset.adapters.rnafm import RnaFmAdapter, make_rnafm_adapter, rnafm_sizes

    assert HFAdapter.factory() is make_hf_adapter and HFAdapter.model_sizes() == {}
    assert RnaFmAdapter.factory() is make_rnafm_adapter
    assert RnaFmAdapter.model_sizes() == rnafm_sizes()

    class Mine(RnaFmAdapter):  # a plugin's subclass registered as it is: its constructor
        pass

    assert Mine.factory() is Mine


def test_embed_has_a_neutral_body_for_any_adapter():
    import torch

    from biocoreset.adapters.hf import HFAdapter
    from biocoreset.protocols import capabilities
    from biocoreset.testing import tiny_esm

    adapter = HFAdapter(*tiny_esm())
    ids = adapter.collate([("a", "ACGU"), ("b", "GG")], seed=0).input_ids
    mask = (ids != adapter.pad_token_id).long()
    hidden = adapter.embed(ids, mask)
    assert hidden.shape[:2] == ids.shape
    want = adapter.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(hidden, want)  # exact: the same model on the same inputs, one process

    class Plugin:  # not an AdapterBase: the same default, through capabilities()
        model = adapter.model

    # exact: the same model on the same inputs, one process
    assert torch.equal(capabilities(Plugin()).embed(ids, mask), want)


def test_loading_refuses_an_option_neither_the_factory_nor_from_path_takes(tmp_path):
    from biocoreset.modelio import save_model
    from biocoreset.plugins import create

    folder = save_model(create("adapter", "rna-fm", size="tiny"), tmp_path / "m")
    with pytest.raises(ConfigError) as info:
        load_model(folder, options={"sise": "tiny"}, device=None)
    message = str(info.value)
    assert "unknown option 'sise' for adapter 'rna-fm'. Did you mean 'size'?" in message
    # the factory's options, then those RnaFmAdapter.from_path names
    assert "pad_to, truncation, path, random_init (see" in message
    load_model(folder, options={"random_init": True}, device=None)  # a from_path option
