// CUDA kernels of the GPU backend (loaded by gpu.py with cupy.RawModule, compiled by NVRTC).
//
// The same window operations as the numba kernels in cpu.py, with the same layouts (see shapes.py):
//   x:    (N, C, H, W)                       element ((n*C + c)*H + h)*W + w
//   cols: (C*KH*KW, N*OH*OW)                 row (c*KH + i)*KW + j, column (n*OH + oy)*OW + ox
//   idx:  (N, C, OH, OW) int32               position h*W + w of a max-pool window's FIRST maximum
// and MXNet's rules: output size floor((H + 2*PH - KH) / SH) + 1, padding never wins a max, the average divides
// by KH*KW (padding counted).
//
// Every kernel gives each thread one OUTPUT element and makes it read what it needs (a gather), so no two threads
// write the same memory: no atomics, no shared memory, no __syncthreads, and the result does not depend on the
// launch configuration or on thread scheduling. The backward passes of im2col and pooling, naturally scatters,
// are written as gathers too: each input pixel visits the few windows that cover it.
//
// Each kernel is a template instantiated for float and double (gpu.py asks NVRTC for "im2col<float>", ...).
// The file includes no headers, so NVRTC compiles it without a CUDA include path, and
// tests/cuda_host/ can compile the very same text as plain C++ to check the kernels on the CPU.

// Grid-stride loop: thread t of the grid handles elements t, t + (grid size), t + 2*(grid size), ... below
// `total`, so any launch size covers the whole array (gpu.py caps the number of blocks). The index is 64-bit
// because a batch of activations can pass 2^31 elements.
#define FOR_EACH_ELEMENT(e, total)                                                      \
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < (total); \
         e += (long long)blockDim.x * gridDim.x)

// The geometry every window kernel takes, in this order: input size, kernel, stride, padding, output size
// (gpu.py passes them as int32). The pooling kernels index whole planes (n*C + c) and need neither N nor C;
// im2col and col2im take them first, as they move between the two layouts.
#define WINDOW_PARAMS int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int OH, int OW

// The windows o (along one axis) whose span [o*S - P, o*S - P + K - 1] contains input position p:
// first <= o <= last (none when first > last). With q = p + P, the position in the padded input:
// o*S <= q gives o <= q / S, and o*S + K - 1 >= q gives o >= ceil((q - K + 1) / S).
__device__ inline void covering_windows(int p, int K, int S, int P, int O, int& first, int& last)
{
    const int q = p + P;
    first = q < K ? 0 : (q - K) / S + 1;
    last = q / S;
    if (last > O - 1) last = O - 1;
}

// cols[(c*KH + i)*KW + j, (n*OH + oy)*OW + ox] = x[n, c, oy*SH - PH + i, ox*SW - PW + j], or 0 in the padding.
// One thread per element of cols; consecutive threads write consecutive columns (coalesced stores).
template <typename T>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ cols, long long total, int N, int C, WINDOW_PARAMS)
{
    FOR_EACH_ELEMENT(e, total)
    {
        const int ox = (int)(e % OW);
        long long rest = e / OW;
        const int oy = (int)(rest % OH);
        rest /= OH;
        const int n = (int)(rest % N);
        rest /= N;
        const int j = (int)(rest % KW);
        rest /= KW;
        const int i = (int)(rest % KH);
        const int c = (int)(rest / KH);
        const int h = oy * SH - PH + i;
        const int w = ox * SW - PW + j;
        const bool inside = h >= 0 && h < H && w >= 0 && w < W;
        cols[e] = inside ? x[(((long long)n * C + c) * H + h) * W + w] : T(0);
    }
}

// The adjoint of im2col: dx[n, c, h, w] = sum of cols[(c*KH + i)*KW + j, (n*OH + oy)*OW + ox] over the
// windows (oy, ox) that cover (h, w), with i = h + PH - oy*SH and j = w + PW - ox*SW. One thread per pixel,
// adding oy, then ox, ascending (the CPU kernel scatters in another order, so float sums may differ in the last bits).
template <typename T>
__global__ void col2im(const T* __restrict__ cols, T* __restrict__ dx, long long total, int N, int C, WINDOW_PARAMS)
{
    const long long row_length = (long long)N * OH * OW;  // cols has N*OH*OW columns
    FOR_EACH_ELEMENT(e, total)
    {
        const int w = (int)(e % W);
        long long rest = e / W;
        const int h = (int)(rest % H);
        rest /= H;
        const int c = (int)(rest % C);
        const int n = (int)(rest / C);
        int oy0, oy1, ox0, ox1;
        covering_windows(h, KH, SH, PH, OH, oy0, oy1);
        covering_windows(w, KW, SW, PW, OW, ox0, ox1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy) {
            const int i = h + PH - oy * SH;
            const T* row_start = cols + ((long long)c * KH + i) * KW * row_length + ((long long)n * OH + oy) * OW;
            for (int ox = ox0; ox <= ox1; ++ox) {
                const int j = w + PW - ox * SW;
                acc += row_start[j * row_length + ox];
            }
        }
        dx[e] = acc;
    }
}

// y = the largest real pixel of each window; idx = its position h*W + w in the plane. The strict '>' keeps the
// FIRST maximum in row-major order when values tie, like the CPU kernel and MXNet. One thread per output.
template <typename T>
__global__ void max_pool_forward(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ idx,
                                 long long total, WINDOW_PARAMS)
{
    FOR_EACH_ELEMENT(e, total)
    {
        const int ox = (int)(e % OW);
        const long long rest = e / OW;
        const int oy = (int)(rest % OH);
        const T* in = x + (rest / OH) * H * (long long)W;
        T best = T(0);  // replaced by the first real pixel (every window holds one, as padding < kernel)
        int best_at = -1;
        for (int i = 0; i < KH; ++i) {
            const int h = oy * SH - PH + i;
            if (h < 0 || h >= H) continue;  // padding never wins a max
            for (int j = 0; j < KW; ++j) {
                const int w = ox * SW - PW + j;
                if (w < 0 || w >= W) continue;
                const T v = in[h * W + w];
                if (best_at < 0 || v > best) {
                    best = v;
                    best_at = h * W + w;
                }
            }
        }
        y[e] = best;
        idx[e] = best_at;
    }
}

// gx[n, c, h, w] = sum of gy over the windows that cover (h, w) AND chose (h, w) as their maximum.
// The natural form is a scatter (gx[idx[o]] += gy[o]) that would need atomicAdd where windows overlap (3x3
// stride 2 in AlexNet and GoogLeNet), and float atomics add in a scheduling-dependent order. As a gather each
// pixel reads only the windows that can point at it and adds them in a fixed order (oy, then ox, ascending,
// the CPU kernel's order), so the result is deterministic and equal to the CPU's.
template <typename T>
__global__ void max_pool_backward(const T* __restrict__ gy, const int* __restrict__ idx, T* __restrict__ gx,
                                  long long total, WINDOW_PARAMS)
{
    FOR_EACH_ELEMENT(e, total)
    {
        const int w = (int)(e % W);
        const long long rest = e / W;
        const int h = (int)(rest % H);
        const long long base = (rest / H) * OH * (long long)OW;  // this plane's windows in gy and idx
        const int self = h * W + w;
        int oy0, oy1, ox0, ox1;
        covering_windows(h, KH, SH, PH, OH, oy0, oy1);
        covering_windows(w, KW, SW, PW, OW, ox0, ox1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy) {
            for (int ox = ox0; ox <= ox1; ++ox) {
                const long long o = base + oy * OW + ox;
                if (idx[o] == self) acc += gy[o];
            }
        }
        gx[e] = acc;
    }
}

// y = (sum of the window's real pixels) / (KH*KW): padding counts in the denominator. One thread per output.
template <typename T>
__global__ void avg_pool_forward(const T* __restrict__ x, T* __restrict__ y, long long total, WINDOW_PARAMS)
{
    FOR_EACH_ELEMENT(e, total)
    {
        const int ox = (int)(e % OW);
        const long long rest = e / OW;
        const int oy = (int)(rest % OH);
        const T* in = x + (rest / OH) * H * (long long)W;
        T acc = T(0);
        for (int i = 0; i < KH; ++i) {
            const int h = oy * SH - PH + i;
            if (h < 0 || h >= H) continue;
            for (int j = 0; j < KW; ++j) {
                const int w = ox * SW - PW + j;
                if (w >= 0 && w < W) acc += in[h * W + w];
            }
        }
        y[e] = acc * (T(1) / T(KH * KW));
    }
}

// gx[n, c, h, w] = (sum of gy over the windows that cover (h, w)) / (KH*KW). A gather, one thread per pixel.
template <typename T>
__global__ void avg_pool_backward(const T* __restrict__ gy, T* __restrict__ gx, long long total, WINDOW_PARAMS)
{
    FOR_EACH_ELEMENT(e, total)
    {
        const int w = (int)(e % W);
        const long long rest = e / W;
        const int h = (int)(rest % H);
        const T* g = gy + (rest / H) * OH * (long long)OW;
        int oy0, oy1, ox0, ox1;
        covering_windows(h, KH, SH, PH, OH, oy0, oy1);
        covering_windows(w, KW, SW, PW, OW, ox0, ox1);
        T acc = T(0);
        for (int oy = oy0; oy <= oy1; ++oy) {
            for (int ox = ox0; ox <= ox1; ++ox) acc += g[oy * OW + ox];
        }
        gx[e] = acc * (T(1) / T(KH * KW));
    }
}

// Inverted-dropout mask from uniform draws u in [0, 1): 0 where u < rate (probability rate), else
// scale = 1/(1-rate). The comparison is made in float32, as on the CPU.
template <typename T>
__global__ void dropout_mask(const float* __restrict__ u, T* __restrict__ mask, long long total, float rate, T scale)
{
    FOR_EACH_ELEMENT(e, total)
    {
        mask[e] = u[e] >= rate ? scale : T(0);
    }
}

// Every kernel above, for tools that must instantiate them all: the nvcc compile test and the CPU emulation in
// tests/cuda_host/ expand MINICNN_KERNELS(X) into X(im2col) X(col2im) ... (a test keeps this list complete).
#define MINICNN_KERNELS(X) \
    X(im2col)              \
    X(col2im)              \
    X(max_pool_forward)    \
    X(max_pool_backward)   \
    X(avg_pool_forward)    \
    X(avg_pool_backward)   \
    X(dropout_mask)
