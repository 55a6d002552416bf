"""Built-ins are registered lazily ("module:attr"), so importing biocoreset, selecting and listing
plugins import no model code (issue 16: fast start)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from biocoreset.plugins import get_registry
from biocoreset.plugins.builtins import BUILTINS
from biocoreset.plugins.manager import BUILTIN_PLUGINS

THIRD_PARTY_MODEL_CODE = ("transformers", "esm", "fm")
MODEL_CODE = (*THIRD_PARTY_MODEL_CODE, "biocoreset.adapters.hf", "biocoreset.adapters.rnafm")


def _modules_after(code: str) -> set[str]:
    """Run ``code`` in a fresh interpreter; return the top-level and biocoreset modules it imported."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json, sys
        print(json.dumps(sorted(m for m in sys.modules if "." not in m or m.startswith("biocoreset"))))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_import_biocoreset_imports_neither_torch_nor_transformers():
    mods = _modules_after("import biocoreset; biocoreset.__version__")
    assert "transformers" not in mods and "torch" not in mods


def test_select_imports_no_torch_and_no_model_code(tmp_path):
    path = tmp_path / "scores.npy"
    np.save(path, np.random.default_rng(0).normal(size=1400))
    mods = _modules_after(
        f"""
        import numpy as np
        from biocoreset import select
        sel = select(np.load({str(path)!r}), "cci", budget=140)
        assert sel.indices.size == 140
        """
    )
    assert not {"torch", *MODEL_CODE} & mods, sorted({"torch", *MODEL_CODE} & mods)
    assert "biocoreset.selectors.cci" in mods  # the selector used is imported on first use ...
    assert "biocoreset.selectors.random" not in mods  # ... the others are not
    assert "biocoreset.curvature.kfac" not in mods and "biocoreset.bench.tasks" not in mods


def test_cli_plugins_and_select_import_no_model_code(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    scores = tmp_path / "scores.parquet"
    ids = [f"s{i}" for i in range(200)]
    pq.write_table(pa.table({"id": ids, "score": np.linspace(0, 1, 200)}), scores)
    for argv, banned in (
        (["plugins"], (*MODEL_CODE, "torch")),
        (["plugins", "--options", "hf"], THIRD_PARTY_MODEL_CODE),  # reads the hf adapter's options
        (
            ["select", str(scores), "--method", "cci", "--budget", "20", "-o", str(tmp_path / "c")],
            (*MODEL_CODE, "torch"),
        ),
    ):
        mods = _modules_after(
            f"""
            import contextlib, io
            from biocoreset.cli import main
            with contextlib.redirect_stdout(io.StringIO()):
                assert main({argv!r}) == 0
            """
        )
        assert not set(banned) & mods, (argv, sorted(set(banned) & mods))


def test_loading_the_registry_imports_no_component_module():
    mods = _modules_after(
        "from biocoreset.plugins import get_registry; get_registry().components()"
    )
    components = {
        t.partition(":")[0] for e in BUILTINS.values() for v in e.values() for _, t, _ in v
    }
    assert not components & mods, sorted(components & mods)


@pytest.mark.parametrize("plugin", BUILTIN_PLUGINS)
def test_every_lazy_builtin_resolves_to_what_it_says(plugin):
    reg = get_registry()
    for kind, entries in BUILTINS[plugin].items():
        for name, target, description in entries:
            comps = reg.family_components() if kind == "family" else reg.components(kind)
            comp = next(c for c in comps if c.name == name)
            assert (comp.plugin, comp.source, comp.target) == (plugin, "built-in", target)
            assert comp.description == description
            assert comp.lazy or comp.kind == "family"  # families may have been loaded already
            obj = comp.registered()  # an adapter's class, every other kind's factory
            assert not comp.lazy and obj.__module__ == plugin
            assert obj.name == name  # components and families carry their registered name
            if kind == "task":  # the description is the class's summary line
                assert description == inspect.getdoc(obj).splitlines()[0]
