"""Independent PyTorch reference of Wan2.1 text-to-video (umT5 encoder, Wan
VAE 2.1, DiT, Wan's flow schedule, UniPC and Euler, the end-to-end pipeline),
written from /work/shared/reference/wan21.md and wan21_pipeline.md only.

Every module computes in whatever dtype its inputs have; the case writer
(../wan_reference.py) feeds float64 so the reference's own rounding is
negligible next to the 1e-4 tolerance of the float32 C++ checks.
"""
