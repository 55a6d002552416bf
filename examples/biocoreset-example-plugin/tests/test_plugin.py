from biocoreset_example_plugin import QuantileStrataSelector

from biocoreset.testing import check_selector


def test_conformance():
    check_selector(QuantileStrataSelector(strata=7))
