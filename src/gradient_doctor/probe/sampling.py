"""Fixed systematic samples of a tensor's flat entries: the update norms and the gradient histograms of large
parameters are taken over every p-th entry.

    >>> flat[::sample_stride(flat.numel(), 4096)]       # at most 4,096 entries, walking through every column
"""

from __future__ import annotations

import math


def sample_stride(numel: int, sample: int) -> int:
    """The stride of the systematic sample of a parameter's flat entries: 1 (all of them) up to `sample` entries,
    else the smallest prime >= numel / sample, so that at most `sample` entries are kept.

    >>> sample_stride(1000, 4096), sample_stride(768 * 768, 4096)     # 589,824 / 4,096 = 144 -> 149, a prime
    (1, 149)

    A prime stride shares no factor with a row length (other than the prime itself), so the kept entries walk
    through every column of a weight matrix instead of repeating a few of them.
    """
    if numel <= sample:
        return 1
    stride = -(-numel // sample)
    while any(stride % d == 0 for d in range(2, math.isqrt(stride) + 1)):
        stride += 1
    return stride
