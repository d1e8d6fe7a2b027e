"""Training and fine-tuning detectors with the benchmark's own perturbations and attacks (``bench train``).

May import: ``bench.data``, ``bench.suites``, ``bench.metrics``, ``bench.scoring``, ``bench.run`` (worker-side
preparation, the run lock, provenance, progress), ``bench.terminal`` (tables), ``foundation`` and the plug-in packages;
never ``bench.cli``, ``bench.api`` or ``bench.serve``.
"""
