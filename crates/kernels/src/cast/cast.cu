// bf16 <-> f32 on raw 16-bit patterns (no header needed): round to nearest even, NaN kept quiet.
#define LOOP(i, n) for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); \
                        i += (long long)blockDim.x * gridDim.x)

__device__ __forceinline__ unsigned short f32_to_bf16_bits(float f) {
    unsigned int u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (unsigned short)(u >> 16);
}

extern "C" __global__ void f32_to_bf16(unsigned short* __restrict__ out,
                                       const float* __restrict__ x, long long n) {
    LOOP(i, n) out[i] = f32_to_bf16_bits(x[i]);
}

extern "C" __global__ void bf16_to_f32(float* __restrict__ out,
                                       const unsigned short* __restrict__ x, long long n) {
    LOOP(i, n) out[i] = __uint_as_float(((unsigned int)x[i]) << 16);
}
