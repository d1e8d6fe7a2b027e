"""The commands' own handlers beside bench/cli.py: ``calibrate`` (``bench calibrate``, ``--calibration`` options),
``timeline`` and ``timeline_plot`` (``bench score --timeline``), ``weights`` (``bench weights``), ``summary`` (the
closing summary of ``bench run``). bench/cli.py registers them; they turn arguments into calls of bench/api.py and
print the answers.

May import: ``bench.api``, ``bench.terminal`` and every part below them; never ``bench.cli``.
"""
