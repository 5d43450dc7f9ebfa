"""A cause is read before what it explains: ordering, severity and the note, on hand-made findings."""

from gradient_doctor.diagnose.causes import by_cause
from gradient_doctor.diagnose.finding import Diagnosis, Finding


def finding(kind: str, severity: str) -> Finding:
    return Finding(kind, severity, "depth", ["0"], {"n": 1}, summary=f"{kind} measured")


def test_dead_units_come_before_the_vanishing_they_cause_and_share_its_severity():
    ordered = Diagnosis(by_cause([finding("vanishing_gradient", "critical"), finding("dead_units", "warning")]))
    assert [(f.kind, f.severity) for f in ordered.findings] == [("dead_units", "critical"),
                                                                ("vanishing_gradient", "critical")]
    explained = ordered.findings[1]
    assert explained.evidence == {"n": 1, "follows_from": "dead_units"}
    assert explained.summary == "vanishing_gradient measured (follows from dead_units)"


def test_non_finite_stays_first_and_unrelated_or_info_findings_are_untouched():
    findings = [finding("non_finite", "critical"), finding("exploding_gradient", "critical"),
                finding("large_updates", "warning"), finding("loss_plateau", "info")]
    ordered = Diagnosis(by_cause(findings)).findings
    assert [(f.kind, f.severity) for f in ordered] == [("non_finite", "critical"), ("large_updates", "critical"),
                                                       ("exploding_gradient", "critical"), ("loss_plateau", "info")]
    assert ordered[3] == findings[3]
    alone = [finding("vanishing_gradient", "critical"), finding("saturated_activation", "info")]
    assert by_cause(alone) == alone  # an info finding explains nothing


def started(kind: str, severity: str, first_step: int) -> Finding:
    return Finding(kind, severity, "run", ["0"], {"first_step": first_step}, summary=f"{kind} measured")


def test_a_cause_that_began_on_the_same_step_or_later_explains_nothing():
    # updates that turn large on the step the gradients rose (or later) are computed from that rise
    for step in (10, 20):
        ordered = by_cause([started("large_updates", "warning", step), started("exploding_gradient", "critical", 10)])
        assert [(f.kind, f.severity) for f in ordered] == [("exploding_gradient", "critical"),
                                                           ("large_updates", "warning")]
        assert ordered[1].evidence["follows_from"] == "exploding_gradient"
    # without first steps the order cannot be told: a gradient rise is not taken to explain large steps
    assert by_cause([finding("exploding_gradient", "warning"), finding("large_updates", "warning")])[0].kind == \
        "large_updates"
    # steps already too large before the gradients rose: the learning rate comes first
    earlier = Diagnosis(by_cause([started("exploding_gradient", "critical", 10),
                                  started("large_updates", "warning", 0)])).findings
    assert [(f.kind, f.severity) for f in earlier] == [("large_updates", "critical"),
                                                       ("exploding_gradient", "critical")]
    assert earlier[1].evidence["follows_from"] == "large_updates"


def test_saturation_is_read_before_a_growth_through_the_same_init():
    ordered = Diagnosis(by_cause([finding("exploding_gradient", "critical"),
                                  finding("saturated_activation", "warning")])).findings
    assert [(f.kind, f.severity) for f in ordered] == [("saturated_activation", "critical"),
                                                       ("exploding_gradient", "critical")]
    assert ordered[1].summary == "exploding_gradient measured (follows from saturated_activation)"


def test_causes_chain_and_every_finding_of_an_explained_kind_says_so():
    findings = [finding("vanishing_gradient", "critical"), finding("saturated_activation", "warning"),
                finding("input_scale", "warning"),
                Finding("vanishing_gradient", "warning", "time", ["rnn"], {"n": 2}, summary="through time")]
    ordered = Diagnosis(by_cause(findings)).findings
    assert [(f.kind, f.scope, f.severity, f.evidence.get("follows_from")) for f in ordered] == [
        ("input_scale", "depth", "critical", None),
        ("saturated_activation", "depth", "critical", "input_scale"),
        ("vanishing_gradient", "depth", "critical", "saturated_activation"),
        ("vanishing_gradient", "time", "warning", "saturated_activation")]
