"""The run: ``bench run``'s machinery, suite x data x detectors -> durable scores -> results.

``runner`` (the main loop) hands units (``units``) to an executor (``executors``: local spawn pool;
``ray_executor``); workers prepare audio (``prepare``: read, perturb, measure quality), the scorer attacks
(``adversarial``) and scores on the device; ``store`` keeps every score in SQLite, ``results`` derives the CSV
tables, ``identity``/``config``/``provenance`` say what a run folder is bound to and records, ``progress`` shows it.

May import: ``bench.data``, ``bench.suites``, ``bench.metrics``, ``bench.scoring``, ``foundation`` and the plug-in
packages (lazily, where conditions are built and detectors loaded); never ``bench.serve``, ``bench.train`` or the
entrance (``bench.cli``, ``bench.api``).
"""
