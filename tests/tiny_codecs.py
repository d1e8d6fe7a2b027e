"""Tiny random neural codecs with the published models' framing, for tests (no weights are downloaded).

Real ``transformers`` classes with the real models' frame rate and codebook size but few channels and
random weights, saved with ``save_pretrained``: EnCodec 24 kHz (hop 320 = 75 frames/s, 1024-entry
codebooks, 1.5..24 kb/s), DAC 16 kHz (hop 320 = 50 frames/s, 12 codebooks of 1024), Mimi (12.5 frames/s,
32 codebooks of 2048). transformers initialises EnCodec's and Mimi's codebooks to zeros, so they are
filled with random entries: otherwise every level would decode alike.
"""
from __future__ import annotations

from pathlib import Path

#: family -> folder name under a weights folder (as in $BENCH_WEIGHTS_DIR)
FOLDERS = {"encodec": "encodec_24khz", "dac": "dac_16khz", "mimi": "mimi"}


def _tiny_encodec(folder: Path) -> Path:
    import torch
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(0)
    cfg = EncodecConfig(sampling_rate=24000, upsampling_ratios=[8, 5, 4, 2], codebook_size=1024,
                        target_bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0], num_filters=4, hidden_size=16,
                        codebook_dim=16, num_lstm_layers=1)
    model = EncodecModel(cfg)
    with torch.no_grad():   # transformers initialises the codebooks to zeros: every level would decode alike
        for layer in model.quantizer.layers:
            layer.codebook.embed.normal_()
    model.save_pretrained(folder)
    return folder


def _tiny_dac(folder: Path) -> Path:
    import torch
    from transformers import DacConfig, DacModel

    torch.manual_seed(0)
    cfg = DacConfig(sampling_rate=16000, hop_length=320, downsampling_ratios=[2, 4, 5, 8],
                    upsampling_ratios=[8, 5, 4, 2], n_codebooks=12, codebook_size=1024, encoder_hidden_size=4,
                    decoder_hidden_size=16, hidden_size=16, codebook_dim=4)
    DacModel(cfg).save_pretrained(folder)
    return folder


def _tiny_mimi(folder: Path) -> Path:
    import torch
    from transformers import MimiConfig, MimiModel

    torch.manual_seed(0)
    cfg = MimiConfig(sampling_rate=24000, frame_rate=12.5, codebook_size=2048, num_quantizers=32, hidden_size=16,
                     num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, head_dim=8,
                     intermediate_size=32, num_filters=4, codebook_dim=16, vector_quantization_hidden_dimension=16,
                     upsample_groups=16)
    model = MimiModel(cfg)
    with torch.no_grad():   # zero codebooks otherwise (see _tiny_encodec)
        for name, buf in model.named_buffers():
            if name.endswith("codebook.embed_sum"):
                buf.normal_()
    model.save_pretrained(folder)
    return folder


def build_tiny_codecs(root: Path) -> dict[str, Path]:
    """Every tiny codec under ``root`` (laid out like ``$BENCH_WEIGHTS_DIR``): family -> folder."""
    root = Path(root)
    builders = {"encodec": _tiny_encodec, "dac": _tiny_dac, "mimi": _tiny_mimi}
    return {fam: builders[fam](root / folder) for fam, folder in FOLDERS.items()}
