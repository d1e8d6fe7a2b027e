"""Additive noise families (white, pink, brown, background, babble), each scaled to an exact SNR.

SNR is the contract's: ``10·log10(Σx² / Σ(y−x)²)`` over the whole clip (``_mix.add_at_snr``).
"""
