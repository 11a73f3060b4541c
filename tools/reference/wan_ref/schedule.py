"""Wan's flow-matching schedule and the Euler solver (wan21_pipeline.md §4).

sigma_hat_i = linspace(f32(0.999), 0, N+1)[i] (i < N), shifted in float64:
sigma_i = s*sigma_hat_i / (1 + (s-1)*sigma_hat_i); the DiT sees
t_i = int64(1000*sigma_i) (truncation); the solvers use sigma_i rounded to
float32, with sigma_N = 0.
"""

import numpy as np
import torch

SIGMA_MAX = float(np.float32(0.999))  # 0.9990000128746033


def wan_schedule(num_steps, shift):
    """(timesteps int64 [N], sigmas float64 [N+1]: the float32 values the
    solver uses, sigma_N = 0, widened to float64)."""
    hat = np.linspace(SIGMA_MAX, 0.0, num_steps + 1)[:-1]
    sig = shift * hat / (1.0 + (shift - 1.0) * hat)  # float64
    timesteps = torch.from_numpy((sig * 1000.0).astype(np.int64))
    sigmas = np.append(sig.astype(np.float32), np.float32(0.0))
    return timesteps, torch.from_numpy(sigmas.astype(np.float64))


def euler(velocity, x, timesteps, sigmas, samples=None):
    """x_{i+1} = x_i + (sigma_{i+1} - sigma_i) * v(x_i, t_i); samples (a
    list) receives x after each step."""
    for i in range(len(timesteps)):
        v = velocity(x, timesteps[i:i + 1])
        x = x + (float(sigmas[i + 1]) - float(sigmas[i])) * v
        if samples is not None:
            samples.append(x)
    return x


def cfg_velocity(model, cond, uncond, guidance):
    """v = v_u + g (v_c - v_u); model(x, t, context) -> velocity."""
    def velocity(x, t):
        v_c = model(x, t, cond)
        v_u = model(x, t, uncond)
        return v_u + guidance * (v_c - v_u)
    return velocity
