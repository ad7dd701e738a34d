// layers.h - the layer plan: the lecture's layer classes (makemore_cpp.nn), each op a
// forward/backward pair of plain functions over (rows, channels) buffers, and a model of any list of
// them run op by op.
//
//   B  examples of the batch      t  positions per example of an op's output (B * t rows)
//   C  channels of a row          ld  the row's stride (channels padded to 16, or segments of them)
//
// Training mode uses the batch's statistics in BatchNorm1d (mean, and torch.var's unbiased variance,
// over every row: dims 0 for 2-D inputs and (0, 1) for 3-D ones) and records them; the training
// loop then moves the running statistics towards them (net_update_running), as the lecture's
// forward pass does. Evaluation uses the running statistics, and each row is then a function of
// its own context alone.
//
// Included inside an instruction set's namespace (see isa_impl.h), after embed.h.
#pragma once

// The per-position tables of an OP_EMBED_LINEAR.
static inline EmbedGeom op_embed(const Net& net, const Op& op) {
    return EmbedGeom{net.V, net.E, op.npos, op.C, op.W, op.ldout, op.b};
}

// Multiply-adds of one example's forward pass through the ops (with the full tables).
static inline double net_row_macs(const Net& net) {
    double m = 0;
    for (int i = 0; i < net.nops; ++i) {
        const Op& op = net.ops[i];
        if (op.kind == OP_LINEAR) m += (double)op.t * op.K * op.ldout;
        if (op.kind == OP_EMBED_LINEAR) m += (double)op.t * op.npos * op.ldout;
        m += 4.0 * op.t * op.ldout;
    }
    return m;
}

// ---------------------------------------------------------------------------------------------
// Linear: y (R, ldout) = x (R, K) @ W (K, ldout) + b, W's rows the input's channels (zero where the
// input has padding).

template <class T>
static void linear_forward(const Op& op, const T* p, int R, const T* x, T* y) {
    EpStore<T> ep{y, op.ldout, op.b >= 0 ? p + op.b : nullptr};
    const int nv = (int)(op.ldout / VT<T>::W);
    parallel(parts_for((double)R * op.K * op.ldout), [&](int part, int n) {
        int64_t v0, v1;
        split_range(nv, part, n, &v0, &v1);
        EpStore<T> e = ep;
        gemm_bcast<T>(R, (int)v0, (int)v1, (int)op.K, x, op.ldin, 1, p + op.W, op.ldout, e);
    });
}

// dW = x^T @ dy, db = the column sums of dy (into the gradient g), and dx = dy @ W^T when dx is
// not null.
template <class T>
static void linear_backward(const Op& op, const T* p, T* g, int R, const T* x, const T* dy, T* dx) {
    const int nv = (int)(op.ldout / VT<T>::W);
    parallel(parts_for((double)R * op.K * op.ldout), [&](int part, int n) {
        int64_t v0, v1;
        split_range(nv, part, n, &v0, &v1);
        EpStore<T> ew{g + op.W, op.ldout, nullptr};
        gemm_bcast<T>((int)op.K, (int)v0, (int)v1, R, x, 1, op.ldin, dy, op.ldout, ew);
        if (op.b >= 0) {
            EpStore<T> eb{g + op.b, 0, nullptr};
            colsum<T>(R, (int)v0, (int)v1, dy, op.ldout, eb);
        }
    });
    if (!dx) return;
    parallel(parts_for((double)R * op.K * op.ldout), [&](int part, int n) {
        int64_t r0, r1;
        split_range(R, part, n, &r0, &r1);
        DotStore<T> ed{dx, op.ldin, nullptr};
        gemm_dot<T>((int)r0, (int)r1, (int)op.K, (int)op.ldout, dy, op.ldout, p + op.W, op.ldout, ed);
    });
}

// ---------------------------------------------------------------------------------------------
// BatchNorm1d: y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel.

// Training: the batch's mean and unbiased variance over the R rows (R >= 2), each channel's sums
// over the rows taken in order in double (float sums of thousands of rows would carry rounding
// errors far beyond float's); istd = 1 / sqrt(var + eps). BN_BLOCK channels at a time.
static constexpr int BN_BLOCK = 64;
template <class T>
static void batchnorm_forward(const Op& op, const T* p, int R, const T* x, T* y, T* mean, T* var, T* istd) {
    const int64_t ld = op.ldout;
    for (int64_t j0 = 0; j0 < ld; j0 += BN_BLOCK) {
        const int n = (int)(ld - j0 < BN_BLOCK ? ld - j0 : BN_BLOCK);
        double s[BN_BLOCK] = {}, ss[BN_BLOCK] = {}, m[BN_BLOCK];
        for (int r = 0; r < R; ++r)
            for (int k = 0; k < n; ++k) s[k] += (double)x[r * ld + j0 + k];
        for (int k = 0; k < n; ++k) m[k] = s[k] / R;
        for (int r = 0; r < R; ++r)
            for (int k = 0; k < n; ++k) {
                const double d = (double)x[r * ld + j0 + k] - m[k];
                ss[k] += d * d;
            }
        T a[BN_BLOCK], b[BN_BLOCK], mk[BN_BLOCK];
        for (int k = 0; k < n; ++k) {
            const double v = ss[k] / (R - 1), is = 1.0 / __builtin_sqrt(v + op.eps);
            mean[j0 + k] = mk[k] = (T)m[k];
            var[j0 + k] = (T)v;
            istd[j0 + k] = (T)is;
            a[k] = (T)((double)p[op.gamma + j0 + k] * is);
            b[k] = p[op.beta + j0 + k];
        }
        for (int r = 0; r < R; ++r)
            for (int k = 0; k < n; ++k) y[r * ld + j0 + k] = (x[r * ld + j0 + k] - mk[k]) * a[k] + b[k];
    }
}

// Evaluation: the running statistics.
template <class T>
static void batchnorm_eval(const Op& op, const T* p, int R, const T* x, T* y) {
    constexpr int W = VT<T>::W;
    const int64_t ld = op.ldout;
    for (int64_t j = 0; j < ld; j += W) {
        const vec<T> m = vload(p + op.mean + j), v = vload(p + op.var + j), eps = vset<T>(T(op.eps));
        vec<T> is;
        for (int k = 0; k < W; ++k) is[k] = T(1) / __builtin_sqrt(v[k] + eps[k]);
        const vec<T> a = vload(p + op.gamma + j) * is, b = vload(p + op.beta + j);
        for (int r = 0; r < R; ++r) vstore(y + r * ld + j, (vload(x + r * ld + j) - m) * a + b);
    }
}

// Given dy: dgamma = sum dy * xhat, dbeta = sum dy (in double, as the forward's sums), and
//   dx = gamma * istd * (dy - dbeta / R - xhat * dgamma / (R - 1)),  xhat = (x - mean) * istd,
// the gradient through the batch's mean and unbiased variance.
template <class T>
static void batchnorm_backward(const Op& op, const T* p, T* g, int R, const T* x, const T* dy, T* dx,
                               const T* mean, const T* istd) {
    const int64_t ld = op.ldout;
    for (int64_t j0 = 0; j0 < ld; j0 += BN_BLOCK) {
        const int n = (int)(ld - j0 < BN_BLOCK ? ld - j0 : BN_BLOCK);
        double dg[BN_BLOCK] = {}, db[BN_BLOCK] = {}, m[BN_BLOCK], is[BN_BLOCK];
        for (int k = 0; k < n; ++k) m[k] = mean[j0 + k], is[k] = istd[j0 + k];
        for (int r = 0; r < R; ++r)
            for (int k = 0; k < n; ++k) {
                const double d = dy[r * ld + j0 + k];
                dg[k] += d * (((double)x[r * ld + j0 + k] - m[k]) * is[k]);
                db[k] += d;
            }
        for (int k = 0; k < n; ++k) {
            g[op.gamma + j0 + k] = (T)dg[k];
            g[op.beta + j0 + k] = (T)db[k];
        }
        if (!dx) continue;
        T a[BN_BLOCK], cb[BN_BLOCK], cg[BN_BLOCK], mk[BN_BLOCK], ik[BN_BLOCK];
        for (int k = 0; k < n; ++k) {
            a[k] = (T)(p[op.gamma + j0 + k] * is[k]);
            cb[k] = (T)(db[k] / R);
            cg[k] = (T)(dg[k] / (R - 1));
            mk[k] = mean[j0 + k], ik[k] = istd[j0 + k];
        }
        for (int r = 0; r < R; ++r)
            for (int k = 0; k < n; ++k) {
                const T xh = (x[r * ld + j0 + k] - mk[k]) * ik[k];
                dx[r * ld + j0 + k] = a[k] * (dy[r * ld + j0 + k] - cb[k] - xh * cg[k]);
            }
    }
}

// The running statistics moved towards the batch's: r = (1 - momentum) r + momentum x. Returns
// whether they are finite.
template <class T>
static bool batchnorm_update_running(const Op& op, T* p, const T* mean, const T* var) {
    const T keep = T(1.0 - op.momentum), mom = T(op.momentum);
    bool ok = true;
    for (int64_t j = 0; j < op.cout; ++j) {
        p[op.mean + j] = keep * p[op.mean + j] + mom * mean[j];
        p[op.var + j] = keep * p[op.var + j] + mom * var[j];
        ok &= __builtin_isfinite(p[op.mean + j]) && __builtin_isfinite(p[op.var + j]);
    }
    return ok;
}

// ---------------------------------------------------------------------------------------------
// Tanh: h = tanh(x), then dropout (hd = h * mask) when a mask is given.

template <class T>
static void tanh_forward(int R, int64_t ld, const T* x, T* h, T* hd, const T* mask) {
    constexpr int W = VT<T>::W;
    const int64_t n = (int64_t)R * ld;
    int64_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        vec<T> v[4] = {vload(x + i), vload(x + i + W), vload(x + i + 2 * W), vload(x + i + 3 * W)};
        vtanh_n<4>(v);
        for (int k = 0; k < 4; ++k) vstore(h + i + k * W, v[k]);
    }
    for (; i < n; i += W) vstore(h + i, vtanh(vload(x + i)));
    if (mask)
        for (i = 0; i < n; i += W) vstore(hd + i, vload(h + i) * vload(mask + i));
}

// dx = dh * mask * (1 - h^2).
template <class T>
static void tanh_backward(int R, int64_t ld, const T* h, const T* mask, const T* dh, T* dx) {
    constexpr int W = VT<T>::W;
    const int64_t n = (int64_t)R * ld;
    for (int64_t i = 0; i < n; i += W) {
        vec<T> d = vload(dh + i);
        if (mask) d *= vload(mask + i);
        const vec<T> y = vload(h + i);
        vstore(dx + i, d * (T(1) - y * y));
    }
}

// ---------------------------------------------------------------------------------------------
// Embedding alone (not followed by a Linear): rows of C, and their gradient added back.

template <class T>
static void embedding_forward(const Net& net, const Op& op, const T* p, int R, const int32_t* x, T* y) {
    for (int r = 0; r < R; ++r)
        for (int e = 0; e < net.E; ++e) y[r * op.ldout + e] = p[op.C + (int64_t)x[r] * net.E + e];
}
template <class T>
static void embedding_backward(const Net& net, const Op& op, T* g, int R, const int32_t* x, const T* dy) {
    T* dC = g + op.C;
    __builtin_memset(dC, 0, sizeof(T) * net.V * net.E);
    for (int r = 0; r < R; ++r)
        for (int e = 0; e < net.E; ++e) dC[(int64_t)x[r] * net.E + e] += dy[r * op.ldout + e];
}

// ---------------------------------------------------------------------------------------------
// Pack: channel segments (seg channels, segld apart) made one padded row, before an op that needs
// them contiguous (a BatchNorm1d after a Flatten).

template <class T>
static void pack_forward(const Op& op, int R, const T* x, T* y) {
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < op.cout; ++k)
            y[r * op.ldout + k] = x[r * op.ldin + (k / op.seg) * op.segld + k % op.seg];
}
template <class T>
static void pack_backward(const Op& op, int R, const T* dy, T* dx) {
    for (int r = 0; r < R; ++r)
        for (int k = 0; k < op.cout; ++k)
            dx[r * op.ldin + (k / op.seg) * op.segld + k % op.seg] = dy[r * op.ldout + k];
}

// ---------------------------------------------------------------------------------------------
// The model on a minibatch (training mode).

// The input of op i: the output of op i-1 (after its dropout).
template <class T>
static inline const T* op_input(NetWorkspace* ws, int i) {
    if (i == 0) return nullptr;
    return (const T*)(ws->mask[i - 1] ? ws->hd[i - 1] : ws->act[i - 1]);
}

// Forward over the B examples in ws->emb.cur (their ids prepared when the first op is an
// OP_EMBED_LINEAR): each op's output, the batch-norm statistics, the loss of each row and dlogits
// (scaled by 1/B). Dropout on every Tanh when p > 0, with the masks of (seed, step). Returns the
// mean loss.
template <class T>
static double net_forward(NetView<T> nv, NetWorkspace* ws, int B, double dropout, uint64_t seed,
                          int64_t step) {
    const Net& net = *nv.net;
    const T* p = nv.p;
    EmbedScratch* es = &ws->emb;
    for (int i = 0; i < net.nops; ++i) {
        const Op& op = net.ops[i];
        const int R = B * op.t;
        T* y = (T*)ws->act[i];
        const T* x = op_input<T>(ws, i);
        switch (op.kind) {
            case OP_EMBED_LINEAR: {
                const EmbedGeom eg = op_embed(net, op);
                embed_rows<T>(eg, p, es);
                const int nv = (int)(op.ldout / VT<T>::W);
                embed_tables<T>(eg, p, es->cur.nids, es->nP, (const T*)es->Csub, (T*)es->P, op.ldout, 0, nv);
                embed_forward<T, false>(op.npos, 0, R, es->cur.slot, (const T*)es->P,
                                        (int64_t)es->nP * op.ldout, op.ldout, op.ldout,
                                        op.b >= 0 ? p + op.b : nullptr, y, y, nullptr, 0, nv);
                break;
            }
            case OP_EMBED:
                embedding_forward<T>(net, op, p, R, es->cur.xb, y);
                break;
            case OP_LINEAR:
                linear_forward<T>(op, p, R, x, y);
                break;
            case OP_BATCHNORM:
                batchnorm_forward<T>(op, p, R, x, y, (T*)ws->bmean[i], (T*)ws->bvar[i], (T*)ws->bistd[i]);
                break;
            case OP_TANH: {
                T* mask = (T*)ws->mask[i];
                if (mask)
                    dropout_fill<T>(seed, step, op.tanh_index, net.ntanh, R, op.cout, op.ldout, dropout, 0, R,
                                    0, op.cout, mask);
                tanh_forward<T>(R, op.ldout, x, y, (T*)ws->hd[i], mask);
                break;
            }
            case OP_PACK:
                pack_forward<T>(op, R, x, y);
                break;
        }
    }
    const T* logits = op_input<T>(ws, net.nops);
    const int64_t Vp = padded(net.V);
    crossentropy_grouped<T>(0, B, net.V, (int)Vp, logits, es->cur.yb, ws->iota, ws->iota, T(1.0 / B),
                            (T*)ws->dlogits, ws->row_loss);
    double loss = 0;
    for (int b = 0; b < B; ++b) loss += ws->row_loss[b];
    return loss / B;
}

// Backward from dlogits: the gradient of every trained parameter into g.
template <class T>
static void net_backward(NetView<T> nv, NetWorkspace* ws, int B, T* g) {
    const Net& net = *nv.net;
    const T* p = nv.p;
    EmbedScratch* es = &ws->emb;
    for (int i = net.nops - 1; i >= 0; --i) {
        const Op& op = net.ops[i];
        const int R = B * op.t;
        const T* dy = (const T*)(i == net.nops - 1 ? ws->dlogits : ws->dact[i]);
        T* dx = i > 0 ? (T*)ws->dact[i - 1] : nullptr;
        const T* x = op_input<T>(ws, i);
        switch (op.kind) {
            case OP_EMBED_LINEAR: {
                const EmbedGeom eg = op_embed(net, op);
                const int nv = (int)(op.ldout / VT<T>::W);
                const Panels<T> G((T*)es->G, (int64_t)op.npos * es->nP, nv, 1);
                embed_backward_sums<T>(eg, es, dy, op.ldout, (T*)es->G, op.ldout, 0, nv);
                embed_backward_rows<T>(eg, es, p, G, 0, 1);
                GradOut<T> out{g};
                embed_backward_weights<T>(eg, es, (const T*)es->G, op.ldout, out, 0, nv);
                embed_backward_scatter<T>(eg, es, g, 1);
                break;
            }
            case OP_EMBED:
                embedding_backward<T>(net, op, g, R, es->cur.xb, dy);
                break;
            case OP_LINEAR:
                linear_backward<T>(op, p, g, R, x, dy, dx);
                break;
            case OP_BATCHNORM:
                batchnorm_backward<T>(op, p, g, R, x, dy, dx, (const T*)ws->bmean[i], (const T*)ws->bistd[i]);
                break;
            case OP_TANH:
                if (dx) tanh_backward<T>(R, op.ldout, (const T*)ws->act[i], (const T*)ws->mask[i], dy, dx);
                break;
            case OP_PACK:
                if (dx) pack_backward<T>(op, R, dy, dx);
                break;
        }
    }
}

// After a step: every BatchNorm1d's running statistics moved towards its batch's. Returns whether
// they are finite.
template <class T>
static bool net_update_running(NetView<T> nv, NetWorkspace* ws) {
    bool ok = true;
    for (int i = 0; i < nv.net->nops; ++i)
        if (nv.net->ops[i].kind == OP_BATCHNORM)
            ok &= batchnorm_update_running<T>(nv.net->ops[i], nv.p, (const T*)ws->bmean[i],
                                              (const T*)ws->bvar[i]);
    return ok;
}

// The batch's ids into the tables of the first op (an OP_EMBED_LINEAR), its rows the groups of
// npos positions.
static inline void net_prepare_batch(const Net& net, NetWorkspace* ws) {
    if (net.ops[0].kind == OP_EMBED_LINEAR) prepare_batch(&ws->emb, false);
}

// ---------------------------------------------------------------------------------------------
// Evaluation mode, for any number of examples (eval.h, sample.h): the running statistics, and the
// first op's full tables P (npos, V, ldout) built once.

// Scratch for `rows` examples: each op's output, in one block (net_rows_bytes).
static inline size_t net_rows_bytes(const Net& net, int rows) {
    int64_t n = 0;
    for (int i = 0; i < net.nops; ++i) n += (int64_t)rows * net.ops[i].t * net.ops[i].ldout;
    return (size_t)n * sizeof(double);
}

// The logits of n examples of contexts x (n, T): out[i] is op i's output; returns the logits (rows
// padded(V) apart). Single thread.
template <class T>
static const T* net_rows_forward(const Net& net, const T* p, const T* P, const int32_t* x, int n, T* mem) {
    const T* in = nullptr;
    for (int i = 0; i < net.nops; ++i) {
        const Op& op = net.ops[i];
        const int R = n * op.t;
        T* y = mem;
        mem += (int64_t)R * op.ldout;
        switch (op.kind) {
            case OP_EMBED_LINEAR:
                embed_forward<T, false>(op.npos, 0, R, x, P, (int64_t)net.V * op.ldout, op.ldout, op.ldout,
                                        op.b >= 0 ? p + op.b : nullptr, y, y, nullptr, 0,
                                        (int)(op.ldout / VT<T>::W));
                break;
            case OP_EMBED:
                embedding_forward<T>(net, op, p, R, x, y);
                break;
            case OP_LINEAR: {
                EpStore<T> ep{y, op.ldout, op.b >= 0 ? p + op.b : nullptr};
                gemm_bcast<T>(R, 0, (int)(op.ldout / VT<T>::W), (int)op.K, in, op.ldin, 1, p + op.W, op.ldout,
                              ep);
                break;
            }
            case OP_BATCHNORM:
                batchnorm_eval<T>(op, p, R, in, y);
                break;
            case OP_TANH:
                tanh_forward<T>(R, op.ldout, in, y, y, nullptr);
                break;
            case OP_PACK:
                pack_forward<T>(op, R, in, y);
                break;
        }
        in = y;
    }
    return in;
}
