"""Suites: parsing, validation before any audio, expansion with clean first."""
import pytest

from bench.suites.suite import SuiteError, builtin_names, load_suite

CONTRACT_SUITES = {"clean", "compression", "reverb", "noise", "channel", "realworld", "all"}


def test_builtin_suites_load_and_start_with_clean():
    assert CONTRACT_SUITES <= set(builtin_names())
    for name in builtin_names():
        suite = load_suite(name)
        conds = suite.expand()
        assert (conds[0].family, conds[0].severity) == ("clean", 0)
        assert len({(c.family, c.severity) for c in conds}) == len(conds)


def test_all_includes_every_perturbation_suite():
    fams = {c.family for c in load_suite("all").expand()}
    for name in ("compression", "reverb", "noise", "channel", "realworld"):
        assert {c.family for c in load_suite(name).expand()} <= fams


def test_chain_condition_builds_steps_in_order(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: t\nconditions:\n  - {name: n+q, chain: [white-noise, quantization], severities: [2]}\n")
    conds = load_suite(str(p)).expand()
    assert [c.family for c in conds] == ["clean", "n+q"]
    chain = conds[1].build()
    assert [s.family for s in chain.steps] == ["white-noise", "quantization"]
    assert all(s.severity == 2 for s in chain.steps)


@pytest.mark.parametrize("body, needle", [
    ("name: t\nconditions:\n  - {family: no-such-family, severities: [1]}\n", "no-such-family"),
    ("name: t\nconditions:\n  - {family: white-noise, severities: [9]}\n", "severity 9"),
    ("name: t\nconditions:\n  - {family: white-noise, severities: [one]}\n", "severities"),
    ("name: t\nconditions:\n  - {family: white-noise, bogus: 1}\n", "bogus"),
    ("name: t\nconditoins: []\n", "conditoins"),
    ("name: t\nconditions:\n  - {family: white-noise, params: {snr_dbb: 3}, severities: [1]}\n", "snr_dbb"),
    ("- just a list\n", "mapping"),
])
def test_bad_suites_name_the_field(tmp_path, body, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(body)
    with pytest.raises(SuiteError) as e:
        load_suite(str(p))
    assert needle in str(e.value) and "bad.yaml" in str(e.value)


def test_unknown_suite_lists_builtins():
    with pytest.raises(SuiteError, match="compression"):
        load_suite("nonexistent-suite")


def test_param_override_reaches_the_perturbation(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: t\nconditions:\n  - {family: white-noise, params: {snr_db: 3.5}, severities: [1]}\n")
    cond = load_suite(str(p)).expand()[1]
    assert cond.build().snr_db == 3.5
