"""Component options: declared, listed, and unknown ones refused with a did-you-mean, for every
built-in and for plugins (attrs classes, plain callables, declared **options)."""

from __future__ import annotations

import difflib
import types

import attrs
import pytest

from biocoreset import hookimpl, select
from biocoreset.errors import ConfigError
from biocoreset.plugins import (
    create,
    declare_options,
    describe_options,
    format_options,
    get_registry,
    load_registry,
    make_plugin_manager,
)
from biocoreset.plugins.manager import BUILTIN_PLUGINS
from biocoreset.plugins.options import check_options, declared_options, docstring_args

BUILTINS = [c for c in get_registry().components() if c.plugin in BUILTIN_PLUGINS]


def _typo(name: str) -> str:
    return name[:-1] + ("x" if name[-1] != "x" else "y") if len(name) > 3 else name + "x"


@pytest.mark.parametrize("comp", BUILTINS, ids=lambda c: f"{c.kind}-{c.name}")
def test_every_builtin_declares_its_options_and_refuses_a_typo(comp):
    options = comp.options()
    assert options is not None, f"{comp.kind} {comp.name!r} takes **kwargs without declaring them"
    names = [o.name for o in options]
    if names:
        real = max(names, key=len)
        bad = _typo(real)
        hint = f"Did you mean {difflib.get_close_matches(bad, names, n=1, cutoff=0.6)[0]!r}?"
    else:
        bad, hint = "anything", "Valid options: (none: it takes no options)"
    with pytest.raises(ConfigError) as err:
        comp.create(**{bad: 1})  # refused before the factory runs (no model is built)
    msg = str(err.value)
    assert f"unknown option {bad!r} for {comp.kind} {comp.name!r}" in msg
    assert hint in msg
    assert f"biocoreset plugins --options {comp.name}" in msg


def test_select_refuses_a_misspelt_option():
    with pytest.raises(
        ConfigError,
        match=r"unknown option 'beeta' for selector 'cci'\. Did you "
        r"mean 'beta'\? Valid options: beta, strata, cut, edges, ties, rng",
    ):
        select([0.1, 0.2, 0.3], "cci", budget=1, beeta=0.1)
    with pytest.raises(
        ConfigError, match=r"unknown options 'lrgest' \(did you mean 'largest'\?\), 'zz'"
    ):
        select([0.1, 0.2, 0.3], "topk", budget=1, lrgest=True, zz=1)


def test_adapter_option_typo_is_refused_before_the_model_is_built(monkeypatch):
    import biocoreset.adapters.rnafm as rnafm

    monkeypatch.setattr(rnafm, "build_rnafm", lambda *a, **k: pytest.fail("model was built"))
    with pytest.raises(
        ConfigError,
        match=r"unknown option 'long_polcy' for adapter 'rna-fm'\. Did you mean 'long_policy'\?",
    ):
        create("adapter", "rna-fm", size="tiny", long_polcy="error")
    with pytest.raises(ConfigError, match="Did you mean 'long_policy'"):
        create("adapter", "hf", model=None, long_polcy="error")


def test_score_refuses_curvature_and_adapter_typos():
    from biocoreset import score
    from biocoreset.testing import random_rna, tiny_esm

    model, tok = tiny_esm()
    with pytest.raises(ConfigError, match="unknown option 'max_dimm' for curvature 'kfac'"):
        score(
            model,
            random_rna(4),
            tokenizer=tok,
            curvature="kfac",
            curvature_options={"max_dimm": 3},
            progress=False,
        )
    with pytest.raises(ConfigError, match="unknown option 'unknwn' for adapter 'hf'"):
        score(
            model, random_rna(4), tokenizer=tok, adapter_options={"unknwn": "unk"}, progress=False
        )


def test_plugin_factories_of_every_shape_are_checked():
    @attrs.frozen(kw_only=True)
    class AttrsSel:
        """Attrs selector.

        Args:
            gamma: A knob.
        """

        name = "attrs-sel"
        gamma: float = 1.0
        _hidden: int = attrs.field(default=0, alias="visible")

    def plain(*, delta: int = 3):
        """Plain factory.

        Args:
            delta: Another knob.
        """
        return AttrsSel()

    def open_factory(**kwargs):
        """Takes anything."""
        return AttrsSel()

    @declare_options(AttrsSel)
    def declared(model=None, **options):
        """Declares AttrsSel's options."""
        return AttrsSel(**options)

    def register(register):
        for name, f in (("a", AttrsSel), ("b", plain), ("c", open_factory), ("d", declared)):
            register(name, f, description=name)

    pm = make_plugin_manager(entry_points=False, builtins=())
    pm.register(types.SimpleNamespace(biocoreset_register_selectors=hookimpl(register)), "third")
    reg = load_registry(pm)
    assert reg.get("selector", "a").create(visible=2)._hidden == 2
    with pytest.raises(
        ConfigError,
        match=r"option 'gama' for selector 'a' \(plugin third\)\. "
        "Did you mean 'gamma'",
    ):
        reg.get("selector", "a").create(gama=2.0)
    with pytest.raises(ConfigError, match="Did you mean 'delta'"):
        reg.get("selector", "b").factory(detla=1)
    reg.get("selector", "c").create(whatever=1)  # **kwargs: the factory checks its own options
    assert reg.get("selector", "c").options() is None
    assert [o.name for o in reg.get("selector", "d").options()] == ["model", "gamma", "visible"]
    with pytest.raises(ConfigError, match="Did you mean 'gamma'"):
        reg.get("selector", "d").create(gamme=1.0)
    assert reg.get("selector", "d").create(model=None, gamma=2.0).gamma == 2.0
    assert [(o.name, o.default, o.help) for o in reg.get("selector", "a").options()] == [
        ("gamma", "1.0", "A knob."),
        ("visible", "0", ""),
    ]


def test_the_wrapped_factory_keeps_its_identity():
    comp = get_registry().get("selector", "cci")
    from biocoreset.selectors.cci import CCISelector

    assert comp.load() is CCISelector and comp.factory.__wrapped__ is CCISelector
    assert (
        comp.factory.__qualname__ == "CCISelector" and comp.factory.__doc__ == CCISelector.__doc__
    )


def test_describe_and_format_options():
    opts = {o.name: o for o in describe_options(None, "cci")}
    assert list(opts) == ["beta", "strata", "cut", "edges", "ties", "rng"]
    assert (opts["beta"].type, opts["beta"].default) == ("float", "0.05")
    assert opts["beta"].help.startswith("Hard cutoff rate β")
    kfac = {o.name: o for o in describe_options("curvature", "kfac")}
    assert kfac["diagonal_layers"].help.endswith("(e.g. a huge output projection).")
    assert "long_policy" in {o.name for o in describe_options("adapter", "rna-fm")}
    text = format_options(None, "topk")
    assert (
        text.splitlines()[0] == "selector 'topk' (biocoreset.selectors.topk:TopKSelector) options:"
    )
    assert "largest" in text and "ties" in text
    assert format_options("scorer", "loss").endswith("takes no options.")
    epochs = {o.name: o for o in describe_options("task", "rna-type")}["epochs"]
    assert epochs.default == "30"


def test_cli_lists_options(capsys):
    from biocoreset.cli import main

    assert main(["plugins", "--options", "cci"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("selector 'cci'") and "strata  int" in out
    assert main(["plugins", "--options", "dagonal"]) == 2
    assert "Did you mean 'diagonal'?" in capsys.readouterr().err


def test_docstring_args_and_signatures():
    def f(a: int, b="x", *args, c: float = 1.0, **kw):
        """Summary.

        Args:
            a: First, e.g. one. Second sentence.
            b (str): Uses :class:`~biocoreset.errors.ConfigError` and ``code``.
            c: Continued
                over lines.
            **kw: Ignored.
        """

    assert docstring_args(f) == {
        "a": "First, e.g. one.",
        "b": "Uses ConfigError and code.",
        "c": "Continued over lines.",
        "kw": "Ignored.",
    }
    assert declared_options(f) is None
    check_options(f, ["anything"], kind="selector", name="f")  # open: nothing checked
