from biocoreset.testing import check_selector
from biocoreset_example_plugin import QuantileStrataSelector


def test_conformance():
    check_selector(QuantileStrataSelector(strata=7))
