"""The fast paths: faster algorithms for the same ops, beside the textbook ones in `minicnn/ops/` and
`minicnn/backend/`, each held by the tests to the textbook's results.

    dispatch.py       which algorithm runs for these shapes on this device (one function per op)
    conv.py           the fast convolutions: fused im2col, Winograd, pointwise, direct, plane
    cpu_*.py          their numba kernels, and those of the max pool, the sigmoid and the SGD update
    winograd.py       the math of Winograd's F(2x2, 3x3), readable
    tuning.py         process tuning: allocator, threads, BLAS spin

`MINICNN_TEXTBOOK=1` (or `minicnn.config.textbook()`) turns them all off; docs/fast-paths.md explains each one.
This package imports nothing on its own, so that `tuning` can run before NumPy is loaded.
"""
