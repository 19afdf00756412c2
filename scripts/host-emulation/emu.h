// A C++20 model of the CUDA execution the ringdet kernels rely on, so a `.cu` file can be
// compiled and run on the CPU: a block is blockDim.x std::threads sharing the kernel's
// `__shared__` arrays (made `static`; blocks run one after another), `__syncthreads` is a block
// barrier, `__shfl_xor_sync` exchanges values through a per-warp barrier, `atomicAdd` is an
// atomic_ref, and `mma.sync.m16n8k16` (bf16) is modelled from the PTX ISA's fragment layouts.
// It checks index arithmetic, tiling and data movement; it proves nothing about the hardware.
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

struct Dim3 { unsigned x = 1, y = 1, z = 1; };
inline thread_local Dim3 threadIdx, blockIdx;
inline Dim3 blockDim, gridDim;
inline std::barrier<>* g_bar;
inline std::vector<std::unique_ptr<std::barrier<>>> g_warp_bars;
#define __syncthreads() g_bar->arrive_and_wait()
#define __device__
#define __global__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static
#define __launch_bounds__(x)
#define __align__(x) __attribute__((aligned(x)))
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline float bf16f(unsigned short h) { return __uint_as_float((unsigned)h << 16); }
using std::max;
using std::min;

template <class T> T __shfl_xor_sync(unsigned, T v, int off) {
    static T slots[32][32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    slots[warp][lane] = v;
    g_warp_bars[warp]->arrive_and_wait();
    T r = slots[warp][lane ^ off];
    g_warp_bars[warp]->arrive_and_wait();
    return r;
}
inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }

inline unsigned frag_a[32][32][4], frag_b[32][32][2];
inline float frag_c[32][32][4];
inline void ringdet_emulate_mma(float* d, const unsigned* a, const unsigned* b) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int i = 0; i < 4; ++i) { frag_a[warp][lane][i] = a[i]; frag_c[warp][lane][i] = d[i]; }
    for (int i = 0; i < 2; ++i) frag_b[warp][lane][i] = b[i];
    g_warp_bars[warp]->arrive_and_wait();
    auto A = [&](int row, int k) {  // a0..a7: rows grp / grp+8, cols tig*2+{0,1} / +8
        unsigned r = frag_a[warp][(row % 8) * 4 + (k % 8) / 2][(row >= 8) + 2 * (k >= 8)];
        return bf16f((unsigned short)((k & 1) ? r >> 16 : r & 0xffff));
    };
    auto B = [&](int k, int col) {  // b0..b3: k = tig*2+{0,1} / +8, n = grp
        unsigned r = frag_b[warp][col * 4 + (k % 8) / 2][k >= 8];
        return bf16f((unsigned short)((k & 1) ? r >> 16 : r & 0xffff));
    };
    float out[4];
    int grp = lane >> 2, tig = lane & 3;
    for (int e = 0; e < 4; ++e) {
        int row = grp + (e >> 1) * 8, col = tig * 2 + (e & 1);
        float s = frag_c[warp][lane][e];
        for (int k = 0; k < 16; ++k) s += A(row, k) * B(k, col);
        out[e] = s;
    }
    g_warp_bars[warp]->arrive_and_wait();
    for (int e = 0; e < 4; ++e) d[e] = out[e];
}
#define RINGDET_HOST_EMULATION 1

// Runs `body()` as a grid of gx×gy blocks of `threads` threads (a multiple of 32).
template <class F> void launch(unsigned gx, unsigned gy, unsigned threads, F body) {
    blockDim = {threads, 1, 1};
    gridDim = {gx, gy, 1};
    for (unsigned by = 0; by < gy; ++by)
        for (unsigned bx = 0; bx < gx; ++bx) {
            std::barrier<> bar(threads);
            g_bar = &bar;
            g_warp_bars.clear();
            for (unsigned w = 0; w < threads / 32; ++w)
                g_warp_bars.push_back(std::make_unique<std::barrier<>>(32));
            std::vector<std::thread> ts;
            for (unsigned t = 0; t < threads; ++t)
                ts.emplace_back([=] {
                    threadIdx = {t, 0, 0};
                    blockIdx = {bx, by, 0};
                    body();
                });
            for (auto& t : ts) t.join();
        }
}

inline double rel_l2(const float* got, const double* want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        if (std::isnan(got[i])) return INFINITY;
        num += (got[i] - want[i]) * (got[i] - want[i]);
        den += want[i] * want[i];
    }
    return std::sqrt(num / (den > 0 ? den : 1e-300));
}
inline int report(const char* what, double err, double tol) {
    bool ok = err <= tol;
    std::printf("%s %s: rel L2 %.2e\n", ok ? "ok  " : "FAIL", what, err);
    return !ok;
}
