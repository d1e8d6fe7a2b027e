"""Suites (issues 13 and 15): a family's own ladder, `name:` on any condition, clashes refused naming both,
`params:` that would make severities identical refused, chains refuse `params:`, code specs need trust,
`version`/`metrics` validated, attack parameters bounded."""
import pytest

from bench.suites.suite import SuiteError, load_suite


def suite(tmp_path, body: str, name: str = "s.yaml"):
    p = tmp_path / name
    p.write_text("name: t\n" + body)
    return str(p)


def test_own_ladder_gives_severities_1_to_n_with_exactly_those_params(tmp_path):
    s = load_suite(suite(tmp_path, "conditions:\n  - {family: mp3, levels: [{bitrate: 32000}, {bitrate: 16000}, "
                                   "{bitrate: 8000}]}\n"))
    conds = s.expand()
    assert [(c.family, c.severity) for c in conds] == [("clean", 0), ("mp3", 1), ("mp3", 2), ("mp3", 3)]
    assert [c.build().bitrate for c in conds[1:]] == [32000, 16000, 8000]
    assert s.to_dict()["conditions"][0]["levels"] == [{"bitrate": 32000}, {"bitrate": 16000}, {"bitrate": 8000}]


@pytest.mark.parametrize("body, needle", [
    ("  - {family: mp3, levels: [{bitrate: 32000}, {bitrat: 1}]}\n", "bitrat"),                 # unknown field
    ("  - {family: white-noise, levels: [{snr_db: 10.0}, {snr_db: 1000.0}]}\n", "within -20..80 dB"),
    ("  - {family: mp3, levels: [{bitrate: 32000}], severities: [2]}\n", "outside its own ladder 1..1"),
    ("  - {family: mp3, levels: []}\n", "non-empty list"),
    ("  - {family: mp3, levels: [{bitrate: 32000}, {bitrate: 32000}]}\n", "levels 1 and 2 are identical"),
])
def test_own_ladder_is_validated_like_the_builtin_table(tmp_path, body, needle):
    with pytest.raises(SuiteError, match=needle):
        load_suite(suite(tmp_path, "conditions:\n" + body))


def test_name_labels_any_condition_so_a_family_can_appear_twice(tmp_path):
    s = load_suite(suite(tmp_path, "conditions:\n  - {family: mp3, severities: [3]}\n"
                                   "  - {family: mp3, name: mp3-low, levels: [{bitrate: 8000}]}\n"
                                   "  - {attack: fgsm, name: fgsm-weak, severities: [1]}\n"))
    conds = {(c.family, c.severity): c for c in s.expand()}
    assert conds[("mp3-low", 1)].build().bitrate == 8000
    assert conds[("mp3-low", 1)].spec["family"] == "mp3"
    assert conds[("mp3", 3)].build().bitrate != 8000
    assert conds[("fgsm-weak", 1)].spec["attack"] == "fgsm"


def test_two_conditions_with_one_label_and_severity_are_refused_naming_both(tmp_path):
    body = ("conditions:\n  - {family: mp3, severities: [2]}\n"
            "  - {family: mp3, severities: [2], params: {bitrate: 8000}}\n")
    with pytest.raises(SuiteError) as e:
        load_suite(suite(tmp_path, body))
    assert "mp3@2" in str(e.value) and "conditions[0]" in str(e.value) and "conditions[1]" in str(e.value)
    assert "name:" in str(e.value)


def test_include_plus_a_different_override_is_refused(tmp_path):
    with pytest.raises(SuiteError, match=r"mp3@3.*compression.yaml.*conditions\[0\].*s.yaml: conditions\[0\]"):
        load_suite(suite(tmp_path, "include: [compression]\nconditions:\n"
                                   "  - {family: mp3, severities: [3], params: {bitrate: 8000}}\n"))


def test_identical_duplicates_from_includes_are_kept_once(tmp_path):
    s = load_suite(suite(tmp_path, "include: [compression]\nconditions:\n  - {family: mp3, severities: [3]}\n"))
    keys = [(c.family, c.severity) for c in s.expand()]
    assert keys.count(("mp3", 3)) == 1


def test_params_that_make_severities_identical_are_refused(tmp_path):
    with pytest.raises(SuiteError, match="severities 1 and 2 .* identical"):
        load_suite(suite(tmp_path, "conditions:\n  - {family: mp3, severities: [1, 2], params: {bitrate: 32000}}\n"))
    # a params override that leaves the levels different is fine
    s = load_suite(suite(tmp_path, "conditions:\n  - {family: mp3, severities: [1, 2], params: {passes: 2}}\n"))
    assert [c.build().passes for c in s.expand()[1:]] == [2, 2]


def test_params_on_a_chain_are_refused(tmp_path):
    with pytest.raises(SuiteError, match="'params' is not supported on a chain"):
        load_suite(suite(tmp_path, "conditions:\n  - {chain: [white-noise, mp3], severities: [1], "
                                   "params: {snr_db: 5}}\n"))


def test_module_spec_in_a_suite_needs_trust(tmp_path):
    path = suite(tmp_path, "conditions:\n  - {attack: fgsm, source: 'userplugin.tiny_detector:TinyDetector', "
                           "severities: [1]}\n")
    with pytest.raises(SuiteError, match="--trust-code"):
        load_suite(path)
    s = load_suite(path, trust_code=True)
    assert s.expand()[1].spec["source"] == "userplugin.tiny_detector:TinyDetector"


def test_module_spec_in_an_included_suite_needs_trust_too(tmp_path):
    suite(tmp_path, "conditions:\n  - {attack: fgsm, source: 'x.y:Z', severities: [1]}\n", "inner.yaml")
    outer = suite(tmp_path, f"include: [{tmp_path / 'inner.yaml'}]\n", "outer.yaml")
    with pytest.raises(SuiteError, match="inner.yaml.*Python class"):
        load_suite(outer)


@pytest.mark.parametrize("body, needle", [
    ("version: abc\nconditions: []\n", "'version' must be a positive integer"),
    ("metrics: [eer, accuracyy]\nconditions: []\n", "metrics: unknown 'accuracyy'"),
    ("conditions:\n  - {attack: pgd-linf, params: {eps: 1000000.0}, severities: [1]}\n", "eps must be an amplitude"),
    ("conditions:\n  - {attack: pgd-linf, params: {snr_db: -500}, severities: [1]}\n", "snr_db must be a number of dB"),
    ("conditions:\n  - {attack: pgd-linf, params: {steps: 1000000000}, severities: [1]}\n", "steps must be at most"),
    ("conditions:\n  - {attack: pgd-linf, params: {restarts: 100000}, severities: [1]}\n", "restarts must be at most"),
    ("conditions:\n  - {family: mp3, chain: [mp3], severities: [1]}\n", "not family and chain"),
])
def test_bad_values_are_refused_naming_the_field(tmp_path, body, needle):
    with pytest.raises(SuiteError) as e:
        load_suite(suite(tmp_path, body, "bad.yaml"))
    assert needle in str(e.value) and "bad.yaml" in str(e.value)
