// The training update over flat buffers: SGD with momentum and masked L2, AdamW, EMA update,
// EMA apply.
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

// Paddle's AdamW: decoupled decay first, then the moments, then the bias-corrected step
// (lr_t = lr*sqrt(1-b2^t)/(1-b1^t), eps_t = eps*sqrt(1-b2^t), computed on the host).
extern "C" __global__ void adamw_step_f32(float* __restrict__ params, float* __restrict__ moment1,
                                          float* __restrict__ moment2,
                                          const float* __restrict__ grads,
                                          const unsigned char* __restrict__ decay_mask,
                                          float keep, float beta1, float beta2, float lr_t,
                                          float eps_t, long long n) {
    LOOP(i, n) {
        float th = params[i], g = grads[i];
        if (decay_mask[i] != 0) th = th * keep;
        float m = beta1 * moment1[i] + (1.0f - beta1) * g;
        float v = beta2 * moment2[i] + (1.0f - beta2) * g * g;
        moment1[i] = m;
        moment2[i] = v;
        params[i] = th - lr_t * m / (sqrtf(v) + eps_t);
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
