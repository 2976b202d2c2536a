import json

import pytest

from pipeline.runner import Pipeline, Stage, StageFailed


def _stages(calls, params_b=1, fail_c=False):
    def make(name, fail=False):
        def run(folder):
            calls.append(name)
            if fail:
                (folder / "partial.txt").write_text("half")
                raise RuntimeError("boom")
            (folder / "out.txt").write_text(name)
            return {"ok": name}
        return run

    return [Stage("a", make("a"), {"x": 1}),
            Stage("b", make("b"), {"x": params_b}, after=["a"]),
            Stage("c", make("c", fail_c), {"x": 3}, after=["b"]),
            Stage("d", make("d"), {"x": 4}, after=["a"])]


def test_second_run_skips_everything(tmp_path):
    calls = []
    Pipeline(tmp_path, _stages(calls), log=lambda m: None).run()
    assert calls == ["a", "b", "c", "d"]
    calls.clear()
    res = Pipeline(tmp_path, _stages(calls), log=lambda m: None).run()
    assert calls == [] and {r.status for r in res} == {"skipped"}
    assert res[0].summary == {"ok": "a"}


def test_changed_input_reruns_exactly_downstream(tmp_path):
    calls = []
    Pipeline(tmp_path, _stages(calls), log=lambda m: None).run()
    calls.clear()
    Pipeline(tmp_path, _stages(calls, params_b=2), log=lambda m: None).run()
    assert calls == ["b", "c"]  # d depends only on a


def test_failed_stage_leaves_earlier_outputs_intact(tmp_path):
    calls = []
    Pipeline(tmp_path, _stages(calls), log=lambda m: None).run()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.parts[-2] in ("a", "b")}
    calls.clear()
    with pytest.raises(StageFailed, match="stage 'c' failed: RuntimeError: boom"):
        Pipeline(tmp_path, _stages(calls, params_b=1, fail_c=True) [:2] + [
            Stage("c", _stages(calls, fail_c=True)[2].run, {"x": 30}, after=["b"])], log=lambda m: None).run()
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.parts[-2] in ("a", "b")}
    assert before == after
    assert not (tmp_path / "c" / "stage.json").exists()
    assert "boom" in (tmp_path / "c" / "error.txt").read_text()
    calls.clear()
    Pipeline(tmp_path, _stages(calls), log=lambda m: None).run()
    assert calls == ["c"]  # resumes at the failed stage
    rec = json.loads((tmp_path / "c" / "stage.json").read_text())
    assert rec["summary"] == {"ok": "c"} and "versions" in rec


def test_dependency_order_is_checked(tmp_path):
    with pytest.raises(ValueError, match="depends on"):
        Pipeline(tmp_path, [Stage("b", lambda f: None, after=["a"]), Stage("a", lambda f: None)])
