"""The lab: datasets and experiments that reproduce the claims about vanishing and exploding gradients.

    >>> gd.lab.datasets.mnist1d().x_train.shape
    torch.Size([4000, 40])
"""

from . import datasets

__all__ = ["datasets"]
