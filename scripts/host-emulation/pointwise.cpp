// Grid-stride kernels (DFL decode, upsampling, concat copies, broadcast forward) against float64
// references, and the GIoU and DFL loss backward kernels against central differences of their
// own forward kernels, run on the CPU (emu.h).
#include "emu.h"
namespace dfl {
#include "../../crates/kernels/src/dfl/dfl.cu"
}
#undef LOOP
namespace rs {
#include "../../crates/kernels/src/resize/resize.cu"
}
#undef LOOP
namespace cat {
#include "../../crates/kernels/src/concat/concat.cu"
}
namespace ew {
#include "../../crates/kernels/src/elementwise/elementwise.cu"
}
namespace loss {
#include "../../crates/kernels/src/loss/loss.cu"
}
#undef LOOP
using std::vector;

std::mt19937 rng(5);
vector<float> normal(size_t n) {
    std::normal_distribution<float> d;
    vector<float> v(n);
    for (auto& e : v) e = d(rng);
    return v;
}

int main() {
    int fails = 0;
    {  // DFL softmax + integral, layout [groups, bins, inner]
        long long G = 6, B = 17, I = 37;
        size_t n = G * B * I;
        auto lg = normal(n);
        vector<float> prob(n, NAN), dist(G * I, NAN);
        launch(3, 1, 64, [&] { dfl::softmax_bins_forward_f32(prob.data(), lg.data(), G, B, I); });
        launch(3, 1, 64, [&] { dfl::dfl_integral_forward_f32(dist.data(), prob.data(), G, B, I); });
        vector<double> wp(n), wd(G * I, 0);
        for (long long g = 0; g < G; ++g) for (long long i = 0; i < I; ++i) {
            double m = -1e30, s = 0;
            for (int k = 0; k < B; ++k) m = std::max(m, (double)lg[(g * B + k) * I + i]);
            for (int k = 0; k < B; ++k) s += std::exp(lg[(g * B + k) * I + i] - m);
            for (int k = 0; k < B; ++k) {
                wp[(g * B + k) * I + i] = std::exp(lg[(g * B + k) * I + i] - m) / s;
                wd[g * I + i] += k * wp[(g * B + k) * I + i];
            }
        }
        fails += report("dfl softmax over bins", rel_l2(prob.data(), wp.data(), n), 1e-6);
        fails += report("dfl integral", rel_l2(dist.data(), wd.data(), G * I), 1e-6);
    }
    {  // nearest x2 upsampling, both ways
        long long P = 5, H = 7, W = 9;
        auto x = normal(P * H * W), dy = normal(4 * P * H * W);
        vector<float> y(4 * P * H * W, NAN), dx(P * H * W, 0.0f);
        launch(2, 1, 64, [&] { rs::upsample2x_forward_f32(y.data(), x.data(), H, W, 4 * P * H * W); });
        launch(2, 1, 64, [&] { rs::upsample2x_backward_f32(dx.data(), dy.data(), H, W, P * H * W); });
        vector<double> wy(4 * P * H * W), wdx(P * H * W, 0);
        for (long long p = 0; p < P; ++p) for (long long i = 0; i < 2 * H; ++i) for (long long j = 0; j < 2 * W; ++j) {
            size_t o = (p * 2 * H + i) * 2 * W + j, s = (p * H + i / 2) * W + j / 2;
            wy[o] = x[s];
            wdx[s] += dy[o];
        }
        fails += report("upsample x2 forward", rel_l2(y.data(), wy.data(), wy.size()), 0);
        fails += report("upsample x2 backward", rel_l2(dx.data(), wdx.data(), wdx.size()), 1e-6);
    }
    {  // concat copy of part 1 (3 channels at offset 2 channels) into a 7-channel whole
        long long N = 3, S = 11, C = 7, c0 = 2, c1 = 3;
        auto part = normal(N * c1 * S);
        vector<float> whole(N * C * S, 0.0f);
        launch(2, 1, 64, [&] { cat::copy_block_f32(whole.data(), part.data(), N, c1 * S, C * S, c0 * S, c1 * S, 0, 0); });
        vector<double> w(N * C * S, 0);
        for (long long n = 0; n < N; ++n) for (long long k = 0; k < c1 * S; ++k) w[n * C * S + c0 * S + k] = part[n * c1 * S + k];
        fails += report("concat block copy", rel_l2(whole.data(), w.data(), w.size()), 0);
    }
    {  // broadcast mul forward [3,1,7,1] x [1,5,1,9]
        ew::Bcast g{{3, 5, 7, 9}, {7, 0, 1, 0}, {0, 9, 0, 1}};
        auto a = normal(21), b = normal(45);
        vector<float> y(3 * 5 * 7 * 9, NAN);
        launch(2, 1, 64, [&] { ew::bcast_forward_f32(y.data(), a.data(), b.data(), g, 1, y.size()); });
        vector<double> w(y.size());
        for (int i = 0; i < 3; ++i) for (int c = 0; c < 5; ++c) for (int h = 0; h < 7; ++h) for (int x = 0; x < 9; ++x)
            w[((i * 5 + c) * 7 + h) * 9 + x] = (double)a[i * 7 + h] * b[c * 9 + x];
        fails += report("broadcast mul forward", rel_l2(y.data(), w.data(), w.size()), 1e-7);
    }
    {  // GIoU backward vs central differences of giou_box (float64 steps on float inputs)
        const int P = 40;
        std::uniform_real_distribution<float> u(0, 10);
        vector<float> pred(4 * P), gt(4 * P), wt(P);
        for (int i = 0; i < P; ++i) {
            float x = u(rng), y = u(rng), gx = u(rng), gy = u(rng);
            float b[4] = {x, y, x + 1 + u(rng), y + 1 + u(rng)}, t[4] = {gx, gy, gx + 1 + u(rng), gy + 1 + u(rng)};
            for (int j = 0; j < 4; ++j) { pred[4 * i + j] = b[j]; gt[4 * i + j] = t[j]; }
            wt[i] = 0.5f + u(rng) / 10;
        }
        vector<float> d(4 * P, 0.0f);
        launch(1, 1, 64, [&] { loss::giou_backward_f32(d.data(), pred.data(), gt.data(), wt.data(), 1.0f, P); });
        vector<double> num(4 * P);
        const float h = 1e-2f;
        for (int k = 0; k < 4 * P; ++k) {
            auto p1 = pred, p2 = pred;
            p1[k] += h; p2[k] -= h;
            int i = k / 4;
            double f1 = loss::giou_box(&p1[4 * i], &gt[4 * i], nullptr), f2 = loss::giou_box(&p2[4 * i], &gt[4 * i], nullptr);
            num[k] = wt[i] * (f1 - f2) / (2.0 * h);
        }
        fails += report("giou backward vs central differences", rel_l2(d.data(), num.data(), num.size()), 2e-3);
    }
    {  // DFL loss backward vs central differences of the partial-sum forward
        const long long A = 9;
        const int B = 17;
        auto lg = normal(A * 4 * B);
        vector<float> t(A * 4), wt(A, 1.0f);
        std::uniform_real_distribution<float> u(0.05f, 15.9f);
        for (auto& v : t) { v = u(rng); if (v - std::floor(v) < 0.05f) v += 0.1f; }
        vector<float> d(A * 4 * B, 0.0f);
        launch(1, 1, 64, [&] { loss::dfl_loss_backward_f32(d.data(), lg.data(), t.data(), wt.data(), 1.0f, B, A * 4); });
        auto forward = [&](const vector<float>& l) {
            vector<double> parts(1);
            launch(1, 1, 64, [&] { loss::dfl_loss_partial_f32(parts.data(), l.data(), t.data(), wt.data(), B, A); });
            return parts[0] * 4;  // the backward's scale is dloss / (4 S); forward sums mean over sides
        };
        vector<double> num(d.size());
        const float h = 1e-2f;
        for (size_t k = 0; k < d.size(); ++k) {
            auto l1 = lg, l2 = lg;
            l1[k] += h; l2[k] -= h;
            num[k] = (forward(l1) - forward(l2)) / (2.0 * h);
        }
        fails += report("dfl loss backward vs central differences", rel_l2(d.data(), num.data(), num.size()), 2e-3);
    }
    std::printf("%d failures\n", fails);
    return fails != 0;
}
