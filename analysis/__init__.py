"""Analysis, the last stage: the cascade (per-stage shifts), the essay's seven predictions, pooling over
tuning seeds, the causal analyses' profile test, plots and the report. The statistics it uses live in the
foundation package ``stats``."""
