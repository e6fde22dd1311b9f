// The CUDA kernels of minicnn/backend/kernels.cu, compiled as C++ for the CPU and exposed to Python (ctypes).
//
// Build (emulator.py does it, flags in CXX_FLAGS): g++ -std=c++17 -O2 -Wall -Wextra -Werror -shared -fPIC
//   -I tests/cuda_host -I minicnn/backend tests/cuda_host/emulator.cpp -o libkernels_host.so
//
// Python calls  cuda_host_launch("im2col<float>", grid, block, args, sizes, nargs)  with the arguments laid out
// as cuLaunchKernel takes them: args[i] points at the value of argument i (a device pointer is an argument whose
// value is an address). The kernel's own C++ signature says how to read each one, and sizes[] lets the launcher
// check that Python passed every argument at the width the kernel expects (an int where the kernel takes a long
// long would be read wrongly on a real GPU too).
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

#include "cuda_host.h"
#include "kernels.cu"

namespace {

std::string last_error;

// Run `kernel` once for every simulated thread of a 1-D grid, blocks in order, threads in order.
template <typename... Args, std::size_t... I>
void run_grid(void (*kernel)(Args...), unsigned grid, unsigned block, void** args, std::index_sequence<I...>)
{
    gridDim = dim3{grid, 1, 1};
    blockDim = dim3{block, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        for (unsigned t = 0; t < block; ++t) {
            blockIdx = dim3{b, 0, 0};
            threadIdx = dim3{t, 0, 0};
            kernel(*static_cast<Args*>(args[I])...);
        }
    }
}

template <typename... Args>
int launch(const char* name, void (*kernel)(Args...), unsigned grid, unsigned block, void** args,
           const std::size_t* sizes, int nargs)
{
    constexpr std::size_t expected[] = {sizeof(Args)...};
    char message[256];
    if (nargs != static_cast<int>(sizeof...(Args))) {
        std::snprintf(message, sizeof message, "%s takes %zu arguments, got %d", name, sizeof...(Args), nargs);
        last_error = message;
        return 1;
    }
    for (int i = 0; i < nargs; ++i) {
        if (sizes[i] != expected[i]) {
            std::snprintf(message, sizeof message, "%s: argument %d has %zu bytes, the kernel takes %zu", name, i,
                          sizes[i], expected[i]);
            last_error = message;
            return 1;
        }
    }
    if (grid == 0 || block == 0) {
        std::snprintf(message, sizeof message, "%s: empty launch (grid %u, block %u) is an error in CUDA", name,
                      grid, block);
        last_error = message;
        return 1;
    }
    run_grid(kernel, grid, block, args, std::index_sequence_for<Args...>{});
    return 0;
}

using Launcher = int (*)(unsigned, unsigned, void**, const std::size_t*, int);

struct Entry {
    const char* name;  // the name expression gpu.py gives cupy.RawModule, e.g. "im2col<float>"
    Launcher launch;
};

#define MINICNN_HOST_ENTRIES(kernel)                                                                     \
    {#kernel "<float>",                                                                                  \
     [](unsigned g, unsigned b, void** a, const std::size_t* s, int n) {                                \
         return launch(#kernel "<float>", &kernel<float>, g, b, a, s, n);                                \
     }},                                                                                                 \
        {#kernel "<double>", [](unsigned g, unsigned b, void** a, const std::size_t* s, int n) {        \
             return launch(#kernel "<double>", &kernel<double>, g, b, a, s, n);                          \
         }},

const Entry entries[] = {MINICNN_KERNELS(MINICNN_HOST_ENTRIES)};
constexpr int entry_count = sizeof entries / sizeof entries[0];

}  // namespace

extern "C" {

// 0 on success; otherwise cuda_host_last_error() says what was wrong.
int cuda_host_launch(const char* name, unsigned grid, unsigned block, void** args, const std::size_t* sizes,
                     int nargs)
{
    for (const Entry& e : entries) {
        if (std::strcmp(e.name, name) == 0) return e.launch(grid, block, args, sizes, nargs);
    }
    last_error = std::string("no kernel named ") + name;
    return 1;
}

const char* cuda_host_last_error() { return last_error.c_str(); }

int cuda_host_kernel_count() { return entry_count; }

const char* cuda_host_kernel_name(int i) { return i >= 0 && i < entry_count ? entries[i].name : nullptr; }
}
