// out[i] = alpha * x[i], grid-stride loop.
extern "C" __global__ void scale_f32(float* __restrict__ out, const float* __restrict__ x,
                                     float alpha, unsigned long long n) {
    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < n;
         i += (unsigned long long)blockDim.x * gridDim.x) {
        out[i] = alpha * x[i];
    }
}
