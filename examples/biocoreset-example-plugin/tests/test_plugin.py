import pytest
from biocoreset_example_plugin import QuantileStrataSelector

from biocoreset import select
from biocoreset.errors import ConfigError
from biocoreset.plugins import describe_options
from biocoreset.testing import check_selector


def test_conformance():
    check_selector(QuantileStrataSelector(strata=7))


def test_options_are_declared_and_checked():
    assert [o.name for o in describe_options("selector", "quantile-strata")] == ["strata"]
    with pytest.raises(ConfigError, match="Did you mean 'strata'"):
        select(list(range(100)), "quantile-strata", budget=10, strat=5)
