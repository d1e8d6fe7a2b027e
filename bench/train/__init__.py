"""Training and fine-tuning detectors with the benchmark's own perturbations and attacks.

May import foundation/, models/, perturbations/, attacks/ and the other bench sub-packages, never bench.cli/bench.api.
"""
