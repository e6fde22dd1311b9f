"""CPU emulation of the CUDA kernels in minicnn/backend/kernels.cu (see emulator.py and cuda_host.h)."""
