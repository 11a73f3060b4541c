"""Wan2.1 text-to-video end to end: umT5 -> DiT + CFG + UniPC (or Euler) on
Wan's schedule -> VAE decode -> [F, H, W, 3] in [0, 1] (before 8-bit
rounding). Weight dicts are keyed by the Wan names without prefix."""

import torch

from . import dit, schedule, umt5, unipc, vae


def initial_noise(seed, frames, height, width, channels=16):
    """float32 randn([16, (F-1)/4+1, H/8, W/8]) from a CPU generator seeded
    with `seed`, what Wan's reference draws (on CPU)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn([channels, (frames - 1) // 4 + 1, height // 8,
                        width // 8], generator=gen)


def sample(dit_w, dit_cfg, noise, cond, uncond, num_steps, shift, guidance,
           solver="unipc", trace=None, samples=None):
    """noise [B, 16, T, h, w]; cond/uncond contexts [B, text_len, text_dim].
    Returns (timesteps, sigmas, latents); samples (a list) receives x after
    each step."""
    timesteps, sigmas = schedule.wan_schedule(num_steps, shift)
    model = lambda x, t, c: dit.forward(dit_w, dit_cfg, x, t, c)  # noqa: E731
    velocity = schedule.cfg_velocity(model, cond, uncond, guidance)
    dtype = dit_w["patch_embedding.weight"].dtype
    x = noise.to(dtype)
    if solver == "unipc":
        x = unipc.unipc(velocity, x, timesteps, sigmas, trace, samples)
    elif solver == "euler":
        x = schedule.euler(velocity, x, timesteps, sigmas, samples)
    else:
        raise ValueError(f"solver {solver!r}: expected unipc or euler")
    return timesteps, sigmas, x


def generate(t5_w, t5_cfg, dit_w, dit_cfg, vae_w, vae_cfg, cond_ids,
             uncond_ids, num_steps, shift, guidance, seed, frames, height,
             width, solver="unipc", debug=None):
    """Returns (timesteps int64 [N], video [F, H, W, 3] in [0, 1], latents).
    debug (a dict) receives the intermediates: context [2, text_len, dim]
    (cond, uncond), noise, the sample after each step, the latents."""
    ctx = umt5.encode_context(t5_w, t5_cfg, [cond_ids, uncond_ids],
                              dit_cfg["text_len"])
    noise = initial_noise(seed, frames, height, width)[None]
    samples = []
    timesteps, _, latents = sample(dit_w, dit_cfg, noise, ctx[:1], ctx[1:],
                                   num_steps, shift, guidance, solver,
                                   samples=samples)
    if debug is not None:
        debug["context"] = ctx
        debug["noise"] = noise
        for i, x in enumerate(samples):
            debug[f"sample.{i}"] = x
        debug["latents"] = latents
    video = vae.decode(vae_w, vae_cfg, latents)  # [1, 3, F, H, W], clamped
    video = (video[0].permute(1, 2, 3, 0) + 1) / 2
    return timesteps, video, latents
