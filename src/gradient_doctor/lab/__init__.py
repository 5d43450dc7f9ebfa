"""The lab: experiments that reproduce the claims about vanishing and exploding gradients."""
