"""Emergent-preference evaluation: 21 dimensions (Chua et al. 2026), items, scorers, results, and the
contamination check of training data against the evaluated topics. Log-probabilities of continuations
live in ``models.logprobs``.

Sign convention everywhere: higher = more of the preference.
"""

from evals.dimensions import DIMENSIONS, STAGES, Dimension, load_stage_map
from evals.evaluate import evaluate
from evals.items import Item, load_items
from evals.judge import EndpointJudge, JudgeBudgetError, JudgeError, LocalJudge
from evals.plots import plot_dimensions
from evals.results import compare, read_results, summarize, summarize_stages, write_results
from evals.scorers import SCORERS, SIGN, choice, continuation, judged

__all__ = [
    "DIMENSIONS", "SCORERS", "SIGN", "STAGES", "Dimension", "EndpointJudge", "Item", "JudgeBudgetError",
    "JudgeError", "LocalJudge", "choice", "compare", "continuation", "evaluate", "judged", "load_items",
    "load_stage_map", "plot_dimensions", "read_results", "summarize",
    "summarize_stages", "write_results",
]
