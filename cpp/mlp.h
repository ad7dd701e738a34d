// mlp.h - the MLP plan: the lecture's part-2 model (Embedding, Flatten, (Linear, Tanh) x nh,
// Linear), each layer a forward/backward pair of plain functions, and one training step as
// forward then backward.
//
//   B  rows of the batch          T  block_size (context)     E  n_embd
//   V  vocabulary                 H  a hidden width           Hp, Vp  padded to a multiple of 16
//
//   logits = tanh(...tanh(C[X].reshape(B, T*E) @ W1 + b1)...) @ W_out + b_out
//
// The first layer is the per-position tables of embed.h (npos = T).
//
// Without dropout, rows with the same context have the same activations: the layers run over the
// batch's nu distinct contexts (embed.h: group_rows; about 27.6 of the lecture's 32), the
// cross-entropy over all B rows, and each context's dlogits is the sum of its rows'.
//
// With one hidden layer of 512 units or more, its columns are cut into KB blocks (common.h:
// kblocks) and the two sums over the hidden units, the logits and dCsub, are taken block by block
// and the blocks' parts added in block order: a thread then works on the same blocks' columns in
// every phase of the step (StepPlan) and the results do not depend on the thread count. Narrower
// and deeper models take those sums in one chain.
//
// Included inside an instruction set's namespace (see isa_impl.h), after embed.h.
#pragma once

static inline int64_t hp(const Config& c, int l) { return padded(c.H[l]); }

// The first layer's tables in the arena.
static inline EmbedGeom mlp_embed(const Config& c, const Layout& lay) {
    return EmbedGeom{c.V, c.E, c.T, lay.C, lay.W[0], lay.ld[0], lay.b[0]};
}

// ---------------------------------------------------------------------------------------------
// Hidden layer l (0 < l < nh): h_l = tanh(hd_{l-1} @ W_l + b_l), then dropout.

template <class T>
static void hidden_forward(const Config& c, const Layout& lay, const T* p, int l, int B, T* const* h,
                           T* const* hd, T* const* mask, int nv0, int nv1) {
    EpTanh<T> ep{h[l], hd[l], mask[l], hp(c, l), p + lay.b[l]};
    gemm_bcast<T>(B, nv0, nv1, c.H[l - 1], hd[l - 1], hp(c, l - 1), 1, p + lay.W[l], lay.ld[l], ep);
}

// Given dpre_l = dh[l] (B, H_lp): db_l, dW_l (column vectors [nv0, nv1)) and
// dpre_{l-1} = (dpre_l @ W_l^T) * mask * (1 - h_{l-1}^2) (rows [r0, r1)).
template <class T>
static void hidden_backward(const Config& c, const Layout& lay, const T* p, T* g, int l, int B, T* const* h,
                            T* const* hd, T* const* mask, T* const* dh, int nv0, int nv1, int r0, int r1) {
    const int64_t ldo = hp(c, l), ldi = hp(c, l - 1);
    EpStore<T> eb{g + lay.b[l], 0, nullptr};
    colsum<T>(B, nv0, nv1, dh[l], ldo, eb);
    EpStore<T> ep{g + lay.W[l], lay.ld[l], nullptr};
    gemm_bcast<T>(c.H[l - 1], nv0, nv1, B, hd[l - 1], 1, ldi, dh[l], ldo, ep);
    DotDtanh<T> dp{dh[l - 1], h[l - 1], mask[l - 1], ldi};
    gemm_dot<T>(r0, r1, c.H[l - 1], (int)ldo, dh[l], ldo, p + lay.W[l], lay.ld[l], dp);
}

// ---------------------------------------------------------------------------------------------
// Output layer: logits (B, Vp) = hd_{nh-1} @ W_out + b_out, with W_out stored as (V, H_{nh-1}p).

template <class T>
static void output_forward(const Config& c, const Layout& lay, const T* p, const Rows<T>& x, int r0, int r1,
                           T* logits) {
    DotStore<T> ep{logits, padded(c.V), p + lay.b[c.nh]};
    gemm_dot<T>(r0, r1, c.V, x, p + lay.W[c.nh], lay.ld[c.nh], ep);
}

// Given dlogits (B, Vp): dpre_{nh-1} = (dlogits @ W_out^T) * mask * (1 - h^2) (column vectors
// [nv0, nv1) of the hidden width; the rows of h, hd, mask and dpre ld apart), then, through out
// (GradOut or SgdOut: after dpre, which reads W_out), db_out (bias vectors [bv0, bv1)) and dW_out
// (the same columns).
template <class T, class Out>
static void output_backward(const Config& c, const Layout& lay, const T* p, Out& out, int B, const T* dlogits,
                            const T* h, const T* hd, const T* mask, T* dpre, int64_t ld, int nv0, int nv1,
                            int bv0, int bv1) {
    const int64_t Vp = padded(c.V);
    EpDtanh<T> dp{dpre, h, mask, ld};
    gemm_bcast<T>(B, nv0, nv1, c.V, dlogits, Vp, 1, p + lay.W[c.nh], lay.ld[c.nh], dp);
    auto eb = out.ep(lay.b[c.nh], 0);
    colsum<T>(B, bv0, bv1, dlogits, Vp, eb);
    out.take(eb);
    auto ep = out.ep(lay.W[c.nh], lay.ld[c.nh]);
    gemm_bcast<T>(c.V, nv0, nv1, B, dlogits, 1, Vp, hd, ld, ep);
    out.take(ep);
}

// ---------------------------------------------------------------------------------------------
// The step's plan: how its phases are split into parts, held apart from the arithmetic.
//
// Phases split by rows, or by the columns of the layers past the first, have `parts` parts. Phases
// split by the first hidden layer's columns have `col_parts`: with column blocks (kb > 1), part k
// takes the blocks split_range(kb, k, col_parts), each with its panels, and the thread pool gives
// part k to thread k, so each thread keeps its blocks' columns of every buffer and parameter for
// the whole step; what crosses between cores is the blocks' parts of the logits and of dCsub, and
// dlogits. Else part k's columns are a panel of their own.
struct StepPlan {
    int parts;        // parts of the phases split by rows (and by the columns of later layers)
    int kb;           // column blocks of the first hidden layer (common.h: kblocks), 1 for none
    int col_parts;    // parts of the phases split by the first layer's columns
    int panels;       // column panels of the first layer's buffers (Panels)
    int mult;         // column vectors per unit of the first layer's column split
    bool sgd_inside;  // plain SGD is taken inside the backward pass (mlp_step)
};

// The parts a step of B rows is split into.
static inline int step_parts(const Config& c, int B) {
    double macs = (double)B * c.H[c.nh - 1] * c.V + (double)B * c.T * c.H[0];
    for (int l = 1; l < c.nh; ++l) macs += (double)B * c.H[l - 1] * c.H[l];
    macs += (double)c.T * (B < c.V ? B : c.V) * c.E * c.H[0];
    return parts_for(macs);
}

// plain_sgd: the optimizer is SGD without momentum or weight decay. Its update is taken inside the
// backward pass when the step has one hidden layer and either one part or column blocks.
template <class T>
static StepPlan step_plan(const Config& c, int B, bool plain_sgd) {
    StepPlan sp;
    sp.parts = step_parts(c, B);
    sp.kb = kblocks(c);
    sp.col_parts = sp.kb > 1 ? (sp.parts < sp.kb ? sp.parts : sp.kb) : sp.parts;
    sp.panels = sp.kb > 1 ? sp.kb : sp.parts;
    sp.mult = sp.kb > 1 ? PAD / VT<T>::W : 1;
    sp.sgd_inside = plain_sgd && c.nh == 1 && (sp.parts == 1 || sp.kb > 1);
    return sp;
}

// The step's buffers of the first hidden layer's width, in panels (Panels): the tables P and sums G,
// and with one hidden layer its activations and their gradient (a second layer reads and writes
// them split by rows: one panel).
template <class T>
struct StepBuffers {
    T* h[MAX_HIDDEN];
    T* hd[MAX_HIDDEN];
    T* mask[MAX_HIDDEN];
    T* dh[MAX_HIDDEN];
    Panels<T> P, G, H0, HD0, M0, DH0;
    int pan;  // panels of H0, HD0, M0, DH0
    StepBuffers(const Config& c, Workspace* ws, const StepPlan& sp, bool dropout, int nu)
        : P((T*)ws->emb.P, (int64_t)c.T * ws->emb.nP, nvec0(c), sp.panels, sp.mult),
          G((T*)ws->emb.G, (int64_t)c.T * ws->emb.nP, nvec0(c), sp.panels, sp.mult),
          H0((T*)ws->h[0], nu, nvec0(c), c.nh == 1 ? sp.panels : 1, sp.mult),
          HD0((T*)ws->hd[0], nu, nvec0(c), c.nh == 1 ? sp.panels : 1, sp.mult),
          M0(dropout ? (T*)ws->mask[0] : nullptr, nu, nvec0(c), c.nh == 1 ? sp.panels : 1, sp.mult),
          DH0((T*)ws->dh[0], nu, nvec0(c), c.nh == 1 ? sp.panels : 1, sp.mult),
          pan(c.nh == 1 ? sp.panels : 1) {
        for (int l = 0; l < c.nh; ++l) {
            h[l] = (T*)ws->h[l];
            hd[l] = (T*)ws->hd[l];
            mask[l] = dropout ? (T*)ws->mask[l] : nullptr;
            dh[l] = (T*)ws->dh[l];
        }
    }
    static int nvec0(const Config& c) { return (int)(hp(c, 0) / VT<T>::W); }
};

// f(q, v0, v1) for each panel q of part `part` of n of a column-split phase and its column vectors.
template <class T, class F>
static inline void for_columns(const StepPlan& sp, const Panels<T>& P, int part, int n, F&& f) {
    if (sp.kb > 1) {
        int64_t j0, j1;
        split_range(sp.kb, part, n, &j0, &j1);
        for (int j = (int)j0; j < (int)j1; ++j) f(j, (int)P.v0(j), (int)P.v0(j + 1));
    } else {
        f(part, (int)P.v0(part), (int)P.v0(part + 1));
    }
}

// ---------------------------------------------------------------------------------------------
// Forward: embedding, per-position tables and the first layer (split by columns) over the nu
// distinct contexts (all B rows with dropout), the later hidden layers, then the output layer and
// the cross-entropy (split by contexts; with column blocks, each block's part of the logits first,
// split by blocks). Writes dlogits (scaled by 1/B, one row a context) beside the losses. Returns
// the mean loss. Dropout when p > 0, with the masks of (seed, step). ws->emb.cur is prepared.
template <class T>
static double mlp_forward(ParamView<T> pv, Workspace* ws, int B, const StepPlan& sp, StepBuffers<T>& sb,
                          double dropout, uint64_t seed, int64_t step) {
    const Config& c = *pv.cfg;
    const Layout& lay = *pv.lay;
    const T* p = pv.p;
    const EmbedGeom eg = mlp_embed(c, lay);
    EmbedScratch* es = &ws->emb;
    const int64_t Vp = padded(c.V);
    const int nu = es->nu, pan = sb.pan;
    embed_rows<T>(eg, p, es);
    parallel(sp.col_parts, [&](int part, int n) {
        for_columns(sp, sb.P, part, n, [&](int q, int v0, int v1) {
            embed_tables<T>(eg, p, es->cur.nids, es->nP, (const T*)es->Csub, sb.P.base(q), sb.P.ld(q), v0,
                            v1);
            if (sb.mask[0]) {
                int j1 = (int)(v1 * VT<T>::W) < c.H[0] ? (int)(v1 * VT<T>::W) : c.H[0];
                dropout_fill<T>(seed, step, 0, c.nh, B, c.H[0], sb.M0.ld(q % pan), dropout, 0, B,
                                (int)(v0 * VT<T>::W), j1, sb.M0.base(q % pan));
            }
            embed_forward<T>(c.T, 0, nu, es->uslot, sb.P.base(q), (int64_t)es->nP * sb.P.ld(q), sb.P.ld(q),
                             sb.H0.ld(q % pan), p + lay.b[0], sb.H0.base(q % pan), sb.HD0.base(q % pan),
                             sb.M0.base(q % pan), v0, v1);
        });
    });
    for (int l = 1; l < c.nh; ++l) {
        parallel(sp.parts, [&](int part, int n) {
            int64_t v0, v1;
            split_range(hp(c, l) / VT<T>::W, part, n, &v0, &v1);
            if (sb.mask[l]) {
                int j1 = (int)(v1 * VT<T>::W) < c.H[l] ? (int)(v1 * VT<T>::W) : c.H[l];
                dropout_fill<T>(seed, step, l, c.nh, B, c.H[l], hp(c, l), dropout, 0, B, (int)(v0 * VT<T>::W),
                                j1, sb.mask[l]);
            }
            hidden_forward<T>(c, lay, p, l, nu, sb.h, sb.hd, sb.mask, (int)v0, (int)v1);
        });
    }
    T* logits = (T*)ws->logits;
    T* dl = (T*)ws->dlogits;
    const Rows<T> last =
        c.nh == 1 ? sb.HD0.whole() : rows_of<T>(sb.hd[c.nh - 1], hp(c, c.nh - 1), (int)hp(c, c.nh - 1));
    if (sp.kb > 1) {
        parallel(sp.col_parts, [&](int part, int n) {
            for_columns(sp, sb.P, part, n, [&](int q, int, int) {
                DotStore<T> ep{(T*)ws->plogits + (int64_t)q * B * Vp, Vp, nullptr};
                gemm_dot<T>(0, nu, c.V, sb.HD0.one(q), p + lay.W[c.nh], lay.ld[c.nh], ep);
            });
        });
    }
    parallel(sp.parts, [&](int part, int n) {
        int64_t r0, r1;
        split_range(nu, part, n, &r0, &r1);
        if (sp.kb > 1)
            block_sums<T>((int)r0, (int)r1, sp.kb, (const T*)ws->plogits, (int64_t)B * Vp, Vp,
                          p + lay.b[c.nh], logits);
        else
            output_forward<T>(c, lay, p, last, (int)r0, (int)r1, logits);
        crossentropy_grouped<T>((int)r0, (int)r1, c.V, (int)Vp, logits, es->cur.yb, es->ustart, es->ulist,
                                T(1.0 / B), dl, ws->row_loss);
    });
    double loss = 0;
    for (int b = 0; b < B; ++b) loss += ws->row_loss[b];
    return loss / B;
}

// No work beside the last phase of a step (see mlp_backward).
struct NoWork {
    void operator()(int) const {}
};

// Backward from dlogits, each parameter block's gradient through out: GradOut (into the gradient
// arena) or SgdOut (plain SGD taken inside the pass: each block updated as its gradient is
// computed, after the products that read it: W_out's after dpre, W1's after dCsub; with the same
// bits as the gradient then the update; only with sp.sgd_inside). With SgdOut, C is updated too and
// the gradient arena holds only dC; returns whether every updated parameter is finite. With column
// blocks on several threads, the last phase is two parts: part 0 scatters dC (and with SgdOut
// updates C), then calls beside(0); part 1 calls beside(1) (the training loop prepares minibatches
// there: part 0 may overwrite this minibatch's buffers).
template <class T, class Out, class Beside = NoWork>
static bool mlp_backward(ParamView<T> pv, Workspace* ws, int B, const StepPlan& sp, StepBuffers<T>& sb, T* g,
                         Out out, Beside&& beside = Beside{}) {
    const Config& c = *pv.cfg;
    const Layout& lay = *pv.lay;
    const T* p = pv.p;
    const EmbedGeom eg = mlp_embed(c, lay);
    EmbedScratch* es = &ws->emb;
    const int nu = es->nu, nh = c.nh, pan = sb.pan;
    const T* dl = (const T*)ws->dlogits;
    bool bad[MAX_PARTS] = {};
    // Output layer: dpre of the last hidden layer (split by its columns), db_out and dW_out.
    parallel(sp.col_parts, [&](int part, int n) {
        int64_t b0, b1;
        split_range(padded(c.V) / VT<T>::W, part, n, &b0, &b1);
        Out o = out.part(part);
        if (nh == 1) {
            bool first = true;  // the part's share of db_out goes with its first panel
            for_columns(sp, sb.P, part, n, [&](int q, int v0, int v1) {
                output_backward<T>(c, lay, p, o, nu, dl, sb.H0.base(q % pan), sb.HD0.base(q % pan),
                                   sb.M0.base(q % pan), sb.DH0.base(q % pan), sb.H0.ld(q % pan), v0, v1,
                                   first ? (int)b0 : 0, first ? (int)b1 : 0);
                first = false;
            });
        } else {
            int64_t v0, v1;
            split_range(hp(c, nh - 1) / VT<T>::W, part, n, &v0, &v1);
            output_backward<T>(c, lay, p, o, nu, dl, sb.h[nh - 1], sb.hd[nh - 1], sb.mask[nh - 1],
                               sb.dh[nh - 1], hp(c, nh - 1), (int)v0, (int)v1, (int)b0, (int)b1);
        }
        bad[part] = !o.ok();
    });
    // Later hidden layers (GradOut only: sgd_inside needs one hidden layer).
    for (int l = nh - 1; l > 0; --l) {
        parallel(sp.parts, [&](int part, int n) {
            int64_t v0, v1, r0, r1;
            split_range(hp(c, l) / VT<T>::W, part, n, &v0, &v1);
            split_range(nu, part, n, &r0, &r1);
            hidden_backward<T>(c, lay, p, g, l, nu, sb.h, sb.hd, sb.mask, sb.dh, (int)v0, (int)v1, (int)r0,
                               (int)r1);
        });
    }
    // First layer: the per-id sums G, dCsub (with column blocks, the blocks' parts of it; with one
    // part, all of it), then dW1 and db1 (after dCsub, which reads W1).
    parallel(sp.col_parts, [&](int part, int n) {
        Out o = out.part(part);
        for_columns(sp, sb.P, part, n, [&](int q, int v0, int v1) {
            embed_backward_sums<T>(eg, es, sb.DH0.base(q % pan), sb.DH0.ld(q % pan), sb.G.base(q), sb.G.ld(q),
                                   v0, v1);
            if (sp.kb > 1)
                embed_backward_block<T>(eg, es, p, sb.G, q);
            else if (sp.col_parts == 1)
                embed_backward_rows<T>(eg, es, p, sb.G, 0, 1);
            embed_backward_weights<T>(eg, es, sb.G.base(q), sb.G.ld(q), o, v0, v1);
        });
        bad[part] = bad[part] || !o.ok();
    });
    if (sp.kb == 1 && sp.col_parts > 1)
        parallel(sp.parts, [&](int part, int n) { embed_backward_rows<T>(eg, es, p, sb.G, part, n); });
    // dC, and with SgdOut C's update.
    bool c_ok = true;
    auto scatter = [&] {
        embed_backward_scatter<T>(eg, es, g, sp.kb);
        c_ok = out.update(pv.p + lay.C, g + lay.C, lay.W[0] - lay.C);
    };
    if (Out::updates && sp.col_parts > 1 && !std::is_same<typename std::decay<Beside>::type, NoWork>::value) {
        parallel(2, [&](int part, int) {
            if (part == 0) scatter();
            beside(part);
        });
    } else {
        scatter();
    }
    return c_ok && !any_bad(bad, sp.col_parts);
}

// The whole model on one batch (ws->emb.cur, B rows): loss, and the gradient into g (arena-shaped)
// unless g is null. Returns the mean loss; when it is not finite, returns before the backward pass.
// prepared: prepare_batch has already run on this minibatch.
template <class T>
static double mlp_forward_backward(ParamView<T> pv, Workspace* ws, int B, T* g, double dropout, uint64_t seed,
                                   int64_t step, bool prepared = false) {
    const StepPlan sp = step_plan<T>(*pv.cfg, B, false);
    if (!prepared) prepare_batch(&ws->emb, dropout <= 0);
    StepBuffers<T> sb(*pv.cfg, ws, sp, dropout > 0, ws->emb.nu);
    const double loss = mlp_forward<T>(pv, ws, B, sp, sb, dropout, seed, step);
    if (g && __builtin_isfinite(loss)) mlp_backward<T>(pv, ws, B, sp, sb, g, GradOut<T>{g});
    return loss;
}
