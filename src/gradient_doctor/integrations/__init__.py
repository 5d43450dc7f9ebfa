"""Callbacks that attach `gd.watch` to training frameworks; each imports its framework lazily.

    >>> from gradient_doctor.integrations.lightning import GradientDoctorCallback   # pip install 'gradient-doctor[lightning]'
    >>> from gradient_doctor.integrations.transformers import GradientDoctorCallback  # pip install 'gradient-doctor[transformers]'

Plain PyTorch, DDP, FSDP, AMP and `torch.compile` need no integration: `gd.watch` handles them (docs/integrations.md).
"""
