"""The run directory's layout: every path of ``runs/<name>/`` comes from one ``RunLayout``.

::

    config.toml                      the resolved configuration (RunLayout.config)
    tune/<tune>[/seed<k>]/           a LoRA tune: condition, or series tune <condition>+u<pct> (RunLayout.tune)
    tune/instructions-s<seed>.jsonl  the distilled instruction mix (RunLayout.distill_cache)
    contamination/ identity/ activations/<model>/<dataset>/ probes/ evals/ ablation/ steering/ [judged/]
    profile/ patching/ prevention/ report/   one folder per stage (a stage's name = its folder)
    judge/                           the judge's caches, outside every stage folder
    <stage>/stage.json, <stage>/manifest.json   the runner's record and the stage's manifest

A stage folder is a ``Folder``: ``.name`` (the stage name, relative to the run), ``.path``, ``.manifest``,
``.record``, and one attribute per file the pipeline or the report reads. Nothing here creates a file. The file
names are the constants of the stage module that writes each file (``steering.reports.VERDICT_CSV``, ...); only
the files the pipeline itself writes (``contamination.json``, ``tables.json``, the judge's caches) are named here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from analysis import profile
from analysis.report import REPORT_HTML, REPORT_MD
from artifacts.figures import FIGURES_DIR
from artifacts.manifest import MANIFEST
from evals import run as evals_run
from evals.results import RESULTS_CSV
from pipeline.runner import RECORD
from probes import run as probes_run
from steering import patching, prevention, reports
from tuning import identity_check


class _File:
    """A file of a folder: ``Folder.<attr>`` is its path; on the class, ``.filename`` is its bare name."""

    def __init__(self, filename: str):
        self.filename = filename

    def __get__(self, obj: Folder | None, owner: type | None = None) -> Any:
        return self if obj is None else obj.path / self.filename


class Folder(os.PathLike):
    """A folder of the run directory; ``name`` is its path relative to the run (for a stage: the stage name)."""

    manifest = _File(MANIFEST)
    record = _File(RECORD)

    def __init__(self, root: str | os.PathLike, name: str):
        self.root, self.name = Path(root), name

    @classmethod
    def at(cls, path: str | os.PathLike) -> Folder:
        """The folder at ``path`` (anywhere, e.g. a stage library's ``out_dir``), named by its last part."""
        path = Path(path)
        return cls(path.parent, path.name)

    @property
    def path(self) -> Path:
        return self.root / self.name

    def files(self) -> dict[str, Path]:
        """{attribute: path} of every file the folder names (its manifest and stage record included)."""
        return {k: getattr(self, k) for c in type(self).__mro__ for k, v in vars(c).items() if isinstance(v, _File)}

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class ContaminationDir(Folder):
    report = _File("contamination.json")  # written by the pipeline (pipeline.stages)


class IdentityDir(Folder):
    result = _File(identity_check.RESULT_JSON)
    scores = _File(identity_check.SCORES_CSV)  # one row per model x question
    plot = _File(identity_check.PLOT_PNG)


class ActivationsDir(Folder):
    def cache(self, model_slug: str, dataset: str) -> Path:
        """One activation cache: ``activations/<model slug>/<dataset>/`` (written by ``probes.run``)."""
        return self.path / model_slug / dataset


class ProbesDir(Folder):
    directions = _File(probes_run.DIRECTIONS_FILE)
    curves = _File(probes_run.CURVES_PNG)
    cosine_heatmap = _File(probes_run.COSINE_PNG)
    reading = _File(probes_run.READING_PNG)


class EvalsDir(Folder):
    results = _File(RESULTS_CSV)
    item_audit = _File(evals_run.ITEM_AUDIT_JSON)
    agreement = _File(evals_run.AGREEMENT_CSV)

    def preference_plots(self) -> list[Path]:
        """``preferences_<scorer>.png``, one per scorer, sorted."""
        return sorted(self.path.glob(evals_run.preferences_png("*")))


class AblationDir(Folder):
    results = _File(reports.RESULTS_JSONL)
    necessity = _File(reports.NECESSITY_CSV)


class SteeringDir(Folder):
    results = _File(reports.RESULTS_JSONL)
    verdict = _File(reports.VERDICT_CSV)
    effects = _File(reports.EFFECTS_CSV)
    coherence = _File(reports.COHERENCE_CSV)
    calibration = _File(reports.CALIBRATION_CSV)
    rule = _File(reports.report_md("steering"))  # holds the decision rule the report quotes

    @property
    def judged(self) -> SteeringDir:
        """The judged scorer's steering run, ``steering/judged/`` (same files)."""
        return SteeringDir(self.root, f"{self.name}/judged")

    def plots(self) -> list[Path]:
        """Every figure under the folder (dose-response), sorted."""
        return sorted(self.path.rglob("*.png"))


class ProfileDir(Folder):
    table = _File(profile.PROFILE_CSV)
    plot = _File(profile.PROFILE_PNG)


class PatchingDir(Folder):
    table = _File(patching.PATCHING_CSV)
    plot = _File(patching.PATCHING_PNG)


class PreventionDir(Folder):
    table = _File(prevention.PREVENTION_CSV)
    blocking = _File(prevention.BLOCKING_CSV)
    plot = _File(prevention.SERIES_PNG)


class ReportDir(Folder):
    tables = _File("tables.json")  # written by pipeline.report
    markdown = _File(REPORT_MD)
    html = _File(REPORT_HTML)
    figures = _File(FIGURES_DIR)


class JudgeDir(Folder):
    cache = _File("cache.jsonl")  # the judge's and the generation server's caches (pipeline.judging)
    generations = _File("generations.jsonl")


class RunLayout:
    """Every path of one run directory. ``RunLayout.of(cfg)`` is ``[run] root / [run] name``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.contamination = ContaminationDir(self.root, "contamination")
        self.identity = IdentityDir(self.root, "identity")
        self.activations = ActivationsDir(self.root, "activations")
        self.probes = ProbesDir(self.root, "probes")
        self.evals = EvalsDir(self.root, "evals")
        self.ablation = AblationDir(self.root, "ablation")
        self.steering = SteeringDir(self.root, "steering")
        self.profile = ProfileDir(self.root, "profile")
        self.patching = PatchingDir(self.root, "patching")
        self.prevention = PreventionDir(self.root, "prevention")
        self.report = ReportDir(self.root, "report")
        self.judge = JudgeDir(self.root, "judge")
        self.tunes = Folder(self.root, "tune")  # every tune's folder is under it

    def folders(self) -> list[Folder]:
        """The stage folders in stage order (not the tunes), then ``judge/``."""
        return [self.contamination, self.identity, self.activations, self.probes, self.evals, self.ablation,
                self.steering, self.profile, self.patching, self.prevention, self.report, self.judge]

    @classmethod
    def of(cls, cfg: dict[str, Any]) -> RunLayout:
        return cls(Path(cfg["run"]["root"]) / cfg["run"]["name"])

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    def tune(self, name: str, seed: int | None = None) -> Folder:
        """A tune's folder: ``tune/<name>``, or ``tune/<name>/seed<k>`` in a run of several seeds (seed given)."""
        return Folder(self.root, f"{self.tunes.name}/{name}" + (f"/seed{seed}" if seed is not None else ""))

    def distill_cache(self, seed: int) -> Path:
        """The distilled instruction mix of ``[run] seed`` beside the (single-seed) tunes."""
        from tuning.recipe import distill_cache_name

        return self.tunes / distill_cache_name(seed)

    def stage_name(self, path: str | os.PathLike) -> str:
        """The stage that owns ``path`` (a folder under the run), e.g. ``tune/conscious/seed1``."""
        return Path(path).relative_to(self.root).as_posix()

    def records(self) -> list[Path]:
        """Every stage's ``stage.json`` under the run, sorted."""
        return sorted(self.root.rglob(RECORD))
