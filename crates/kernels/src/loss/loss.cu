// PP-YOLOE's losses: BCE (elementwise), varifocal, GIoU and DFL. A scalar loss is a sum of
// per-element terms: each block writes its partial sum (double) and `finish_sum` adds the
// partials in a fixed order, so the result is deterministic.
#define LOOP(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
                        i += (long long)blockDim.x * gridDim.x)

__device__ __forceinline__ float bce(float p, float q) {
    return -(q * fmaxf(logf(p), -100.0f) + (1.0f - q) * fmaxf(logf(1.0f - p), -100.0f));
}
__device__ __forceinline__ float bce_grad(float p, float q) {
    return (p - q) / fmaxf(p * (1.0f - p), 1e-12f);
}

// Sum of v over the block (blockDim.x a multiple of 32, at most 1024); valid in thread 0.
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

extern "C" __global__ void finish_sum(float* __restrict__ out, const double* __restrict__ partials,
                                      int nparts, double normalizer) {
    double s = 0.0;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) s += partials[i];
    s = block_sum(s);
    if (threadIdx.x == 0) out[0] = (float)(s / normalizer);
}

extern "C" __global__ void bce_forward_f32(float* __restrict__ loss, const float* __restrict__ pred,
                                           const float* __restrict__ target, long long n) {
    LOOP(i, n) loss[i] = bce(pred[i], target[i]);
}

extern "C" __global__ void bce_backward_f32(float* __restrict__ dpred,
                                            const float* __restrict__ dloss,
                                            const float* __restrict__ pred,
                                            const float* __restrict__ target, long long n) {
    LOOP(i, n) dpred[i] += dloss[i] * bce_grad(pred[i], target[i]);
}

extern "C" __global__ void varifocal_partial_f32(double* __restrict__ partials,
                                                 const float* __restrict__ pred,
                                                 const float* __restrict__ target,
                                                 const float* __restrict__ label, float alpha,
                                                 float gamma, long long n) {
    double acc = 0.0;
    LOOP(i, n) {
        float x = pred[i], q = target[i], y = label[i];
        float w = alpha * powf(x, gamma) * (1.0f - y) + q * y;
        acc += (double)(w * bce(x, q));
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

extern "C" __global__ void varifocal_backward_f32(float* __restrict__ dpred,
                                                  const float* __restrict__ pred,
                                                  const float* __restrict__ target,
                                                  const float* __restrict__ label, float alpha,
                                                  float gamma, float scale, long long n) {
    LOOP(i, n) {
        float x = pred[i], q = target[i], y = label[i], neg = 1.0f - y;
        float w = alpha * powf(x, gamma) * neg + q * y;
        float dw = alpha * gamma * powf(x, gamma - 1.0f) * neg;
        dpred[i] += scale * (dw * bce(x, q) + w * bce_grad(x, q));
    }
}

// 1 - GIoU(b, g) and its gradient with respect to b (Paddle's eps 1e-10 and min/max rules).
__device__ float giou_box(const float* b, const float* g, float* grad) {
    const float eps = 1e-10f;
    float x1 = b[0], y1 = b[1], x2 = b[2], y2 = b[3];
    float gx1 = g[0], gy1 = g[1], gx2 = g[2], gy2 = g[3];
    float ix1 = fmaxf(x1, gx1), iy1 = fmaxf(y1, gy1), ix2 = fminf(x2, gx2), iy2 = fminf(y2, gy2);
    float iw_raw = ix2 - ix1, ih_raw = iy2 - iy1;
    float iw = fmaxf(iw_raw, 0.0f), ih = fmaxf(ih_raw, 0.0f);
    float inter = iw * ih;
    float w1 = x2 - x1, h1 = y2 - y1;
    float area1 = w1 * h1, area2 = (gx2 - gx1) * (gy2 - gy1);
    float uni = area1 + area2 - inter + eps;
    float iou = inter / uni;
    float cw = fmaxf(x2, gx2) - fminf(x1, gx1), ch = fmaxf(y2, gy2) - fminf(y1, gy1);
    float area_c = cw * ch + eps;
    float loss = 1.0f - (iou - (area_c - uni) / area_c);
    if (grad) {
        float d_union = inter / (uni * uni) - 1.0f / area_c;
        float d_inter = -1.0f / uni - d_union;
        float d_c = uni / (area_c * area_c);
        float d_iw = iw_raw > 0.0f ? d_inter * ih : 0.0f;
        float d_ih = ih_raw > 0.0f ? d_inter * iw : 0.0f;
        grad[0] = -d_union * h1 - d_iw * (x1 > gx1) - d_c * ch * (x1 < gx1);
        grad[2] = d_union * h1 + d_iw * (x2 < gx2) + d_c * ch * (x2 > gx2);
        grad[1] = -d_union * w1 - d_ih * (y1 > gy1) - d_c * cw * (y1 < gy1);
        grad[3] = d_union * w1 + d_ih * (y2 < gy2) + d_c * cw * (y2 > gy2);
    }
    return loss;
}

extern "C" __global__ void giou_per_box_f32(float* __restrict__ loss, const float* __restrict__ pred,
                                            const float* __restrict__ target, long long n) {
    LOOP(i, n) loss[i] = giou_box(pred + 4 * i, target + 4 * i, nullptr);
}

extern "C" __global__ void giou_partial_f32(double* __restrict__ partials,
                                            const float* __restrict__ pred,
                                            const float* __restrict__ target,
                                            const float* __restrict__ weight, long long n) {
    double acc = 0.0;
    LOOP(i, n) acc += (double)(giou_box(pred + 4 * i, target + 4 * i, nullptr) * weight[i]);
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

extern "C" __global__ void giou_backward_f32(float* __restrict__ dpred,
                                             const float* __restrict__ pred,
                                             const float* __restrict__ target,
                                             const float* __restrict__ weight, float scale,
                                             long long n) {
    LOOP(i, n) {
        float g[4];
        giou_box(pred + 4 * i, target + 4 * i, g);
        float k = scale * weight[i];
        for (int j = 0; j < 4; ++j) dpred[4 * i + j] += k * g[j];
    }
}

extern "C" __global__ void dfl_targets_f32(float* __restrict__ target,
                                           const float* __restrict__ anchor_points,
                                           const float* __restrict__ boxes, float hi,
                                           long long n) {
    LOOP(i, n) {
        float ax = anchor_points[2 * i], ay = anchor_points[2 * i + 1];
        const float* b = boxes + 4 * i;
        float t[4] = {ax - b[0], ay - b[1], b[2] - ax, b[3] - ay};
        for (int j = 0; j < 4; ++j) target[4 * i + j] = fminf(fmaxf(t[j], 0.0f), hi);
    }
}

// Splits a target distance into (left bin, weight of left, weight of right); the bin is clamped
// into [0, bins - 2] so that a bad target cannot index out of bounds.
__device__ __forceinline__ int dfl_split(float t, int bins, float* wl, float* wr) {
    float left = floorf(t);
    *wl = left + 1.0f - t;
    *wr = 1.0f - *wl;
    return min(max((int)left, 0), bins - 2);
}
__device__ float lse(const float* l, int bins) {
    float m = -3.402823466e38f, s = 0.0f;
    for (int k = 0; k < bins; ++k) m = fmaxf(m, l[k]);
    for (int k = 0; k < bins; ++k) s += expf(l[k] - m);
    return m + logf(s);
}

extern "C" __global__ void dfl_loss_partial_f32(double* __restrict__ partials,
                                                const float* __restrict__ logits,
                                                const float* __restrict__ target,
                                                const float* __restrict__ weight, int bins,
                                                long long n) {
    double acc = 0.0;
    LOOP(a, n) {
        float side_sum = 0.0f;
        for (int s = 0; s < 4; ++s) {
            const float* l = logits + (4 * a + s) * bins;
            float wl, wr;
            int left = dfl_split(target[4 * a + s], bins, &wl, &wr);
            float z = lse(l, bins);
            side_sum += (z - l[left]) * wl + (z - l[left + 1]) * wr;
        }
        acc += (double)(side_sum / 4.0f * weight[a]);
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// One thread per (anchor, side).
extern "C" __global__ void dfl_loss_backward_f32(float* __restrict__ dlogits,
                                                 const float* __restrict__ logits,
                                                 const float* __restrict__ target,
                                                 const float* __restrict__ weight, float scale,
                                                 int bins, long long n_sides) {
    LOOP(i, n_sides) {
        const float* l = logits + i * bins;
        float* d = dlogits + i * bins;
        float wl, wr;
        int left = dfl_split(target[i], bins, &wl, &wr);
        float z = lse(l, bins), k = scale * weight[i / 4];
        for (int j = 0; j < bins; ++j) {
            float g = expf(l[j] - z) * (wl + wr);
            if (j == left) g -= wl;
            if (j == left + 1) g -= wr;
            d[j] += k * g;
        }
    }
}
