"""deepfake-bench: robustness and adversarial evaluation of audio anti-spoofing detectors.

The CLI (`bench ...`, see `bench.cli`) is a thin layer over this importable API.
"""
__version__ = "0.1.0"
