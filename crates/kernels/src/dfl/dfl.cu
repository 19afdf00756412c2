// DFL decode over [groups = outer*sides, bins, inner]: one thread per (group, inner) column,
// looping over the bins (17 for PP-YOLOE). Forward overwrites; backward accumulates.
#define COLUMNS(g, i, groups, inner)                                                       \
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x,                   \
                   g = t / (inner), i = t - g * (inner);                                   \
         t < (groups) * (inner); t += (long long)blockDim.x * gridDim.x,                   \
                   g = t / (inner), i = t - g * (inner))

extern "C" __global__ void softmax_bins_forward_f32(float* __restrict__ prob,
                                                    const float* __restrict__ logits,
                                                    long long groups, int bins, long long inner) {
    COLUMNS(g, i, groups, inner) {
        long long base = g * bins * inner + i;
        float m = -3.402823466e38f;
        for (int k = 0; k < bins; ++k) m = fmaxf(m, logits[base + k * inner]);
        float s = 0.0f;
        for (int k = 0; k < bins; ++k) {
            float e = expf(logits[base + k * inner] - m);
            prob[base + k * inner] = e;
            s += e;
        }
        float inv = 1.0f / s;
        for (int k = 0; k < bins; ++k) prob[base + k * inner] *= inv;
    }
}

extern "C" __global__ void softmax_bins_backward_f32(float* __restrict__ dlogits,
                                                     const float* __restrict__ dprob,
                                                     const float* __restrict__ prob,
                                                     long long groups, int bins, long long inner) {
    COLUMNS(g, i, groups, inner) {
        long long base = g * bins * inner + i;
        float dot = 0.0f;
        for (int k = 0; k < bins; ++k) dot += prob[base + k * inner] * dprob[base + k * inner];
        for (int k = 0; k < bins; ++k) {
            long long j = base + k * inner;
            dlogits[j] += prob[j] * (dprob[j] - dot);
        }
    }
}

extern "C" __global__ void dfl_integral_forward_f32(float* __restrict__ dist,
                                                    const float* __restrict__ prob,
                                                    long long groups, int bins, long long inner) {
    COLUMNS(g, i, groups, inner) {
        long long base = g * bins * inner + i;
        float s = 0.0f;
        for (int k = 0; k < bins; ++k) s += (float)k * prob[base + k * inner];
        dist[g * inner + i] = s;
    }
}

extern "C" __global__ void dfl_integral_backward_f32(float* __restrict__ dprob,
                                                     const float* __restrict__ ddist,
                                                     long long groups, int bins, long long inner) {
    COLUMNS(g, i, groups, inner) {
        long long base = g * bins * inner + i;
        float d = ddist[g * inner + i];
        for (int k = 0; k < bins; ++k) dprob[base + k * inner] += (float)k * d;
    }
}

extern "C" __global__ void dfl_decode_backward_f32(float* __restrict__ dlogits,
                                                   const float* __restrict__ ddist,
                                                   const float* __restrict__ prob,
                                                   const float* __restrict__ dist,
                                                   long long groups, int bins, long long inner) {
    COLUMNS(g, i, groups, inner) {
        long long base = g * bins * inner + i;
        float dd = ddist[g * inner + i], d = dist[g * inner + i];
        for (int k = 0; k < bins; ++k) {
            long long j = base + k * inner;
            dlogits[j] += prob[j] * ((float)k - d) * dd;
        }
    }
}
