"""The foundation layer: what every other package of deepfake-bench stands on.

Registry and plug-in discovery (:mod:`foundation.registry`), seeded randomness
(:mod:`foundation.seeding`), checkpoint resolution and safe reading (:mod:`foundation.weights`),
audio input/output and the one resampler (:mod:`foundation.audio`), and device resolution
(:mod:`foundation.device`). It imports nothing of ``models``, ``perturbations``, ``attacks``,
``bench`` or ``reports``: they import it.
"""
