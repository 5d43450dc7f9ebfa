"""What a diagnosis says: findings (kind, severity, scope, layers, evidence, ranked remedies with a rationale
line each) and the Diagnosis.

    >>> diag = gd.checkup(model, x)
    >>> diag.healthy, [f.kind for f in diag.findings]
    (False, ['vanishing_gradient'])
    >>> json.dumps(diag.to_dict())
    >>> print(diag)  # a layer table with the gradient budget, then the findings
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .._json import json_safe
from ..errors import InvalidValue

if TYPE_CHECKING:
    from ..probe.batch.measurement import Measurement

KINDS = (
    "vanishing_gradient", "exploding_gradient", "saturated_activation", "dead_units",
    "non_finite", "weights_collapsing", "loss_plateau", "loss_divergence", "loss_oscillation", "input_scale",
    "large_updates",
)
SEVERITIES = ("info", "warning", "critical")
SCOPES = ("depth", "time", "run")
#: `str(finding)` is at most this long: a line a log or `on_finding=print` can hold.
MAX_LINE = 300


@dataclass(frozen=True)
class Finding:
    """One located problem.

    >>> Finding("dead_units", "warning", "depth", ["3"], {"dead_frac": {"3": 0.8}}, ["he_init"],
    ...         rationale={"he_init": "80% of layer 3's units dead → he_init"})
    """

    kind: str
    severity: str
    scope: str
    layers: list[str]
    evidence: dict
    remedies: list[str] = field(default_factory=list)
    summary: str = ""  # one sentence: what was measured and what it means
    rationale: dict[str, str] = field(default_factory=dict)  # remedy -> one line tied to this finding's numbers

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.kind, KINDS, "kind"), (self.severity, SEVERITIES, "severity"),
                                     (self.scope, SCOPES, "scope")):
            if value not in allowed:
                raise InvalidValue(f"Finding.{what} must be one of {allowed}; got {value!r}")
        stray = sorted(set(self.rationale) - set(self.remedies))
        if stray:
            raise InvalidValue(f"Finding.rationale may only explain the ranked remedies {self.remedies}; got {stray}")

    def to_dict(self) -> dict:
        return json_safe(asdict(self))

    def __str__(self) -> str:
        """One line of at most 300 characters (`on_finding=print`): severity, kind, layers, the key number and the
        first remedy. `repr(finding)` has every field; `print(diag)` the evidence as a table."""
        from .layer_names import layer_phrase

        where = f" at {layer_phrase(self.layers, limit=4)}" if self.layers else ""
        number = key_number(self)
        remedy = f" → {self.remedies[0]}" if self.remedies else ""
        line = f"{self.severity.upper()} {self.kind}{where}" + (f": {number}" if number else "") + remedy
        return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def key_number(f: Finding) -> str:
    """The finding's first numeric evidence, at its first (worst) layer for a per-layer one: "grad ratio 1.6e-07 at
    0", "ratio 5.2e-11"; "" when it has none."""
    for key, value in f.evidence.items():
        label = key.replace("_", " ")
        if isinstance(value, float) and value == value:
            return f"{label} {value:.2g}"
        if isinstance(value, dict) and value:
            layer = next((name for name in f.layers if isinstance(value.get(name), (int, float))), None)
            if layer is not None:
                return f"{label} {value[layer]:.2g} at {layer}"
    return ""


@dataclass
class Diagnosis:
    """Findings, most severe first, and (from `checkup`) the measurement they were drawn from.

    >>> diag.healthy  # no warning or critical finding
    True
    """

    findings: list[Finding]
    measurement: "Measurement | None" = None
    layer_kinds: dict[str, str] = field(default_factory=dict)  # the model's layers in forward order -> module type

    def __post_init__(self) -> None:
        self.findings = sorted(self.findings, key=lambda f: -SEVERITIES.index(f.severity))
        if not self.layer_kinds and self.measurement is not None:
            self.layer_kinds = {layer.name: layer.kind for layer in self.measurement.layers}

    @property
    def healthy(self) -> bool:
        return not any(f.severity in ("warning", "critical") for f in self.findings)

    def to_dict(self) -> dict:
        """A JSON-able dict (non-finite numbers become None)."""
        out: dict[str, Any] = {"healthy": self.healthy, "findings": [f.to_dict() for f in self.findings]}
        if self.measurement is not None:
            out["measurement"] = self.measurement.to_dict()
        return out

    def __rich_console__(self, console, options):
        from .render import render

        yield render(self, options.max_width)

    def __str__(self) -> str:
        from .render import to_text

        return to_text(self)


