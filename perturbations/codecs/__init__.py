"""Codec perturbation families: one family per file, each an encode/decode round trip.

Every family is calibrated and time-aligned:

- the signal is resampled (zero-phase, :func:`scipy.signal.resample_poly`) to the codec's rate
  and back, so the only delay is the codec's own;
- that delay is a literal, measured number at the top of each family's file (``DELAY``, in
  samples at the codec's rate) and removed, so that the output is aligned with the input within
  one sample (``tests/test_codecs.py`` re-measures it on real speech for every level);
- ``encode(wav, sr)`` returns the payload bytes next to the decoded waveform, so a level's
  bitrate (payload bytes x 8 / duration) can be checked against its nominal value.

The shared machinery lives in the private modules ``_base`` (the family base class) and
``_pyav`` (the in-process PyAV round trip); this package's ``__init__`` holds no registration.
"""
