"""The refusal to reuse a run folder bound to other weights says what happened: the same checkpoint path whose
content changed, or a path that names another file (never "X now has sha256" for a file that was never there)."""
from __future__ import annotations

import json

import pytest


def _ident(path: str, sha: str) -> dict:
    return {"suite": "clean", "seed": 0,
            "models": [{"model": "aasist", "checkpoint": path, "checkpoint_sha256": sha}]}


@pytest.mark.parametrize("new_path,expect,absent", [
    ("/w/a.pth", r"/w/a.pth \(sha256 aaaaaaaaaaaaaaaa\.\.\.\), but that file's content changed \(sha256 now bbbb",
     "another file"),
    ("/w/b.pth", r"but this command names checkpoint /w/b.pth, another file \(sha256 bbbb", "content changed"),
])
def test_refusal_says_whether_the_file_changed_or_the_path_names_another(tmp_path, new_path, expect, absent):
    from bench.run.identity import check_identity
    from bench.run.store import Store

    with Store(tmp_path / "store.sqlite") as st:
        st.set_meta("identity", json.dumps(_ident("/w/a.pth", "a" * 64)))
        with pytest.raises(ValueError, match=expect) as e:
            check_identity(st, tmp_path, _ident(new_path, "b" * 64))
    assert absent not in str(e.value) and "now has sha256" not in str(e.value)
