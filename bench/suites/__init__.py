"""Suites: what a run measures. The built-in YAML files beside this module; ``suite`` reads YAML into frozen
``Suite``/``ConditionSpec`` objects and expands them into validated ``Condition`` s (the data model in
``conditions``); ``labels`` names a level in physical units (``16 kb/s``, ``10 dB SNR``); ``universal`` expands
universal attacks into one condition per source model and splits their utterances; ``untrusted`` bounds a suite
file (size, includes, YAML alias expansion) before it is parsed.

May import: pyyaml, numpy and the plug-in registries (``perturbations``, ``attacks``) to validate conditions; nothing
else of ``bench``.
"""
