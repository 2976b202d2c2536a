"""artifacts.store.ResultStore: the one resumable result store (no model; fast)."""

from __future__ import annotations

import json

import pytest

from artifacts import KindError, ResumeError, folder_lock
from artifacts.store import ResultStore


def test_chunks_resume_refuse_other_params_and_merge(tmp_path):
    d = tmp_path / "st"
    with ResultStore(d, {"doses": [0.5]}, kind="steering") as s:
        assert not s.done("b")
        s.write([{"item": "b", "value": 2.0}], "b")
        s.write([{"item": "a", "value": float("nan")}], "a/1")  # unsafe key characters are replaced
        assert s.done("b") and s.done("a/1") and s.path("a/1").name == "a_1.jsonl"
    with ResultStore(d, {"doses": [0.5]}, kind="steering") as s:  # resumed: same params
        assert [r["item"] for r in s.rows()] == ["a", "b"]  # chunks in key order
        merged = s.merge("results.jsonl")
        assert [json.loads(x)["item"] for x in merged.read_text().splitlines()] == ["a", "b"]
        assert s.cached("coh", lambda: [{"x": 1}]) == [{"x": 1}]
        assert s.cached("coh", lambda: pytest.fail("recomputed")) == [{"x": 1}]
    with pytest.raises(ResumeError, match="other parameters"):
        ResultStore(d, {"doses": [1.0]}, kind="steering")
    with ResultStore(d, {"doses": [1.0]}, overwrite=True, kind="steering") as s:  # overwrite discards them
        assert s.rows() == [] and not s.done("b")
    with pytest.raises(KindError, match="'steering' artifact"):
        ResultStore(d, {"doses": [1.0]}, overwrite=True, kind="ablation")


def test_store_holds_the_folder_lock_until_closed(tmp_path):
    import subprocess
    import sys

    from tests.test_faults import ENV

    s = ResultStore(tmp_path / "st", {"a": 1}, kind="steering")
    code = "import sys; from artifacts.store import ResultStore; ResultStore(sys.argv[1], {'a': 1}, kind='steering')"
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "st")], capture_output=True, text=True, env=ENV)
    assert res.returncode != 0 and "LockError" in res.stderr
    s.close()
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "st")], capture_output=True, text=True, env=ENV)
    assert res.returncode == 0, res.stderr
    with folder_lock(tmp_path / "st"):  # re-entrant in this process; a failing store releases what it took
        with pytest.raises(ResumeError):
            ResultStore(tmp_path / "st", {"a": 2}, kind="steering")


def test_table_rows_keys_drop_and_rewrite(tmp_path):
    def key(r):
        return (r["item"], r["scorer"])

    t = tmp_path / "ev" / "rows.jsonl"
    with ResultStore(t.parent, table=t.name, key=key) as s:
        assert s.rows() == [] and not t.exists()
        s.write([{"item": "a", "scorer": "x", "value": 1.0}, {"item": "b", "scorer": "x", "value": 2.0}])
        assert t.exists() and s.done(("a", "x")) and not s.done(("a", "y"))
    with ResultStore(t.parent, table=t.name, key=key) as s:  # resumed from the file
        assert s.done(("b", "x")) and [r["item"] for r in s.rows()] == ["a", "b"]
        assert s.drop(lambda r: r["item"] == "a") == 1 and not s.done(("a", "x"))
        s.write([{"item": "a", "scorer": "x", "value": 3.0}])
    assert [json.loads(x)["value"] for x in t.read_text().splitlines()] == [2.0, 3.0]
    mem = ResultStore(None, table="rows", key=key)  # in memory: nothing written, nothing locked
    mem.write([{"item": "a", "scorer": "x"}])
    assert mem.done(("a", "x")) and mem.merge() is None
    with pytest.raises(ValueError, match="row key"):
        ResultStore(tmp_path / "x", {"a": 1}, table="t.csv", key=key)
