"""No test compares floats bit for bit without saying why (docs/reliability.md, "Floats across
CPUs").

Floats computed in another process, read from a saved file, after a resume or with other batch
shapes agree to their dtype's rounding, not bit for bit, once the CPU's kernels differ: such tests
use ``tests/floats.py``. Every exact comparison left (``np.array_equal``, ``assert_array_equal``,
``torch.equal``) carries ``# exact: <why>`` on its line or the line above (or above a block of
them): integers, a tensor saved and read back, a state that must be unchanged, the same array,
seeded draws in one process.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
EXACT = re.compile(r"\b(np\.array_equal|assert_array_equal|torch\.equal)\(")


def test_every_exact_comparison_says_why():
    missing = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == "floats.py" or path == Path(__file__).resolve():
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            j = i  # the comment may head a block of consecutive exact comparisons
            while j > 0 and "# exact:" not in lines[j] and EXACT.search(lines[j - 1]):
                j -= 1
            said = "# exact:" in lines[j] or (j > 0 and "# exact:" in lines[j - 1])
            if EXACT.search(line) and not said:
                missing.append(f"{path.relative_to(TESTS.parent)}:{i + 1}")
    assert not missing, (
        "exact comparisons without '# exact: <why>' (floats recomputed elsewhere: use "
        "tests/floats.py::assert_equal_to_rounding): " + ", ".join(missing)
    )
