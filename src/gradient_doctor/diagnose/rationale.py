"""Why each remedy: one line per ranked remedy, tying it to the numbers this finding measured.

    >>> rationale(["swap_activation:relu", "he_init"], "93% of layer 1's outputs saturated")
    {'swap_activation:relu': "93% of layer 1's outputs saturated → swap_activation:relu",
     'he_init': "93% of layer 1's outputs saturated → he_init"}
    >>> rationale(["normalize_inputs"], "93% of layer 1's outputs saturated",
    ...           {"normalize_inputs": "saturated from its first recorded step"})["normalize_inputs"]
    "93% of layer 1's outputs saturated → normalize_inputs: saturated from its first recorded step"

Every rule, in `checkup` and in `run.diagnose`, builds its lines here: `measured` is the one clause of evidence the
ranking rests on (the worst layer's number, formatted as in the summary), and `why` adds, for a remedy that rests on
a different piece of evidence, that piece.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InvalidValue


def rationale(remedies: list[str], measured: str, why: Mapping[str, str] | None = None) -> dict[str, str]:
    """{remedy: "measured → remedy[: why]"} for each of `remedies`, in their order; `why` may only name remedies
    that are in `remedies`."""
    why = why or {}
    stray = sorted(set(why) - set(remedies))
    if stray:
        raise InvalidValue(f"rationale: `why` names remedies that are not ranked {remedies}; got {stray}")
    return {name: f"{measured} → {name}" + (f": {why[name]}" if name in why else "") for name in remedies}
