// Broadcast add/mul over four NCHW axes. Strides are 0 on axes an operand broadcasts along.
// Forward: one thread per output element. Backward: a thread per element when the gradient has
// the output's shape, else one warp per gradient element summing its broadcast contributors
// (deterministic: no atomics).
struct Bcast {
    long long out[4];  // output shape
    long long sa[4];   // strides of a (or of the gradient's own operand) in output coordinates
    long long sb[4];   // strides of b (or of the other operand)
};

__device__ __forceinline__ void coords(long long i, const long long* shape, long long* c) {
    for (int k = 3; k >= 0; --k) { c[k] = i % shape[k]; i /= shape[k]; }
}
__device__ __forceinline__ long long dot4(const long long* c, const long long* s) {
    return c[0] * s[0] + c[1] * s[1] + c[2] * s[2] + c[3] * s[3];
}

// op 0: add, 1: mul.
extern "C" __global__ void bcast_forward_f32(float* __restrict__ y, const float* __restrict__ a,
                                             const float* __restrict__ b, Bcast g, int op,
                                             long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long c[4];
        coords(i, g.out, c);
        float x = a[dot4(c, g.sa)], z = b[dot4(c, g.sb)];
        y[i] = op == 0 ? x + z : x * z;
    }
}

// d[i] += dy[i] * (other ? other[bcast] : 1) where d has the output's shape.
extern "C" __global__ void bcast_backward_full_f32(float* __restrict__ d,
                                                   const float* __restrict__ dy,
                                                   const float* __restrict__ other, Bcast g,
                                                   long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        float v = dy[i];
        if (other) {
            long long c[4];
            coords(i, g.out, c);
            v *= other[dot4(c, g.sb)];
        }
        d[i] += v;
    }
}

// d (shape dshape, with 1 on broadcast axes) += sum over its contributors. One warp each.
extern "C" __global__ void bcast_backward_reduce_f32(float* __restrict__ d,
                                                     const float* __restrict__ dy,
                                                     const float* __restrict__ other, Bcast g,
                                                     long long dshape0, long long dshape1,
                                                     long long dshape2, long long dshape3,
                                                     long long dn) {
    const long long dshape[4] = {dshape0, dshape1, dshape2, dshape3};
    int lane = threadIdx.x & 31;
    long long warp = (blockIdx.x * (long long)blockDim.x + threadIdx.x) >> 5;
    long long warps = ((long long)blockDim.x * gridDim.x) >> 5;
    long long cnt = 1;
    for (int k = 0; k < 4; ++k)
        if (dshape[k] == 1 && g.out[k] != 1) cnt *= g.out[k];
    for (long long e = warp; e < dn; e += warps) {
        long long base[4];
        coords(e, dshape, base);
        float acc = 0.0f;
        for (long long j = lane; j < cnt; j += 32) {
            long long c[4], rem = j;
            for (int k = 3; k >= 0; --k) {
                if (dshape[k] == 1 && g.out[k] != 1) { c[k] = rem % g.out[k]; rem /= g.out[k]; }
                else c[k] = base[k];
            }
            long long oi = ((c[0] * g.out[1] + c[1]) * g.out[2] + c[2]) * g.out[3] + c[3];
            float v = dy[oi];
            if (other) v *= other[dot4(c, g.sb)];
            acc += v;
        }
        for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
        if (lane == 0) d[e] += acc;
    }
}
