"""Tiny random diffusers video pipelines, built offline, for the diffusion refiners' tests.

Every builder seeds torch before each component, so the same call gives the same weights. The components are as
small as the pipelines allow (a few thousand parameters), so a 17-frame 32x32 run takes about a second on a CPU.
They are untrained: what the tests can check is plumbing (the guide reaches the model, kept pixels stay kept, windows
join, sizes round-trip), not image quality.

Two changes make a random model's output depend on its input the way a trained one's does:

- Wan VAEs get ``latents_mean = 0`` and ``latents_std = 1`` and ``base_dim = 8``: with the real statistics the
  latents of a random encoder are scaled into noise and the guide's effect disappears.
- LTX and CogVideoX VAE encoders get a log-variance of -60 (clamped to -30, std ~3e-7): a random encoder's
  posterior would otherwise have std ~1 and its samples would bury the guide.

Usage::

    folder = save_tiny_pipeline("wan-vace", tmp_path / "vace")   # save_pretrained into the folder
    pipe = build_tiny_pipeline("ltx")                             # or just build it in memory
"""

from __future__ import annotations

from pathlib import Path

import torch

#: Words the tiny tokenizer knows as whole pieces; anything else is spelled letter by letter.
_WORDS = ("a", "the", "shot", "of", "person", "walking", "room", "camera", "smooth", "blurry", "photo", "video")


def tiny_tokenizer():
    """A T5 tokenizer over a ~40-piece vocabulary, built without any download."""
    from transformers import T5Tokenizer

    pieces = ["<pad>", "</s>", "<unk>"] + [f"\u2581{word}" for word in _WORDS] + ["\u2581"]
    pieces += [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = [(piece, 0.0 if i < 3 else -float(i)) for i, piece in enumerate(pieces)]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def tiny_text_encoder(vocab_size: int, d_model: int = 32, seed: int = 0):
    """A 2-layer random T5 encoder whose hidden size is ``d_model``."""
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, relative_attention_max_distance=16)
    return T5EncoderModel(config).eval()


def _wan_vae(seed: int):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    z_dim = 16
    return AutoencoderKLWan(base_dim=8, z_dim=z_dim, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True], latents_mean=[0.0] * z_dim,
                            latents_std=[1.0] * z_dim)


def _make_encoder_deterministic(conv: torch.nn.Module, logvar_channels: slice) -> None:
    """Give a random VAE encoder's output convolution a constant, very negative log-variance."""
    with torch.no_grad():
        conv.weight[logvar_channels] = 0.0
        conv.bias[logvar_channels] = -60.0


def build_wan_vace(seed: int = 0):
    """A tiny :class:`diffusers.WanVACEPipeline` (spatial factor 8 x patch 2 = 16, frames k*4+1)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanVACEPipeline, WanVACETransformer3DModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=3, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32, vace_layers=[0, 2], vace_in_channels=96,  # 2 x 16 latent channels + 8 x 8 mask
    )
    return WanVACEPipeline(transformer=transformer, vae=_wan_vae(seed),
                           scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                           text_encoder=tiny_text_encoder(len(tokenizer), seed=seed), tokenizer=tokenizer)


def build_wan_v2v(seed: int = 0):
    """A tiny :class:`diffusers.WanVideoToVideoPipeline`."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanTransformer3DModel, WanVideoToVideoPipeline

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    return WanVideoToVideoPipeline(transformer=transformer, vae=_wan_vae(seed),
                                   scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
                                   text_encoder=tiny_text_encoder(len(tokenizer), seed=seed), tokenizer=tokenizer)


def build_ltx_condition(seed: int = 0):
    """A tiny :class:`diffusers.LTXConditionPipeline` (VAE 8x spatial, 8x temporal: frames k*8+1, sides /32)."""
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline
    from diffusers import LTXVideoTransformer3DModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1,
                                             num_attention_heads=4, attention_head_dim=8, cross_attention_dim=32,
                                             num_layers=1, caption_channels=32)
    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False), decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=False, patch_size=1,
        patch_size_t=1, encoder_causal=True, decoder_causal=False,
    )
    # The encoder's last output channel is the log-variance, repeated over the latent channels.
    _make_encoder_deterministic(vae.encoder.conv_out.conv, slice(-1, None))
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    return LTXConditionPipeline(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
                                text_encoder=tiny_text_encoder(len(tokenizer), seed=seed), tokenizer=tokenizer)


def build_cogvideox_v2v(seed: int = 0):
    """A tiny :class:`diffusers.CogVideoXVideoToVideoPipeline` (sides /16, frames k*4+1)."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
    from diffusers import CogVideoXVideoToVideoPipeline

    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4, attention_head_dim=8, in_channels=4, out_channels=4, time_embed_dim=2,
        text_embed_dim=32, num_layers=1, sample_width=4, sample_height=4, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=16,  # the refiner passes it as max_sequence_length
    )
    torch.manual_seed(seed)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=2,
        temporal_compression_ratio=4,
        down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
    )
    # The encoder's output holds the mean's channels, then the log-variance's.
    _make_encoder_deterministic(vae.encoder.conv_out.conv, slice(4, None))
    return CogVideoXVideoToVideoPipeline(tokenizer=tokenizer, text_encoder=tiny_text_encoder(len(tokenizer), seed=seed),
                                         vae=vae, transformer=transformer, scheduler=CogVideoXDDIMScheduler())


#: Builders by the refiner name that takes the pipeline ("v2v-cogvideox" is v2v's second family).
BUILDERS = {
    "wan-vace": build_wan_vace,
    "ltx": build_ltx_condition,
    "v2v": build_wan_v2v,
    "v2v-cogvideox": build_cogvideox_v2v,
}


def build_tiny_pipeline(kind: str, seed: int = 0):
    """A tiny random pipeline of one of :data:`BUILDERS`' kinds, in float32 on the CPU."""
    pipe = BUILDERS[kind](seed=seed)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_pipeline(kind: str, folder: Path, seed: int = 0) -> Path:
    """Build a tiny pipeline and ``save_pretrained`` it into ``folder`` (model_index.json, one folder a component)."""
    folder = Path(folder)
    build_tiny_pipeline(kind, seed=seed).save_pretrained(folder)
    return folder
