"""Channel families: telephone band, packet loss, clipping, quantization, gain, resampling,
time stretch and pitch shift. Each keeps the input's length; all but time-stretch stay aligned.
"""
