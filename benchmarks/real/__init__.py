"""The real-architecture zoo: models the project did not write — Hugging Face `transformers` models built from
their configs at the library's own init (no hub download), ResNet-18 and VGG-11-BN written from their papers, and
word-level LMs of the word_language_model design — each with a plain-torch label check (no gradient_doctor import
in `labels.py`).

    python -m benchmarks.real                 # every control: checkup at init, then a watched training run
    python -m benchmarks.real --quick         # checkup at init only, a few controls (what the test suite runs)
"""
