"""Wan's flow UniPC multistep solver: bh2, solver order 2, predict-x0,
lower-order final steps, corrector on (wan21_pipeline.md §4).

alpha = 1 - sigma, lambda = ln(alpha) - ln(sigma). At step i the data
prediction is m_i = x_i - sigma_i v_i (from the uncorrected x_i); for i >= 1
the corrector (UniC, order of the previous predictor) updates x_i, then the
predictor (order p = min(2, N-i, i+1)) goes to sigma_{i+1}.
"""

import math


def _lam(sigma):
    return math.log(1.0 - sigma) - math.log(sigma)


def unipc(velocity, x, timesteps, sigmas, trace=None, samples=None):
    """velocity(x, t int64 [1]) -> v. sigmas: N+1 floats, sigmas[N] = 0.
    trace (a list) receives per step (i, corrector order, predictor order);
    samples (a list) receives x after each step."""
    n = len(timesteps)
    s = [float(v) for v in sigmas]
    ms = []          # data predictions m_0..m_i
    x_prev = None    # the sample the previous predictor started from
    for i in range(n):
        v = velocity(x, timesteps[i:i + 1])
        m = x - s[i] * v
        corr_order = 0
        if i >= 1:
            h = _lam(s[i]) - _lam(s[i - 1])
            phi = math.expm1(-h)
            alpha = 1.0 - s[i]
            m1 = ms[-1]
            if i == 1:
                corr, rho = 0.0, 0.5
                corr_order = 1
            else:
                r = (_lam(s[i - 2]) - _lam(s[i - 1])) / h
                dd = (ms[-2] - m1) / r
                k = phi / (-h) - 1.0
                b1 = k / phi
                b2 = 2.0 * (k / (-h) - 0.5) / phi
                # [[1, 1], [r, 1]] (rho0, rho) = (b1, b2)
                rho0 = (b1 - b2) / (1.0 - r)
                rho = b1 - rho0
                corr = rho0 * dd
                corr_order = 2
            x = (s[i] / s[i - 1]) * x_prev - alpha * phi * m1 \
                - alpha * phi * (corr + rho * (m - m1))
        ms.append(m)
        order = min(2, n - i, i + 1)
        x_prev = x
        if s[i + 1] == 0.0:
            x = m
        else:
            h = _lam(s[i + 1]) - _lam(s[i])
            phi = math.expm1(-h)
            alpha = 1.0 - s[i + 1]
            x_new = (s[i + 1] / s[i]) * x - alpha * phi * m
            if order == 2:
                r = (_lam(s[i - 1]) - _lam(s[i])) / h
                x_new = x_new - alpha * phi * 0.5 * (ms[-2] - m) / r
            x = x_new
        if trace is not None:
            trace.append((i, corr_order, order))
        if samples is not None:
            samples.append(x)
    return x
