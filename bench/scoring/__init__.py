"""Scoring: how a detector turns clips into scores, in one direction.

``windows`` (the input policies: a clip becomes fixed-length windows, no torch) -> ``engine`` (windows of one length
become batches on the device: batch size, precision, compilation) -> ``score`` (:func:`score_batch`: the two together,
window scores reduced to one score per clip). Callers (``bench score``, the runner's scorer, the service, training's
dev evaluation) enter through ``score``; ``timeline`` scores sliding windows over a whole clip or a stream
(``bench score --timeline``, the service's ``/stream``, segment-level EER) with the same windows and engine.

May import: numpy, torch and ``models.base`` (for types); nothing else of ``bench``.
"""
