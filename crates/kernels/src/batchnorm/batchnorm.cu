// Batch norm split for SyncBN: per-channel sums (a block per channel, f64 accumulation), a
// per-channel finish (C threads) and one elementwise pass. x is [N, C, S].
__device__ double block_sum(double v) {
    __shared__ double warp_sums[32];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    v = threadIdx.x < (blockDim.x >> 5) ? warp_sums[threadIdx.x] : 0.0;
    if (warp == 0)
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// stats = [sum x (C), sum x^2 (C)].
extern "C" __global__ void bn_stats_forward_f32(float* __restrict__ stats,
                                                const float* __restrict__ x, long long batch,
                                                long long channels, long long spatial) {
    for (long long c = blockIdx.x; c < channels; c += gridDim.x) {
        double s = 0.0, q = 0.0;
        for (long long n = 0; n < batch; ++n) {
            const float* plane = x + (n * channels + c) * spatial;
            for (long long i = threadIdx.x; i < spatial; i += blockDim.x) {
                double v = plane[i];
                s += v;
                q += v * v;
            }
        }
        s = block_sum(s);
        q = block_sum(q);
        if (threadIdx.x == 0) { stats[c] = (float)s; stats[channels + c] = (float)q; }
    }
}

// saved = [mean (C), 1/sqrt(var + eps) (C)]; running statistics updated (Paddle's momentum).
extern "C" __global__ void bn_finish_stats_f32(float* __restrict__ saved,
                                               float* __restrict__ running_mean,
                                               float* __restrict__ running_var,
                                               const float* __restrict__ stats, long long channels,
                                               double inv_count, double eps, double momentum) {
    long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c >= channels) return;
    double mean = (double)stats[c] * inv_count;
    double var = fmax((double)stats[channels + c] * inv_count - mean * mean, 0.0);
    saved[c] = (float)mean;
    saved[channels + c] = (float)(1.0 / sqrt(var + eps));
    running_mean[c] = (float)(momentum * (double)running_mean[c] + (1.0 - momentum) * mean);
    running_var[c] = (float)(momentum * (double)running_var[c] + (1.0 - momentum) * var);
}

// y = x*scale + shift; training: scale = gamma*invstd, shift = beta - mean*scale;
// inference (train == 0): scale = gamma/sqrt(var + eps), shift = beta - mean*scale, with
// (mean, var) from `a` and `b`.
extern "C" __global__ void bn_normalise_f32(float* __restrict__ y, const float* __restrict__ x,
                                            const float* __restrict__ gamma,
                                            const float* __restrict__ beta,
                                            const float* __restrict__ a,
                                            const float* __restrict__ b, int train, float eps,
                                            long long channels, long long spatial, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long c = (i / spatial) % channels;
        float scale = train ? gamma[c] * b[c] : gamma[c] / sqrtf(b[c] + eps);
        float shift = beta[c] - a[c] * scale;
        y[i] = x[i] * scale + shift;
    }
}

// dstats = [sum dy (C), sum dy*xhat (C)] with saved = [mean, invstd].
extern "C" __global__ void bn_stats_backward_f32(float* __restrict__ dstats,
                                                 const float* __restrict__ dy,
                                                 const float* __restrict__ x,
                                                 const float* __restrict__ saved, long long batch,
                                                 long long channels, long long spatial) {
    for (long long c = blockIdx.x; c < channels; c += gridDim.x) {
        double mean = saved[c], invstd = saved[channels + c];
        double s = 0.0, sx = 0.0;
        for (long long n = 0; n < batch; ++n) {
            long long off = (n * channels + c) * spatial;
            for (long long i = threadIdx.x; i < spatial; i += blockDim.x) {
                double g = dy[off + i];
                s += g;
                sx += g * ((double)x[off + i] - mean);
            }
        }
        s = block_sum(s);
        sx = block_sum(sx);
        if (threadIdx.x == 0) { dstats[c] = (float)s; dstats[channels + c] = (float)(sx * invstd); }
    }
}

extern "C" __global__ void bn_param_grads_f32(float* __restrict__ dgamma, float* __restrict__ dbeta,
                                              const float* __restrict__ dstats_local,
                                              long long channels) {
    long long c = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (c >= channels) return;
    dbeta[c] += dstats_local[c];
    dgamma[c] += dstats_local[channels + c];
}

// dx = gamma*invstd*(dy - sum dy/M - xhat * sum dy*xhat/M), combined sums in dstats (dx overwritten).
extern "C" __global__ void bn_backward_dx_f32(float* __restrict__ dx, const float* __restrict__ dy,
                                              const float* __restrict__ x,
                                              const float* __restrict__ saved,
                                              const float* __restrict__ gamma,
                                              const float* __restrict__ dstats, float inv_m,
                                              long long channels, long long spatial, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long c = (i / spatial) % channels;
        float mean = saved[c], invstd = saved[channels + c];
        float k = gamma[c] * invstd, mdy = dstats[c] * inv_m, mdyx = dstats[channels + c] * inv_m;
        float xhat = (x[i] - mean) * invstd;
        dx[i] = k * (dy[i] - mdy - xhat * mdyx);
    }
}

// ---- fused batch norm + SiLU: z = BN(x) is never stored; the backward recomputes it ----
__device__ __forceinline__ float sigm(float v) { return 1.0f / (1.0f + expf(-v)); }

// y = silu(x*scale + shift), scale = gamma*invstd, shift = beta - mean*scale.
extern "C" __global__ void bn_silu_normalise_f32(float* __restrict__ y, const float* __restrict__ x,
                                                 const float* __restrict__ gamma,
                                                 const float* __restrict__ beta,
                                                 const float* __restrict__ saved,
                                                 long long channels, long long spatial,
                                                 long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long c = (i / spatial) % channels;
        float scale = gamma[c] * saved[channels + c], shift = beta[c] - saved[c] * scale;
        float z = x[i] * scale + shift;
        y[i] = z * sigm(z);
    }
}

// dz = dy * silu'(z) with z recomputed from x.
__device__ __forceinline__ float silu_grad_at(float dy, float x, float scale, float shift) {
    float z = x * scale + shift, s = sigm(z);
    return dy * s * (1.0f + z * (1.0f - s));
}

// dstats = [sum dz, sum dz*xhat] per channel.
extern "C" __global__ void bn_silu_stats_backward_f32(float* __restrict__ dstats,
                                                      const float* __restrict__ dy,
                                                      const float* __restrict__ x,
                                                      const float* __restrict__ saved,
                                                      const float* __restrict__ gamma,
                                                      const float* __restrict__ beta,
                                                      long long batch, long long channels,
                                                      long long spatial) {
    for (long long c = blockIdx.x; c < channels; c += gridDim.x) {
        float invstd = saved[channels + c], scale = gamma[c] * invstd;
        float shift = beta[c] - saved[c] * scale;
        double mean = saved[c], s = 0.0, sx = 0.0;
        for (long long n = 0; n < batch; ++n) {
            long long off = (n * channels + c) * spatial;
            for (long long i = threadIdx.x; i < spatial; i += blockDim.x) {
                float xv = x[off + i];
                double g = silu_grad_at(dy[off + i], xv, scale, shift);
                s += g;
                sx += g * ((double)xv - mean);
            }
        }
        s = block_sum(s);
        sx = block_sum(sx);
        if (threadIdx.x == 0) { dstats[c] = (float)s; dstats[channels + c] = (float)(sx * (double)invstd); }
    }
}

extern "C" __global__ void bn_silu_backward_dx_f32(float* __restrict__ dx,
                                                   const float* __restrict__ dy,
                                                   const float* __restrict__ x,
                                                   const float* __restrict__ saved,
                                                   const float* __restrict__ gamma,
                                                   const float* __restrict__ beta,
                                                   const float* __restrict__ dstats, float inv_m,
                                                   long long channels, long long spatial,
                                                   long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long c = (i / spatial) % channels;
        float mean = saved[c], invstd = saved[channels + c], scale = gamma[c] * invstd;
        float shift = beta[c] - mean * scale;
        float g = silu_grad_at(dy[i], x[i], scale, shift);
        float mdy = dstats[c] * inv_m, mdyx = dstats[channels + c] * inv_m;
        float xhat = (x[i] - mean) * invstd;
        dx[i] = scale * (g - mdy - xhat * mdyx);
    }
}
