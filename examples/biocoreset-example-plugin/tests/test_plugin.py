import pytest
from biocoreset_example_plugin import QuantileStrataSelector

from biocoreset import select
from biocoreset.errors import ConfigError
from biocoreset.plugins import describe_options
from biocoreset.testing import check_selector, parametrize_with_checks


@parametrize_with_checks([QuantileStrataSelector(strata=7)])
def test_conformance(check):
    check()  # one pytest id per check: QuantileStrataSelector-budget_indices, ...


def test_conformance_in_one_call():
    check_selector(QuantileStrataSelector(strata=7))


def test_options_are_declared_and_checked():
    assert [o.name for o in describe_options("selector", "quantile-strata")] == ["strata"]
    with pytest.raises(ConfigError, match="Did you mean 'strata'"):
        select(list(range(100)), "quantile-strata", budget=10, strat=5)
