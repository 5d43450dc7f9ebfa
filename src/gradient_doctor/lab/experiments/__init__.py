"""One module per lab experiment (see lab/experiment.py for the contract): `gradient-doctor lab <name>`."""
