// Global average pooling (a warp per plane) and stride-1 max pooling with padding k/2
// (separable: a row pass into the workspace, then a column pass). Max-pool backward scatters
// each output's gradient to the first input of its window equal to it (row-major scan).
#define LOOP(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
                        i += (long long)blockDim.x * gridDim.x)

extern "C" __global__ void global_avg_pool_forward_f32(float* __restrict__ y,
                                                       const float* __restrict__ x,
                                                       long long planes, long long hw, float inv) {
    int lane = threadIdx.x & 31;
    long long warp = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
    long long warps = ((long long)blockDim.x * gridDim.x) >> 5;
    for (long long p = warp; p < planes; p += warps) {
        const float* src = x + p * hw;
        float s = 0.0f;
        for (long long i = lane; i < hw; i += 32) s += src[i];
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (lane == 0) y[p] = s * inv;
    }
}

extern "C" __global__ void global_avg_pool_backward_f32(float* __restrict__ dx,
                                                        const float* __restrict__ dy,
                                                        long long hw, float inv, long long n) {
    LOOP(i, n) dx[i] += dy[i / hw] * inv;
}

// pass 0: rows of x into tmp; pass 1: columns of tmp into y.
extern "C" __global__ void max_pool_pass_f32(float* __restrict__ out, const float* __restrict__ in,
                                             int h, int w, int r, int pass, long long n) {
    LOOP(i, n) {
        long long plane = i / ((long long)h * w);
        int rem = (int)(i - plane * h * w), row = rem / w, col = rem % w;
        const float* src = in + plane * h * w;
        float m = -3.402823466e38f;
        if (pass == 0) {
            int lo = max(col - r, 0), hi = min(col + r + 1, w);
            for (int j = lo; j < hi; ++j) m = fmaxf(m, src[row * w + j]);
        } else {
            int lo = max(row - r, 0), hi = min(row + r + 1, h);
            for (int j = lo; j < hi; ++j) m = fmaxf(m, src[j * w + col]);
        }
        out[i] = m;
    }
}

extern "C" __global__ void max_pool_backward_f32(float* __restrict__ dx,
                                                 const float* __restrict__ dy,
                                                 const float* __restrict__ x,
                                                 const float* __restrict__ y, int h, int w, int r,
                                                 long long n) {
    LOOP(i, n) {
        long long plane = i / ((long long)h * w);
        int rem = (int)(i - plane * h * w), row = rem / w, col = rem % w;
        const float* src = x + plane * h * w;
        float m = y[i];
        int r0 = max(row - r, 0), r1 = min(row + r + 1, h);
        int c0 = max(col - r, 0), c1 = min(col + r + 1, w);
        for (int a = r0; a < r1; ++a)
            for (int b = c0; b < c1; ++b)
                if (src[a * w + b] == m) {
                    atomicAdd(dx + plane * h * w + a * w + b, dy[i]);
                    a = r1;  // first match only
                    break;
                }
    }
}
