"""Gaussian-splat scenes: rasterization (gsplat on CUDA, a CPU twin elsewhere), the dynamic
scene model, training, and the 3DGS file formats."""
