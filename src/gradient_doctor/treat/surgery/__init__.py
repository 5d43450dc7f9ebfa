"""Helpers the remedies share for model surgery: which modules are weight layers, norms or shape-preserving blocks,
which activation follows a layer, drawing weight blocks, and the modules remedies insert."""
