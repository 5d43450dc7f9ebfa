"""Remedies as verified model surgery (`gd.treat`) and training-loop remedies (`gd.clip`)."""
