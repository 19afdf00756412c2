// The kernels with warp shuffles, block reductions and atomics (batch norm, broadcast
// reduction, loss partial sums, pooling) run on the CPU (emu.h) against float64 references.
#include "emu.h"
namespace bn {
#include "../../crates/kernels/src/batchnorm/batchnorm.cu"
}
namespace ew {
#include "../../crates/kernels/src/elementwise/elementwise.cu"
}
namespace loss {
#include "../../crates/kernels/src/loss/loss.cu"
}
namespace pool {
#include "../../crates/kernels/src/pool/pool.cu"
}
#undef LOOP
using std::vector;

std::mt19937 rng(11);
vector<float> normal(size_t n, float scale = 1, float shift = 0) {
    std::normal_distribution<float> d;
    vector<float> v(n);
    for (auto& e : v) e = d(rng) * scale + shift;
    return v;
}
vector<float> uniform(size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    vector<float> v(n);
    for (auto& e : v) e = d(rng);
    return v;
}

int batchnorm() {
    int fails = 0;
    for (auto [N, C, S] : {std::tuple{3, 5, 37}, {2, 7, 301}}) {
        size_t n = (size_t)N * C * S;
        auto x = normal(n, 2, 0.5), dy = normal(n), gamma = uniform(C, 0.5, 1.5), beta = normal(C);
        vector<float> stats(2 * C, NAN), saved(2 * C, NAN), rm(C, 0), rv(C, 1), y(n, NAN), dst(2 * C, NAN);
        launch(2, 1, 64, [&] { bn::bn_stats_forward_f32(stats.data(), x.data(), N, C, S); });
        vector<double> mean(C, 0), var(C, 0), ws(2 * C, 0), wsaved(2 * C), wy(n), wd(2 * C, 0);
        for (int c = 0; c < C; ++c) {
            double s = 0, q = 0;
            for (int i = 0; i < N; ++i) for (int j = 0; j < S; ++j) { double v = x[((size_t)i * C + c) * S + j]; s += v; q += v * v; }
            ws[c] = s; ws[C + c] = q; mean[c] = s / (N * S); var[c] = q / (N * S) - mean[c] * mean[c];
            wsaved[c] = mean[c]; wsaved[C + c] = 1 / std::sqrt(var[c] + 1e-5);
        }
        fails += report("bn stats forward", rel_l2(stats.data(), ws.data(), 2 * C), 1e-6);
        launch(1, 1, 32, [&] { bn::bn_finish_stats_f32(saved.data(), rm.data(), rv.data(), stats.data(), C, 1.0 / (N * S), 1e-5, 0.9); });
        fails += report("bn finish (saved)", rel_l2(saved.data(), wsaved.data(), 2 * C), 1e-5);
        launch(3, 1, 64, [&] { bn::bn_normalise_f32(y.data(), x.data(), gamma.data(), beta.data(), saved.data(), saved.data() + C, 1, 1e-5f, C, S, n); });
        for (size_t i = 0; i < n; ++i) { int c = (i / S) % C; wy[i] = (x[i] - mean[c]) * wsaved[C + c] * gamma[c] + beta[c]; }
        fails += report("bn normalise", rel_l2(y.data(), wy.data(), n), 1e-5);
        launch(2, 1, 64, [&] { bn::bn_stats_backward_f32(dst.data(), dy.data(), x.data(), saved.data(), N, C, S); });
        for (size_t i = 0; i < n; ++i) { int c = (i / S) % C; wd[c] += dy[i]; wd[C + c] += dy[i] * (x[i] - mean[c]) * wsaved[C + c]; }
        fails += report("bn stats backward", rel_l2(dst.data(), wd.data(), 2 * C), 1e-5);
        vector<float> dx(n, 0.0f);
        launch(3, 1, 64, [&] { bn::bn_backward_dx_f32(dx.data(), dy.data(), x.data(), saved.data(), gamma.data(), dst.data(), 1.0f / (N * S), C, S, n); });
        vector<double> wdx(n);
        for (size_t i = 0; i < n; ++i) {
            int c = (i / S) % C; double xh = (x[i] - mean[c]) * wsaved[C + c];
            wdx[i] = gamma[c] * wsaved[C + c] * (dy[i] - wd[c] / (N * S) - xh * wd[C + c] / (N * S));
        }
        fails += report("bn backward dx", rel_l2(dx.data(), wdx.data(), n), 1e-5);
        // fused BN + SiLU forward and stats backward
        launch(3, 1, 64, [&] { bn::bn_silu_normalise_f32(y.data(), x.data(), gamma.data(), beta.data(), saved.data(), C, S, n); });
        vector<double> wz(n), wfy(n), wfd(2 * C, 0);
        for (size_t i = 0; i < n; ++i) { double z = wy[i], s = 1 / (1 + std::exp(-z)); wz[i] = z; wfy[i] = z * s; }
        fails += report("bn+silu forward", rel_l2(y.data(), wfy.data(), n), 1e-5);
        launch(2, 1, 64, [&] { bn::bn_silu_stats_backward_f32(dst.data(), dy.data(), x.data(), saved.data(), gamma.data(), beta.data(), N, C, S); });
        for (size_t i = 0; i < n; ++i) {
            int c = (i / S) % C; double z = wz[i], s = 1 / (1 + std::exp(-z)), g = dy[i] * s * (1 + z * (1 - s));
            wfd[c] += g; wfd[C + c] += g * (x[i] - mean[c]) * wsaved[C + c];
        }
        fails += report("bn+silu stats backward", rel_l2(dst.data(), wfd.data(), 2 * C), 1e-5);
    }
    return fails;
}

int broadcast() {
    int fails = 0;
    long long out[4] = {3, 5, 7, 9}, ds[4] = {1, 5, 1, 9};
    size_t no = 3 * 5 * 7 * 9, nd = 5 * 9;
    auto dy = normal(no), other = normal(no);
    ew::Bcast g{{3, 5, 7, 9}, {0, 9, 0, 1}, {315, 63, 9, 1}};
    vector<float> d(nd, 0.0f);
    launch(2, 1, 64, [&] { ew::bcast_backward_reduce_f32(d.data(), dy.data(), other.data(), g, ds[0], ds[1], ds[2], ds[3], nd); });
    vector<double> w(nd, 0);
    for (int a = 0; a < 3; ++a) for (int b = 0; b < 5; ++b) for (int c = 0; c < 7; ++c) for (int e = 0; e < 9; ++e) {
        size_t i = ((a * 5 + b) * 7 + c) * 9 + e;
        w[b * 9 + e] += (double)dy[i] * other[i];
    }
    (void)out;
    fails += report("broadcast mul backward reduce [1,5,1,9] of [3,5,7,9]", rel_l2(d.data(), w.data(), nd), 1e-5);
    return fails;
}

int losses() {
    int fails = 0;
    size_t n = 5003;
    auto p = uniform(n, 0.001f, 0.999f), q = uniform(n, 0, 1), y = uniform(n, 0, 1);
    for (auto& v : y) v = v < 0.1f;
    vector<double> parts(7, NAN);
    vector<float> out(1, NAN);
    launch(7, 1, 64, [&] { loss::varifocal_partial_f32(parts.data(), p.data(), q.data(), y.data(), 0.75f, 2.0f, n); });
    launch(1, 1, 256, [&] { loss::finish_sum(out.data(), parts.data(), 7, 2.5); });
    double w = 0;
    for (size_t i = 0; i < n; ++i) {
        double pi = p[i], qi = q[i], wt = 0.75 * pi * pi * (1 - y[i]) + qi * y[i];
        w += wt * -(qi * std::max(std::log(pi), -100.0) + (1 - qi) * std::max(std::log(1 - pi), -100.0));
    }
    w /= 2.5;
    fails += report("varifocal partials + finish", rel_l2(out.data(), &w, 1), 1e-5);
    // DFL loss partial sums over anchors
    size_t a = 301;
    auto logits = normal(a * 4 * 17), t = uniform(a * 4, 0, 15.99f), wt = uniform(a, 0.1f, 1);
    launch(3, 1, 64, [&] { loss::dfl_loss_partial_f32(parts.data(), logits.data(), t.data(), wt.data(), 17, a); });
    launch(1, 1, 64, [&] { loss::finish_sum(out.data(), parts.data(), 3, 1.0); });
    double want = 0;
    for (size_t i = 0; i < a; ++i) {
        double side = 0;
        for (int s = 0; s < 4; ++s) {
            const float* l = &logits[(i * 4 + s) * 17];
            double m = -1e30, z = 0;
            for (int k = 0; k < 17; ++k) m = std::max(m, (double)l[k]);
            for (int k = 0; k < 17; ++k) z += std::exp(l[k] - m);
            z = m + std::log(z);
            double tv = t[i * 4 + s]; int left = (int)std::floor(tv); double wl = left + 1 - tv;
            side += (z - l[left]) * wl + (z - l[left + 1]) * (1 - wl);
        }
        want += side / 4 * wt[i];
    }
    fails += report("dfl loss partials + finish", rel_l2(out.data(), &want, 1), 1e-5);
    return fails;
}

int pooling() {
    int fails = 0;
    int P = 6, H = 13, W = 11, R = 2;
    size_t n = (size_t)P * H * W;
    auto x = normal(n, 4);
    for (auto& v : x) v = std::round(v);
    vector<float> y(n, NAN), tmp(n, NAN), avg(P, NAN);
    launch(2, 1, 64, [&] { pool::max_pool_pass_f32(tmp.data(), x.data(), H, W, R, 0, n); });
    launch(2, 1, 64, [&] { pool::max_pool_pass_f32(y.data(), tmp.data(), H, W, R, 1, n); });
    vector<double> wy(n), wdx(n, 0), wavg(P, 0);
    auto dy = normal(n);
    for (int p = 0; p < P; ++p) for (int i = 0; i < H; ++i) for (int j = 0; j < W; ++j) {
        double m = -1e30;
        for (int a = std::max(i - R, 0); a < std::min(i + R + 1, H); ++a)
            for (int b = std::max(j - R, 0); b < std::min(j + R + 1, W); ++b) m = std::max(m, (double)x[(p * H + a) * W + b]);
        wy[(p * H + i) * W + j] = m;
        bool done = false;
        for (int a = std::max(i - R, 0); a < std::min(i + R + 1, H) && !done; ++a)
            for (int b = std::max(j - R, 0); b < std::min(j + R + 1, W); ++b)
                if (x[(p * H + a) * W + b] == m) { wdx[(p * H + a) * W + b] += dy[(p * H + i) * W + j]; done = true; break; }
        wavg[p] += x[(p * H + i) * W + j] / (H * W);
    }
    fails += report("max pool 5 (two passes)", rel_l2(y.data(), wy.data(), n), 0);
    vector<float> dx(n, 0.0f);
    launch(2, 1, 64, [&] { pool::max_pool_backward_f32(dx.data(), dy.data(), x.data(), y.data(), H, W, R, n); });
    fails += report("max pool backward (first match)", rel_l2(dx.data(), wdx.data(), n), 1e-6);
    launch(1, 1, 64, [&] { pool::global_avg_pool_forward_f32(avg.data(), x.data(), P, H * W, 1.0f / (H * W)); });
    fails += report("global avg pool", rel_l2(avg.data(), wavg.data(), P), 1e-6);
    return fails;
}

int main() {
    int fails = batchnorm() + broadcast() + losses() + pooling();
    std::printf("%d failures\n", fails);
    return fails != 0;
}
