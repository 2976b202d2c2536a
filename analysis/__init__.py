"""Analysis: statistics (CIs, permutation tests, BH correction), cascade stages, plots and the report."""

from analysis.stats import (
    Estimate,
    bh_adjust,
    bootstrap_ci,
    bootstrap_diff_ci,
    paired_bootstrap_diff,
    paired_permutation_test,
    permutation_test_vs_null,
    slope_ci,
    wilson_ci,
)

__all__ = [
    "Estimate",
    "bh_adjust",
    "bootstrap_ci",
    "bootstrap_diff_ci",
    "paired_bootstrap_diff",
    "paired_permutation_test",
    "permutation_test_vs_null",
    "slope_ci",
    "wilson_ci",
]
