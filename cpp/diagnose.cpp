// diagnose.cpp - part 3's statistics of a training-mode pass (makemore_cpp.diagnose, and the
// records of train(..., diagnostics_every=N)): the layer plan's pass, which keeps every op's output
// and its gradient, then cpp/stats.cpp's summaries of the Tanh layers' outputs, of the gradient
// with respect to them (before dropout: the gradient after it times the mask), and of each
// trained parameter's data and gradient.
#include <algorithm>
#include <cstring>
#include <limits>

#include "core.h"

namespace mm {

Recorder::Recorder(const Model& model, int batch, bool dropout, int bins, double sat)
    : m(model), run(&model), B(batch), nbins(bins), saturated(sat) {
    if (m.d.plan == PLAN_MLP) {
        shadow.reset(
            new Model(describe_model(m.d.layers, m.d.V, m.d.T, m.d.lecture_names, m.d.rule, true), m.elem));
        run = shadow.get();
    }
    const Net& net = run->d.net;
    size_t most = 0;
    for (int i = 0; i < net.nops; ++i)
        if (net.ops[i].kind == OP_TANH) {
            ops.push_back(i);
            layers.push_back(net.ops[i].layer);
            values.push_back((int64_t)B * net.ops[i].t * net.ops[i].cout);
            most = std::max(most, (size_t)values.back());
        }
    size_t biggest = 0;
    for (int q = 0; q < (int)m.d.params.size(); ++q) {
        const ParamInfo& pi = m.d.params[q];
        biggest = std::max(biggest, (size_t)pi.values());
        if (!pi.trained) continue;
        params.push_back(q);
        if (pi.cols) matrices.push_back(q);
    }
    a.resize(most * m.elem);
    d.resize(most * m.elem);
    buf.resize(biggest * m.elem);
    tally.resize((size_t)SUMMARY_TABLES * bins);
    ws = net_workspace_create(net, B, m.elem, dropout, false);
}

Recorder::~Recorder() { net_workspace_destroy(ws); }

void Recorder::reserve(int64_t n) {
    taken = 0;
    if ((int64_t)records.size() >= n) return;
    const size_t hists = 2 * ops.size() + matrices.size(), had = records.size();
    records.resize((size_t)n);
    for (size_t k = had; k < records.size(); ++k) {
        DiagRecord& r = records[k];
        r.act.resize(ops.size());
        r.dact.resize(ops.size());
        r.data.resize(params.size());
        r.grad.resize(params.size());
        r.counts.resize(hists * nbins);
        r.edges.resize(hists * (nbins + 1));
    }
}

// With a non-finite loss the pass has no backward: the gradients' statistics are then those of NaNs.
template <class T>
static void take_pass(const Model& run, NetWorkspace* ws, bool backward, const std::vector<int>& ops,
                      const std::vector<int>& params, int B, int bins, double saturated, char* a, char* d,
                      char* buf, int64_t* tally, DiagRecord& r) {
    const Net& net = run.d.net;
    const T nan = std::numeric_limits<T>::quiet_NaN();
    int h = 0;  // the next histogram
    auto hist = [&](const T* x, int64_t n, bool fixed, double threshold, int nb) {
        int64_t* counts = nb ? r.counts.data() + (size_t)h * bins : nullptr;
        double* edges = nb ? r.edges.data() + (size_t)h * (bins + 1) : nullptr;
        h += nb ? 1 : 0;
        return summarize<T>(x, n, !fixed, fixed ? -1.0 : 0.0, fixed ? 1.0 : 0.0, threshold, nb, counts, edges,
                            tally);
    };
    // The outputs first, then the gradients: the histograms' order (DiagRecord).
    for (int pass = 0; pass < 2; ++pass)
        for (size_t k = 0; k < ops.size(); ++k) {
            const int i = ops[k];
            const Op& op = net.ops[i];
            const int64_t R = (int64_t)B * op.t, C = op.cout, ld = op.ldout;
            T* out = (T*)(pass == 0 ? a : d);
            if (pass == 0) {
                const T* x = (const T*)ws->act[i];
                for (int64_t row = 0; row < R; ++row) std::memcpy(out + row * C, x + row * ld, sizeof(T) * C);
                r.act[k] = hist(out, R * C, true, saturated, bins);
            } else {
                const T* g = (const T*)(i == net.nops - 1 ? ws->dlogits : ws->dact[i]);
                const T* mask = (const T*)ws->mask[i];
                for (int64_t row = 0; row < R; ++row)
                    for (int64_t c = 0; c < C; ++c)
                        out[row * C + c] =
                            backward ? g[row * ld + c] * (mask ? mask[row * ld + c] : T(1)) : nan;
                r.dact[k] = hist(out, R * C, false, saturated, bins);
            }
        }
    const double inf = __builtin_inf();
    for (size_t j = 0; j < params.size(); ++j) {
        const ParamInfo& pi = run.d.params[params[j]];
        const int64_t n = pi.values();
        run.read(params[j], run.p, buf);
        r.data[j] = hist((const T*)buf, n, false, inf, 0);
        if (backward)
            run.read(params[j], ws->grad, buf);
        else
            std::fill((T*)buf, (T*)buf + n, nan);
        r.grad[j] = hist((const T*)buf, n, false, inf, pi.cols ? bins : 0);
    }
}

void Recorder::take(const int32_t* X, const int32_t* Y, double dropout, uint64_t seed, int64_t step) {
    if (taken >= (int64_t)records.size()) return;
    DiagRecord& r = records[(size_t)taken++];
    if (shadow)
        for (int q = 0; q < (int)m.d.params.size(); ++q) {
            m.read(q, m.p, buf.data());
            shadow->write(q, shadow->p, buf.data());
        }
    r.step = step;
    if (m.elem == 4) {
        NetView<float> v{&run->d.net, (float*)run->p};
        r.loss = isa_current()->f32.net_loss_and_grad(v, ws, X, Y, B, (float*)ws->grad, dropout, seed, step);
        take_pass<float>(*run, ws, __builtin_isfinite(r.loss), ops, params, B, nbins, saturated, a.data(),
                         d.data(), buf.data(), tally.data(), r);
    } else {
        NetView<double> v{&run->d.net, (double*)run->p};
        r.loss = isa_current()->f64.net_loss_and_grad(v, ws, X, Y, B, (double*)ws->grad, dropout, seed, step);
        take_pass<double>(*run, ws, __builtin_isfinite(r.loss), ops, params, B, nbins, saturated, a.data(),
                          d.data(), buf.data(), tally.data(), r);
    }
}

}  // namespace mm
