// The 12 conv kernels of crates/kernels/src/conv/conv.cu run on the CPU (emu.h) against a
// float64 direct convolution: implicit-GEMM gathers, tiling and mma fragment plumbing.
#include "emu.h"
#include "../../crates/kernels/src/conv/conv.cu"

using Kernel = void (*)(float*, const float*, const float*, const float*, ConvGeom);

void run(Kernel k, unsigned gx, unsigned gy, unsigned threads, float* out, const float* a,
         const float* b, const float* bias, ConvGeom g) {
    launch(gx, gy, threads, [=] { k(out, a, b, bias, g); });
}

double rel_l2(const std::vector<float>& got, const std::vector<double>& want) {
    return rel_l2(got.data(), want.data(), got.size());
}

int main() {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    // n, c, k, h, w, kh, kw, stride, pad
    int cases[][9] = {{2, 3, 5, 9, 7, 3, 3, 1, 1},   {3, 17, 33, 13, 11, 3, 3, 2, 1},
                      {2, 67, 45, 15, 17, 1, 1, 1, 0}, {2, 29, 70, 19, 21, 1, 1, 2, 0},
                      {1, 5, 7, 8, 9, 5, 5, 1, 2},     {2, 7, 9, 11, 13, 3, 1, 1, 0},
                      {1, 1, 1, 1, 1, 1, 1, 1, 0}};
    int failures = 0;
    for (auto& cs : cases) {
        ConvGeom g{cs[0], cs[1], cs[2], cs[3], cs[4], cs[5], cs[6], cs[7], cs[7],
                   cs[8], cs[6] == 1 && cs[5] == 3 ? 0 : cs[8], 0, 0};
        if (cs[5] == 3 && cs[6] == 1) { g.ph = 1; g.pw = 0; }
        g.oh = (g.h + 2 * g.ph - g.kh) / g.sh + 1;
        g.ow = (g.w + 2 * g.pw - g.kw) / g.sw + 1;
        bool pw = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
        size_t nx = (size_t)g.n * g.c * g.h * g.w, nw = (size_t)g.k * g.c * g.kh * g.kw,
               ny = (size_t)g.n * g.k * g.oh * g.ow;
        std::vector<float> x(nx), w(nw), dy(ny), bias(g.k);
        for (auto* v : {&x, &w, &dy, &bias}) for (auto& e : *v) e = nd(rng);
        std::vector<double> y_ref(ny), dx_ref(nx, 0.0), dw_ref(nw, 0.0);
        for (int n = 0; n < g.n; ++n) for (int k = 0; k < g.k; ++k)
        for (int oy = 0; oy < g.oh; ++oy) for (int ox = 0; ox < g.ow; ++ox) {
            size_t yi = (((size_t)n * g.k + k) * g.oh + oy) * g.ow + ox;
            double s = bias[k];
            for (int c = 0; c < g.c; ++c) for (int i = 0; i < g.kh; ++i) for (int j = 0; j < g.kw; ++j) {
                int iy = oy * g.sh + i - g.ph, ix = ox * g.sw + j - g.pw;
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                size_t xi = (((size_t)n * g.c + c) * g.h + iy) * g.w + ix;
                size_t wi = (((size_t)k * g.c + c) * g.kh + i) * g.kw + j;
                s += (double)w[wi] * x[xi];
                dx_ref[xi] += (double)w[wi] * dy[yi];
                dw_ref[wi] += (double)dy[yi] * x[xi];
            }
            y_ref[yi] = s;
        }
        for (int tc = 0; tc < 2; ++tc) {
            unsigned threads = tc ? 128 : 256;
            Kernel fwd = tc ? (pw ? conv_fwd_bf16_1x1 : conv_fwd_bf16) : (pw ? conv_fwd_simt_1x1 : conv_fwd_simt);
            Kernel bwd_d = tc ? (pw ? conv_bwd_data_bf16_1x1 : conv_bwd_data_bf16) : (pw ? conv_bwd_data_simt_1x1 : conv_bwd_data_simt);
            Kernel bwd_f = tc ? (pw ? conv_bwd_filter_bf16_1x1 : conv_bwd_filter_bf16) : (pw ? conv_bwd_filter_simt_1x1 : conv_bwd_filter_simt);
            double tol = tc ? 1e-2 : 1e-5;
            std::vector<float> y(ny, NAN), dx(nx, 0.0f), dw(nw, 0.0f);
            auto ceil = [](int a, int b) { return (unsigned)((a + b - 1) / b); };
            run(fwd, ceil(g.n * g.oh * g.ow, 64), ceil(g.k, 64), threads, y.data(), w.data(), x.data(), bias.data(), g);
            run(bwd_d, ceil(g.n * g.h * g.w, 64), ceil(g.c, 64), threads, dx.data(), w.data(), dy.data(), nullptr, g);
            run(bwd_f, ceil(g.c * g.kh * g.kw, 64), ceil(g.k, 64), threads, dw.data(), dy.data(), x.data(), nullptr, g);
            double e[3] = {rel_l2(y, y_ref), rel_l2(dx, dx_ref), rel_l2(dw, dw_ref)};
            bool ok = e[0] <= tol && e[1] <= tol && e[2] <= tol;
            failures += !ok;
            std::printf("%s %s n%d c%d k%d %dx%d k%dx%d s%d p%d%s: fwd %.2e bwd-data %.2e bwd-filter %.2e\n",
                        ok ? "ok  " : "FAIL", tc ? "bf16-mma" : "f32-simt", g.n, g.c, g.k, g.h, g.w,
                        g.kh, g.kw, g.sh, g.ph, pw ? " (1x1 path)" : "", e[0], e[1], e[2]);
        }
    }
    std::printf("%d failures\n", failures);
    return failures != 0;
}
