"""Checkup's one-batch instrument: forward and backward on one batch with hooks on every layer (without touching
`.grad`), the model left exactly as it was, and what was measured as plain data with the gradient budget.

    >>> from gradient_doctor.probe.batch.measure import measure
"""
