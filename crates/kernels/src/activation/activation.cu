// Pointwise activations. Forward overwrites y; backward accumulates into dx. Grid-stride loops.
#define LOOP(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
                        i += (long long)blockDim.x * gridDim.x)

__device__ __forceinline__ float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

extern "C" __global__ void silu_forward_f32(float* __restrict__ y, const float* __restrict__ x,
                                            long long n) {
    LOOP(i, n) { float v = x[i]; y[i] = v * sigm(v); }
}

extern "C" __global__ void silu_backward_f32(float* __restrict__ dx, const float* __restrict__ dy,
                                             const float* __restrict__ x, long long n) {
    LOOP(i, n) {
        float v = x[i], s = sigm(v);
        dx[i] += dy[i] * s * (1.0f + v * (1.0f - s));
    }
}

extern "C" __global__ void sigmoid_forward_f32(float* __restrict__ y, const float* __restrict__ x,
                                               long long n) {
    LOOP(i, n) y[i] = sigm(x[i]);
}

extern "C" __global__ void sigmoid_backward_f32(float* __restrict__ dx,
                                                const float* __restrict__ dy,
                                                const float* __restrict__ y, long long n) {
    LOOP(i, n) { float s = y[i]; dx[i] += dy[i] * s * (1.0f - s); }
}

extern "C" __global__ void hardsigmoid_forward_f32(float* __restrict__ y,
                                                   const float* __restrict__ x, float slope,
                                                   float offset, long long n) {
    LOOP(i, n) y[i] = fminf(fmaxf(x[i] * slope + offset, 0.0f), 1.0f);
}

extern "C" __global__ void hardsigmoid_backward_f32(float* __restrict__ dx,
                                                    const float* __restrict__ dy,
                                                    const float* __restrict__ y, float slope,
                                                    long long n) {
    LOOP(i, n) {
        float s = y[i];
        if (s > 0.0f && s < 1.0f) dx[i] += dy[i] * slope;
    }
}
