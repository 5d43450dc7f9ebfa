"""Scoring of the detection benchmark: which reported kinds detect which label, and precision, recall, false alarms
and latency computed from per-scenario verdict records (pure functions: no training here).

    >>> record = {"name": "s", "label": "vanishing", "steps": 200, "failed": [],
    ...           "verdicts": {"ours": {"vanishing_gradient": 10, "saturated_activation": 10}}}
    >>> score([record], {"ours": OURS})["ours"]["recall"], score([record], {"ours": OURS})["ours"]["latency"]["mean"]
    (1.0, 0.05)

A record is a dict with `name`, `label` (one of the zoo's LABELS), `steps` (the run's length), `verdicts`
({detector: {kind: first step reported}}, the checkup's findings at step 0) and `failed` (detectors whose stage
raised on that scenario). Decisions, written down here once:

* **Correct detection.** A broken scenario is detected by a detector when it reported at least one kind that the
  detector's table maps its label to (below). Other kinds reported beside it do not undo the detection.
* **Extra kinds count against precision.** Per-kind precision = of the scenarios where kind K was reported, the
  share whose label maps to K. A `saturated_activation` on a scenario labelled `vanishing` is therefore an
  imprecise `saturated_activation`, even where both are true of the network: the label names the one problem the
  scenario was built and checked for, and anything else cannot be verified. Kinds no label maps to
  (`loss_oscillation`, `weights_collapsing`) are imprecise wherever they are reported.
* **False alarm.** A healthy scenario with any reported kind (ours: any warning/critical finding; info never
  counts). Rate = such scenarios / healthy scenarios.
* **Failures count against the detector.** A detector in a record's `failed` is scored as having reported
  everything wrongly: a miss on a broken scenario, a false alarm on a healthy one.
* **Latency** of a detected scenario = first step of a correct kind / steps (0 when the checkup found it);
  averaged over the detected broken scenarios only.
* **Covered recall**: recall over the broken scenarios whose label the detector's table covers at all (the peers
  have no saturation, plateau or bad-input-scale kinds).
* **The first finding** (ours only, `first_finding`): the first warning or critical finding a user reads — the
  checkup's first (most severe first), else the first one a live check reported, else the final diagnosis's first —
  names the label when its kind is one the label maps to in OURS (or, for bad_data_scale, it ranks normalize_inputs).
  The findings read at that same moment (the same stage) that say they follow from it (directly or through a chain of
  causes read then too) are counted as well.
  Needs the record's `findings` (stage, kind, severity, remedies, follows_from), in the order they were reported.
"""

from __future__ import annotations

import statistics
from typing import Any, Mapping

HEALTHY = "healthy"
#: Our pseudo-kind for "a warning/critical finding ranks normalize_inputs among its remedies".
NORMALIZE_INPUTS = "remedy:normalize_inputs"

#: Label -> our finding kinds that count as detecting it.
OURS: dict[str, frozenset[str]] = {
    "vanishing": frozenset({"vanishing_gradient"}),
    # a run whose gradients explode ends in inf/NaN or in a rising loss: each is that explosion seen
    "exploding": frozenset({"exploding_gradient", "non_finite", "loss_divergence"}),
    "saturation": frozenset({"saturated_activation"}),
    "dead_units": frozenset({"dead_units"}),
    "non_finite": frozenset({"non_finite"}),
    "plateau": frozenset({"loss_plateau"}),
    # checkup's input_scale, or any finding that ranks normalize_inputs (the run rules' saturation from the start)
    "bad_data_scale": frozenset({"input_scale", NORMALIZE_INPUTS}),
}
#: Label -> the peers' kinds (detection_peers) that count as detecting it; the same reading as ours.
PEERS: dict[str, frozenset[str]] = {
    "vanishing": frozenset({"vanishing"}),
    "exploding": frozenset({"exploding", "non_finite"}),
    "dead_units": frozenset({"dying_relu"}),
    "non_finite": frozenset({"non_finite"}),
}
#: Detector -> its table: ours at init, ours during training, ours both, and the two peers.
DETECTORS: dict[str, dict[str, frozenset[str]]] = {
    "checkup": OURS, "watch": OURS, "ours": OURS, "autotrainer": PEERS, "threshold": PEERS,
}


def judge(record: Mapping[str, Any], detector: str, table: Mapping[str, frozenset[str]]) -> dict[str, Any]:
    """One detector on one scenario: its kinds, whether it alarmed, detected the label, and at what latency.

    >>> judge(record, "ours", OURS)
    {'kinds': ['saturated_activation', 'vanishing_gradient'], 'alarm': True, 'detected': True, 'latency': 0.05}
    """
    failed = detector in record.get("failed", ())
    found = {} if failed else dict(record["verdicts"].get(detector, {}))
    correct = [step for kind, step in found.items() if kind in table.get(record["label"], ())]
    detected = record["label"] != HEALTHY and bool(correct)
    return {"kinds": sorted(found), "alarm": failed or bool(found), "detected": detected,
            "latency": min(correct) / record["steps"] if detected else None}


def first_finding(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first warning/critical finding of a broken record and whether it names the label; None without findings.

    >>> first_finding({"label": "dead_units", "findings": [
    ...     {"stage": "checkup", "kind": "dead_units", "severity": "critical", "remedies": ["he_init"]},
    ...     {"stage": "checkup", "kind": "vanishing_gradient", "severity": "critical", "follows_from": "dead_units"}]})
    {'stage': 'checkup', 'kind': 'dead_units', 'names_label': True, 'same_stage': 1, 'follows_first': 1}
    """
    found = record.get("findings") or []
    if not found:
        return None
    first = found[0]
    names = first["kind"] in OURS.get(record["label"], ()) or \
        (NORMALIZE_INPUTS in OURS.get(record["label"], ()) and "normalize_inputs" in first.get("remedies", ()))
    after = [f for f in found[1:] if f["stage"] == first["stage"]]
    cause_of = {f["kind"]: f.get("follows_from") for f in after}

    def follows_first(kind: str | None) -> bool:  # directly or through a chain of causes read at the same stage
        seen = set()
        while kind is not None and kind not in seen:
            if kind == first["kind"]:
                return True
            seen.add(kind)
            kind = cause_of.get(kind)
        return False

    return {"stage": first["stage"], "kind": first["kind"], "names_label": names, "same_stage": len(after),
            "follows_first": sum(follows_first(f.get("follows_from")) for f in after)}


def first_findings(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Over the broken records: how many have a first finding, how many of those name the label, and the share of
    all broken records that do.

    >>> first_findings(records)["share"]
    0.9
    """
    firsts = [first_finding(r) for r in records if r["label"] != HEALTHY]
    named = sum(bool(f and f["names_label"]) for f in firsts)
    return {"broken": len(firsts), "with_finding": sum(f is not None for f in firsts), "named": named,
            "share": _ratio(named, len(firsts)),
            "same_stage": sum(f["same_stage"] for f in firsts if f), "follows_first": sum(f["follows_first"]
                                                                                        for f in firsts if f),
            "misses": [r["name"] for r, f in zip((r for r in records if r["label"] != HEALTHY), firsts)
                       if not (f and f["names_label"])]}


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def score(records: list[Mapping[str, Any]],
          detectors: Mapping[str, Mapping[str, frozenset[str]]] = DETECTORS) -> dict[str, dict[str, Any]]:
    """Per detector: recall (overall, covered, per label), per-kind precision, false alarms and latency.

    >>> score(records)["ours"]["false_alarm_rate"]
    0.0
    """
    return {name: _score_one(records, name, table) for name, table in detectors.items()}


def _score_one(records: list[Mapping[str, Any]], name: str, table: Mapping[str, frozenset[str]]) -> dict[str, Any]:
    judged = [(r, judge(r, name, table)) for r in records]
    broken = [(r, j) for r, j in judged if r["label"] != HEALTHY]
    healthy = [j for r, j in judged if r["label"] == HEALTHY]
    covered = [(r, j) for r, j in broken if table.get(r["label"])]
    per_label: dict[str, dict[str, Any]] = {}
    for r, j in broken:
        entry = per_label.setdefault(r["label"], {"n": 0, "detected": 0})
        entry["n"] += 1
        entry["detected"] += j["detected"]
    per_kind: dict[str, dict[str, Any]] = {}
    for r, j in judged:
        for kind in j["kinds"]:
            entry = per_kind.setdefault(kind, {"reported": 0, "correct": 0})
            entry["reported"] += 1
            entry["correct"] += kind in table.get(r["label"], ())
    latencies = [j["latency"] for _, j in broken if j["detected"]]
    detected = sum(j["detected"] for _, j in broken)
    alarms = sum(j["alarm"] for j in healthy)
    return {
        "broken": len(broken), "detected": detected, "recall": _ratio(detected, len(broken)),
        "covered": {"n": len(covered), "detected": sum(j["detected"] for _, j in covered),
                    "recall": _ratio(sum(j["detected"] for _, j in covered), len(covered))},
        "healthy": len(healthy), "false_alarms": alarms, "false_alarm_rate": _ratio(alarms, len(healthy)),
        "per_label": {label: {**e, "recall": _ratio(e["detected"], e["n"])} for label, e in sorted(per_label.items())},
        "per_kind": {kind: {**e, "precision": _ratio(e["correct"], e["reported"])}
                     for kind, e in sorted(per_kind.items())},
        "latency": {"n": len(latencies), "mean": statistics.fmean(latencies) if latencies else None,
                    "median": statistics.median(latencies) if latencies else None},
    }
