// Host emulation of the CUDA built-ins used by minicnn/backend/kernels.cu, so that the same file compiles as
// plain C++ (g++ -std=c++17) and its kernels can run on the CPU, checked against the numba kernels.
//
// A launch of grid x block threads becomes two nested loops (see emulator.cpp) that set blockIdx/threadIdx and
// call the kernel once per simulated thread, one thread after another. That is exact for kernels whose threads
// never communicate: each writes only its own output elements and reads only inputs no thread writes. Every
// kernel in kernels.cu is built that way (gathers, one output element per loop iteration), so the emulation
// computes what the GPU computes, up to floating-point contraction (the tests compare with a tolerance where
// sums are involved).
//
// Shared memory and __syncthreads() would break that argument (a thread would read what its block-mates write
// later in the sequential order), so they are deliberately NOT emulated: a kernel that uses them fails to
// compile here with an error naming the missing feature, instead of giving plausible wrong answers. Such a kernel
// would need a one-OS-thread-per-CUDA-thread emulation with a barrier for __syncthreads.
#pragma once

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

// The launch being emulated (thread_local so that two Python threads could emulate launches at once).
inline thread_local dim3 gridDim, blockDim, blockIdx, threadIdx;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict

#define __shared__ cuda_host_emulation_does_not_support_shared_memory
#define __syncthreads() cuda_host_emulation_does_not_support_syncthreads()
