"""House style: no module of the library is longer than 500 lines (issue 14's acceptance)."""

from pathlib import Path

import biocoreset

LIMIT = 500


def test_no_module_is_over_500_lines():
    root = Path(biocoreset.__file__).parent
    sizes = {
        str(p.relative_to(root)): len(p.read_text(encoding="utf-8").splitlines())
        for p in root.rglob("*.py")
    }
    assert len(sizes) > 50  # the walk found the package
    too_long = {name: n for name, n in sizes.items() if n > LIMIT}
    assert not too_long, f"modules over {LIMIT} lines (split them): {too_long}"


def test_api_facade_is_thin():
    root = Path(biocoreset.__file__).parent
    assert len((root / "api.py").read_text(encoding="utf-8").splitlines()) <= 200
