// The training update over flat buffers: SGD with momentum and masked L2, EMA update, EMA apply.
#define LOOP(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
                        i += (long long)blockDim.x * gridDim.x)

extern "C" __global__ void sgd_momentum_step_f32(float* __restrict__ params,
                                                 float* __restrict__ velocity,
                                                 const float* __restrict__ grads,
                                                 const unsigned char* __restrict__ decay_mask,
                                                 float lr, float momentum, float weight_decay,
                                                 long long n) {
    LOOP(i, n) {
        float th = params[i], g = grads[i];
        if (decay_mask[i] != 0) g = g + weight_decay * th;
        float v = momentum * velocity[i] + g;
        velocity[i] = v;
        params[i] = th - lr * v;
    }
}

extern "C" __global__ void ema_update_f32(float* __restrict__ ema, const float* __restrict__ params,
                                          float decay, float one_minus_decay, long long n) {
    LOOP(i, n) ema[i] = decay * ema[i] + one_minus_decay * params[i];
}

extern "C" __global__ void scale_into_f32(float* __restrict__ out, const float* __restrict__ x,
                                          float s, long long n) {
    LOOP(i, n) out[i] = x[i] * s;
}
