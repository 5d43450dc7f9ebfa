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
