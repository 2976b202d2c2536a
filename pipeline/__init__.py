"""The pipeline: one run directory per config, one folder per stage.

``pipeline.config`` loads and validates the TOML (defaults, clear errors naming the field and the fix);
``pipeline.stages`` wires each stage (tune -> contamination, identity, probes, evals -> ablation -> steering
-> profile / patching / prevention -> report) to its library entry point; ``pipeline.runner`` runs them,
skipping finished stages whose inputs are unchanged; ``pipeline.report`` builds the report.
"""
