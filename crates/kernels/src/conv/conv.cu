// 2-D convolution as implicit GEMM (no im2col buffer): each direction is a GEMM whose operands
// are gathered from the NCHW tensors while tiles are loaded into shared memory.
//   forward      (MODE 0): y[n,k,p]   = sum_r w[k,r] * col(x)[r,(n,p)]        M=K, N=N*OH*OW, R=C*kh*kw
//   backward data (MODE 1): dx[n,c,q] += sum_r w^T[c,r] * dcol(dy)[r,(n,q)]   M=C, N=N*H*W,   R=K*kh*kw
//   backward filter (MODE 2): dw[k,r] += sum_(n,p) dy[n,k,p] * col(x)[r,(n,p)] M=K, N=C*kh*kw, R=N*OH*OW
// PW = 1x1 kernel, stride 1, no padding: the gathers become plain strided reads.
// Two GEMM engines share the gathers: an f32 SIMT one (the reference and fallback) and a bf16
// tensor-core one (mma.sync m16n8k16, f32 accumulation, operands rounded to bf16 on load; sm_80+).
struct ConvGeom {
    int n, c, k, h, w, kh, kw, sh, sw, ph, pw, oh, ow;
};

template <int MODE> __device__ __forceinline__ int gemm_m(const ConvGeom& g) {
    return MODE == 1 ? g.c : g.k;
}
template <int MODE> __device__ __forceinline__ int gemm_n(const ConvGeom& g) {
    return MODE == 0 ? g.n * g.oh * g.ow : MODE == 1 ? g.n * g.h * g.w : g.c * g.kh * g.kw;
}
template <int MODE> __device__ __forceinline__ int gemm_r(const ConvGeom& g) {
    return MODE == 0 ? g.c * g.kh * g.kw : MODE == 1 ? g.k * g.kh * g.kw : g.n * g.oh * g.ow;
}

// The gathers split into a part that depends only on the reduction index r (`RInfo`, computed
// once per k-tile into shared memory by the first threads) and a part that depends only on the
// GEMM column (`ColInfo`, fixed for each thread: every thread loads the same B column in every
// k-tile). A load is then an add, a bounds test and a read, with no division.
//   MODE 0: r = (c, i, j); col = (n, oy, ox); x at col.base + r.b, tap (r.i + col.i, r.j + col.j)
//   MODE 1: r = (k, i, j); col = (n, y, x);   dy at ((y + ph - i) / sh, (x + pw - j) / sw)
//   MODE 2: r = (n, oy, ox); col = (c, i, j); x at r.b + col.base, same tap test as MODE 0
// A(m, r) is at r.a + m * a_stride: MODE 0 w[m, r]; MODE 1 w[k, m, i, j]; MODE 2 dy[n, m, p].
struct RInfo {
    long long a, b;
    int i, j, ok;
};
struct ColInfo {
    long long base;
    int i, j, ok;
};

template <int MODE>
__device__ __forceinline__ RInfo r_info(const ConvGeom& g, int r) {
    RInfo ri;
    ri.ok = r < gemm_r<MODE>(g);
    if (!ri.ok) r = 0;
    const int kk = g.kh * g.kw, hw = g.h * g.w, ohw = g.oh * g.ow;
    if (MODE == 0) {
        int c = r / kk, t = r - c * kk, i = t / g.kw, j = t - i * g.kw;
        ri.a = r;
        ri.b = (long long)c * hw + i * g.w + j;
        ri.i = i;
        ri.j = j;
    } else if (MODE == 1) {
        int k = r / kk, t = r - k * kk, i = t / g.kw, j = t - i * g.kw;
        ri.a = (long long)k * g.c * kk + t;
        ri.b = (long long)k * ohw;
        ri.i = i;
        ri.j = j;
    } else {
        int n = r / ohw, p = r - n * ohw, oy = p / g.ow, ox = p - oy * g.ow;
        ri.a = (long long)n * g.k * ohw + p;
        ri.i = oy * g.sh - g.ph;
        ri.j = ox * g.sw - g.pw;
        ri.b = (long long)n * g.c * hw + (long long)ri.i * g.w + ri.j;
    }
    return ri;
}

template <int MODE>
__device__ __forceinline__ ColInfo col_info(const ConvGeom& g, int col) {
    ColInfo ci;
    ci.ok = col < gemm_n<MODE>(g);
    if (!ci.ok) col = 0;
    if (MODE == 0) {
        int ohw = g.oh * g.ow, n = col / ohw, p = col - n * ohw, oy = p / g.ow, ox = p - oy * g.ow;
        ci.i = oy * g.sh - g.ph;
        ci.j = ox * g.sw - g.pw;
        ci.base = (long long)n * g.c * g.h * g.w + (long long)ci.i * g.w + ci.j;
    } else if (MODE == 1) {
        int hw = g.h * g.w, n = col / hw, q = col - n * hw, y = q / g.w, x = q - y * g.w;
        ci.i = y + g.ph;
        ci.j = x + g.pw;
        ci.base = (long long)n * g.k * g.oh * g.ow;
    } else {
        int kk = g.kh * g.kw, c = col / kk, t = col - c * kk, i = t / g.kw, j = t - i * g.kw;
        ci.i = i;
        ci.j = j;
        ci.base = (long long)c * g.h * g.w + (long long)i * g.w + j;
    }
    return ci;
}

template <int MODE>
__device__ __forceinline__ float load_a(const float* a, const ConvGeom& g, const RInfo& ri, int m,
                                        int M) {
    if (!ri.ok || m >= M) return 0.0f;
    long long stride = MODE == 0 ? (long long)g.c * g.kh * g.kw
                                 : MODE == 1 ? (long long)g.kh * g.kw : (long long)g.oh * g.ow;
    return a[ri.a + m * stride];
}

template <int MODE, bool PW>
__device__ __forceinline__ float load_b(const float* b, const ConvGeom& g, const RInfo& ri,
                                        const ColInfo& ci) {
    if (!ri.ok || !ci.ok) return 0.0f;
    if (MODE != 1) {
        if (!PW) {
            int iy = ri.i + ci.i, ix = ri.j + ci.j;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) return 0.0f;
        }
        return b[ci.base + ri.b];
    }
    int ty = ci.i - ri.i, tx = ci.j - ri.j;  // PW: ty = y, tx = x, always in range
    if (!PW) {
        if (ty < 0 || tx < 0) return 0.0f;
        if (g.sh != 1) {
            if (ty % g.sh != 0) return 0.0f;
            ty /= g.sh;
        }
        if (g.sw != 1) {
            if (tx % g.sw != 0) return 0.0f;
            tx /= g.sw;
        }
        if (ty >= g.oh || tx >= g.ow) return 0.0f;
    }
    return b[ci.base + ri.b + (long long)ty * g.ow + tx];
}

// MODE 0 overwrites y (+ bias); MODE 1 and 2 accumulate into dx / dw.
template <int MODE>
__device__ __forceinline__ void store(float* out, const float* bias, const ConvGeom& g, int m,
                                      int col, float v) {
    if (MODE == 0) {
        int ohw = g.oh * g.ow, n = col / ohw, p = col - n * ohw;
        out[((long long)n * g.k + m) * ohw + p] = v + (bias ? bias[m] : 0.0f);
    } else if (MODE == 1) {
        int hw = g.h * g.w, n = col / hw, q = col - n * hw;
        out[((long long)n * g.c + m) * hw + q] += v;
    } else {
        out[(long long)m * (g.c * g.kh * g.kw) + col] += v;
    }
}

// ---- f32 SIMT engine: 64x64 tile, k-step 16, 256 threads, 4x4 outputs per thread ----
#define SB_M 64
#define SB_N 64
#define SB_K 16

template <int MODE, bool PW>
__device__ void conv_simt(float* out, const float* a, const float* b, const float* bias,
                          ConvGeom g) {
    __shared__ float as[SB_K][SB_M + 4];
    __shared__ float bs[SB_K][SB_N + 4];
    __shared__ RInfo tab[SB_K];
    const int M = gemm_m<MODE>(g), R = gemm_r<MODE>(g);
    const int m0 = blockIdx.y * SB_M, n0 = blockIdx.x * SB_N, tid = threadIdx.x;
    const int ty = tid / 16, tx = tid % 16;
    // Each thread loads A column `ar` and B column `bn` in every k-tile (256 % 16 == 256 % 64 == 0).
    const int ar = tid % SB_K, bn = tid % SB_N;
    const ColInfo ci = col_info<MODE>(g, n0 + bn);
    float acc[4][4] = {};
    for (int r0 = 0; r0 < R; r0 += SB_K) {
        if (tid < SB_K) tab[tid] = r_info<MODE>(g, r0 + tid);
        __syncthreads();
        const RInfo ra = tab[ar];
#pragma unroll
        for (int t = 0; t < 4; ++t) {
            int idx = tid + t * 256;
            int am = idx / SB_K, br = idx / SB_N;
            as[ar][am] = load_a<MODE>(a, g, ra, m0 + am, M);
            bs[br][bn] = load_b<MODE, PW>(b, g, tab[br], ci);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < SB_K; ++kk) {
            float av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) { av[i] = as[kk][ty * 4 + i]; bv[i] = bs[kk][tx * 4 + i]; }
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }
    const int N = gemm_n<MODE>(g);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            int m = m0 + ty * 4 + i, col = n0 + tx * 4 + j;
            if (m < M && col < N) store<MODE>(out, bias, g, m, col, acc[i][j]);
        }
}

// ---- bf16 tensor-core engine: 64x64 tile, k-step 32, 4 warps of 32x32, mma m16n8k16 ----
#define TB_M 64
#define TB_N 64
#define TB_K 32
#define TB_PITCH (TB_K + 8)  // bf16 elements per shared row: 80 bytes, conflict-free fragments

__device__ __forceinline__ unsigned short to_bf16(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

__device__ __forceinline__ void mma_bf16(float* d, const unsigned* a, const unsigned* b) {
#if defined(RINGDET_HOST_EMULATION)  // scripts/host-emulation/emu.h: a C++ model of the warp op
    ringdet_emulate_mma(d, a, b);
#elif __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

template <int MODE, bool PW>
__device__ void conv_tc(float* out, const float* a, const float* b, const float* bias,
                        ConvGeom g) {
    __shared__ __align__(16) unsigned short as[TB_M * TB_PITCH];
    __shared__ __align__(16) unsigned short bs[TB_N * TB_PITCH];
    __shared__ RInfo tab[TB_K];
    const int M = gemm_m<MODE>(g), N = gemm_n<MODE>(g), R = gemm_r<MODE>(g);
    const int m0 = blockIdx.y * TB_M, n0 = blockIdx.x * TB_N, tid = threadIdx.x;
    const int warp = tid >> 5, lane = tid & 31, grp = lane >> 2, tig = lane & 3;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    // Each thread loads A column `ar` and B column `bn` in every k-tile (128 % 32 == 128 % 64 == 0).
    const int ar = tid % TB_K, bn = tid % TB_N;
    const ColInfo ci = col_info<MODE>(g, n0 + bn);
    float acc[2][4][4] = {};
    for (int r0 = 0; r0 < R; r0 += TB_K) {
        if (tid < TB_K) tab[tid] = r_info<MODE>(g, r0 + tid);
        __syncthreads();
        const RInfo ra = tab[ar];
#pragma unroll 4
        for (int t = 0; t < (TB_M * TB_K) / 128; ++t) {
            int idx = tid + t * 128;
            int am = idx / TB_K, br = idx / TB_N;
            as[am * TB_PITCH + ar] = to_bf16(load_a<MODE>(a, g, ra, m0 + am, M));
            bs[bn * TB_PITCH + br] = to_bf16(load_b<MODE, PW>(b, g, tab[br], ci));
        }
        __syncthreads();
#pragma unroll
        for (int k0 = 0; k0 < TB_K; k0 += 16) {
            unsigned af[2][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
                const unsigned short* base = as + (wm + mi * 16 + grp) * TB_PITCH + k0 + tig * 2;
                af[mi][0] = *(const unsigned*)(base);
                af[mi][1] = *(const unsigned*)(base + 8 * TB_PITCH);
                af[mi][2] = *(const unsigned*)(base + 8);
                af[mi][3] = *(const unsigned*)(base + 8 * TB_PITCH + 8);
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
                const unsigned short* base = bs + (wn + ni * 8 + grp) * TB_PITCH + k0 + tig * 2;
                bf[ni][0] = *(const unsigned*)(base);
                bf[ni][1] = *(const unsigned*)(base + 8);
            }
#pragma unroll
            for (int mi = 0; mi < 2; ++mi)
#pragma unroll
                for (int ni = 0; ni < 4; ++ni) mma_bf16(acc[mi][ni], af[mi], bf[ni]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int mi = 0; mi < 2; ++mi)
#pragma unroll
        for (int ni = 0; ni < 4; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                int m = m0 + wm + mi * 16 + grp + (e >> 1) * 8;
                int col = n0 + wn + ni * 8 + tig * 2 + (e & 1);
                if (m < M && col < N) store<MODE>(out, bias, g, m, col, acc[mi][ni][e]);
            }
}

#define ENTRY(name, engine, MODE, PW, threads)                                                  \
    extern "C" __global__ void __launch_bounds__(threads) name(                                 \
        float* __restrict__ out, const float* __restrict__ a, const float* __restrict__ b,      \
        const float* __restrict__ bias, ConvGeom g) {                                           \
        engine<MODE, PW>(out, a, b, bias, g);                                                   \
    }

ENTRY(conv_fwd_simt, conv_simt, 0, false, 256)
ENTRY(conv_fwd_simt_1x1, conv_simt, 0, true, 256)
ENTRY(conv_bwd_data_simt, conv_simt, 1, false, 256)
ENTRY(conv_bwd_data_simt_1x1, conv_simt, 1, true, 256)
ENTRY(conv_bwd_filter_simt, conv_simt, 2, false, 256)
ENTRY(conv_bwd_filter_simt_1x1, conv_simt, 2, true, 256)
ENTRY(conv_fwd_bf16, conv_tc, 0, false, 128)
ENTRY(conv_fwd_bf16_1x1, conv_tc, 0, true, 128)
ENTRY(conv_bwd_data_bf16, conv_tc, 1, false, 128)
ENTRY(conv_bwd_data_bf16_1x1, conv_tc, 1, true, 128)
ENTRY(conv_bwd_filter_bf16, conv_tc, 2, false, 128)
ENTRY(conv_bwd_filter_bf16_1x1, conv_tc, 2, true, 128)

// dbias[k] += sum over n and pixels of dy[n, k, :]: a block per channel.
extern "C" __global__ void conv_bias_grad(float* __restrict__ dbias, const float* __restrict__ dy,
                                          int n, int k, long long ohw) {
    __shared__ float warp_sums[32];
    for (int c = blockIdx.x; c < k; c += gridDim.x) {
        float s = 0.0f;
        for (int i = 0; i < n; ++i)
            for (long long p = threadIdx.x; p < ohw; p += blockDim.x)
                s += dy[((long long)i * k + c) * ohw + p];
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        __syncthreads();
        if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = s;
        __syncthreads();
        if (threadIdx.x == 0) {
            float t = 0.0f;
            for (int w = 0; w < (int)(blockDim.x >> 5); ++w) t += warp_sums[w];
            dbias[c] += t;
        }
    }
}
