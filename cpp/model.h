// model.h - the MLP's layers, each a forward/backward pair of plain functions, and the whole
// model's forward and backward pass over a batch.
//
//   B  rows of the batch          T  block_size (context)     E  n_embd
//   V  vocabulary                 H  a hidden width           Hp, Vp  padded to a multiple of 16
//
//   logits = tanh(...tanh(C[X].reshape(B, T*E) @ W1 + b1)...) @ W_out + b_out
//
// The first layer never materialises C[X]: W1 splits into T blocks of E rows, W1_t, and
//   C[X].reshape(B, T*E) @ W1 = sum_t (C @ W1_t)[X[:, t]],
// so it is computed from per-position tables P_t = C[u_t] @ W1_t over the distinct ids u_t at
// position t (at most min(B, V) rows each), then gathered and added. The backward pass runs the same
// way in reverse: G_t = the sum of dpre over the examples with each id, then dW1_t = C[u_t]^T @ G_t
// and dC[u_t] += G_t @ W1_t^T. For the lecture's batch this does about 60% of the direct
// arithmetic; for a batch of 512 at context 8 about a fifth.
//
// Without dropout, rows with the same context have the same activations: the layers run over the
// batch's nu distinct contexts (group_rows; about 27.6 of the lecture's 32), the cross-entropy over
// all B rows, and each context's dlogits is the sum of its rows'.
//
// With one hidden layer of 512 units or more, its columns are cut into KB blocks (common.h:
// kblocks) and the two sums over the hidden units, the logits and dCsub, are taken block by block
// and the blocks' parts added in block order: a thread then works on the same blocks' columns in
// every phase of the step (see model_forward_backward) and the results do not depend on the thread
// count. Narrower and deeper models take those sums in one chain.
//
// Included inside an instruction set's namespace (see isa_impl.h), after kernels.h.
#pragma once

// Layer widths.
static inline int64_t hp(const Config& c, int l) { return padded(c.H[l]); }

// ---------------------------------------------------------------------------------------------
// Column panels. The phases split by columns give part k of np the column vectors [v0, v1) of the
// first hidden layer (split_range). The buffers of that width which those phases write (the tables
// P, the sums G and, with one hidden layer, its activations and their gradient) keep each part's
// columns in a block of memory of its own, a panel: column j of row r of part k's panel at
// base(k)[r * ld(k) + j], j the column's index in the whole row. No page then holds two threads'
// columns: two cores writing into the same pages slow each other down severalfold on this
// project's Zen 4 host (benchmarks/NOTES.md). With np = 1 it is the usual row-major layout.
template <class T>
struct Panels {
    T* mem;
    int64_t rows;
    int np;
    int64_t q, r;  // the split of the column vectors: q each, one more for the first r (split_range)
    int mult;      // vectors per unit of that split (PAD / W for column blocks, else 1)
    Panels(T* mem_, int64_t rows_, int nvec, int np_, int mult_ = 1)
        : mem(mem_), rows(rows_), np(np_), q(nvec / mult_ / np_), r(nvec / mult_ % np_), mult(mult_) {}
    int64_t v0(int k) const { return (k * q + (k < r ? k : r)) * mult; }  // part k's first column vector
    int64_t ld(int k) const { return (v0(k + 1) - v0(k)) * VT<T>::W; }
    T* base(int k) const {
        return mem ? mem + (rows - 1) * v0(k) * VT<T>::W : nullptr;
    }  // panel start - v0 columns
    // Rows first .. of all the columns, as gemm_dot's operand (the panels that have columns).
    Rows<T> whole(int64_t first = 0) const {
        Rows<T> a;
        a.n = 0;
        for (int k = 0; k < np; ++k) {
            if (v0(k + 1) == v0(k)) continue;
            a.ld[a.n] = ld(k);
            a.a[a.n] = base(k) + first * a.ld[a.n];
            a.k[a.n] = (int)(v0(k) * VT<T>::W);
            ++a.n;
        }
        a.k[a.n] = (int)(v0(np) * VT<T>::W);
        return a;
    }
    // Rows first .. of panel k's columns only (panel k has columns).
    Rows<T> one(int k, int64_t first = 0) const {
        Rows<T> a;
        a.n = 1;
        a.ld[0] = ld(k);
        a.a[0] = base(k) + first * a.ld[0];
        a.k[0] = (int)(v0(k) * VT<T>::W);
        a.k[1] = (int)(v0(k + 1) * VT<T>::W);
        return a;
    }
};

// ---------------------------------------------------------------------------------------------
// Embedding + first layer.

// The distinct ids at each position of bt.xb (B, T): bt.ids[t, :nids[t]] and bt.slot (B, T) into
// them. Serial; O(B T). Reads no parameter. Without a branch on whether an id is new (which the
// processor guesses wrong about as often as not): ids[t, n] is written for every row and kept for
// a new id (bt.ids holds one element more than T nP for the last position's).
static void embed_index(int Tt, int B, int nP, const Batch& bt) {
    for (int t = 0; t < Tt; ++t) {
        int32_t* ids = bt.ids + t * nP;
        int n = 0;
        for (int b = 0; b < B; ++b) {
            const int32_t v = bt.xb[b * Tt + t];
            const int32_t s = bt.seen[v];
            const int32_t fresh = s >> 31;  // -1 for a new id (seen is -1), else 0
            const int32_t k = (n & fresh) | (s & ~fresh);
            bt.seen[v] = k;
            ids[n] = v;
            n -= fresh;
            bt.slot[b * Tt + t] = k;
        }
        for (int i = 0; i < n; ++i) bt.seen[ids[i]] = -1;
        bt.nids[t] = n;
    }
}

// The embedding rows Csub[t] (nids[t], E) = C[ids[t]]. Serial; O(T nP E).
template <class T>
static void embed_rows(const Config& c, const T* C, Workspace* ws) {
    const int E = c.E, nP = ws->nP;
    T* Csub = (T*)ws->Csub;
    for (int t = 0; t < c.T; ++t)
        for (int i = 0; i < ws->cur.nids[t]; ++i) {
            T* dst = Csub + ((int64_t)t * nP + i) * E;
            const T* src = C + (int64_t)ws->cur.ids[t * nP + i] * E;
            for (int e = 0; e < E; ++e) dst[e] = src[e];
        }
}

// The minibatch's distinct contexts (rows with the same slot at every position; the lecture's
// batches of 32 hold about 27.6): without dropout, rows with one context have the same activations,
// so the layers run over the nu distinct contexts, the cross-entropy over every row with its
// context's logits, and each context's dlogits is the sum of its rows'. With group false (dropout:
// each row has its own masks) every row is a context of its own. Contexts are numbered in order of
// their first row. From the slots and ids of bt, into ws's contexts and lists. Serial; O(B T).
static void group_rows(int Tt, int B, const Batch& bt, Workspace* ws, bool group) {
    const int32_t* slot = bt.slot;
    int32_t *uslot = ws->uslot, *urow = ws->urow, *ustart = ws->ustart, *ht = ws->htab;
    const int nP = ws->nP;
    int nu = 0;
    int nb = 1;  // bits of a slot (< nP)
    while (((int64_t)1 << nb) < nP) ++nb;
    if (group) {
        const uint64_t mask = (uint64_t)ws->hsize - 1;
        for (int64_t i = 0; i < ws->hsize; ++i) ht[i] = -1;
        if (nb * Tt <= 64) {
            // A context's slots packed into one key, hashed and compared as one number.
            const int shift = 64 - __builtin_ctzll((uint64_t)ws->hsize);
            uint64_t* ckey = ws->ckey;  // (nu) each context's key
            for (int b = 0; b < B; ++b) {
                const int32_t* sb = slot + b * Tt;
                uint64_t k = 0;
                for (int t = 0; t < Tt; ++t) k |= (uint64_t)sb[t] << (nb * t);
                for (uint64_t i = (k * 0x9E3779B97F4A7C15ull) >> shift;; i = (i + 1) & mask) {
                    int u = ht[i];
                    if (u < 0) {
                        u = ht[i] = nu++;
                        ckey[u] = k;
                        for (int t = 0; t < Tt; ++t) uslot[u * Tt + t] = sb[t];
                    } else if (ckey[u] != k) {
                        continue;
                    }
                    urow[b] = u;
                    break;
                }
            }
        } else {
            for (int b = 0; b < B; ++b) {
                const int32_t* sb = slot + b * Tt;
                uint32_t h = 0;
                for (int t = 0; t < Tt; ++t) h = (h ^ (uint32_t)sb[t]) * 0x9E3779B1u;
                for (uint64_t i = (h ^ (h >> 15)) & mask;; i = (i + 1) & mask) {
                    int u = ht[i];
                    if (u < 0) {
                        u = ht[i] = nu++;
                        for (int t = 0; t < Tt; ++t) uslot[u * Tt + t] = sb[t];
                    } else {
                        int t = 0;
                        while (t < Tt && uslot[u * Tt + t] == sb[t]) ++t;
                        if (t < Tt) continue;
                    }
                    urow[b] = u;
                    break;
                }
            }
        }
    } else {
        for (int b = 0; b < B; ++b) {
            for (int t = 0; t < Tt; ++t) uslot[b * Tt + t] = slot[b * Tt + t];
            urow[b] = b;
        }
        nu = B;
    }
    // Each context's rows, in increasing order: ulist[ustart[u] .. ustart[u + 1]).
    for (int u = 0; u <= nu; ++u) ustart[u] = 0;
    for (int b = 0; b < B; ++b) ++ustart[urow[b] + 1];
    for (int u = 0; u < nu; ++u) ustart[u + 1] += ustart[u];
    int32_t* cur = ht;  // hsize >= 2B > nu
    for (int u = 0; u < nu; ++u) cur[u] = ustart[u];
    for (int b = 0; b < B; ++b) ws->ulist[cur[urow[b]]++] = b;
    ws->nu = nu;
    // The contexts with each id at each position, in increasing order (for the gradient sums G_t).
    for (int t = 0; t < Tt; ++t) {
        int32_t* ps = ws->pstart + t * (nP + 1);
        int32_t* pl = ws->plist + t * B;
        const int n = bt.nids[t];
        for (int i = 0; i <= n; ++i) ps[i] = 0;
        for (int u = 0; u < nu; ++u) ++ps[uslot[u * Tt + t] + 1];
        for (int i = 0; i < n; ++i) ps[i + 1] += ps[i];
        for (int i = 0; i < n; ++i) cur[i] = ps[i];
        for (int u = 0; u < nu; ++u) pl[cur[uslot[u * Tt + t]]++] = u;
    }
}

// Everything about the minibatch in ws->cur.xb that reads no parameter: its ids and contexts. (The
// training loop prepares its minibatches itself, ahead: train.h.)
static inline void prepare_batch(int Tt, int B, Workspace* ws, bool group) {
    embed_index(Tt, B, ws->nP, ws->cur);
    group_rows(Tt, B, ws->cur, ws, group);
}

// P_t (n_t, H0p) = Csub_t (n_t, E) @ W1_t (E, H0p), for the column vectors [nv0, nv1), column j of
// row i of P_t at P[(t * nP + i) * ldP + j]. Csub and P hold positions nP rows apart.
template <class T>
static void embed_tables(const Config& c, const Layout& L, const T* p, const int32_t* nids, int nP,
                         const T* Csub, T* P, int64_t ldP, int nv0, int nv1) {
    const int64_t ld = L.ld[0];
    for (int t = 0; t < c.T; ++t) {
        EpStore<T> ep{P + (int64_t)t * nP * ldP, ldP, nullptr};
        gemm_bcast<T>(nids[t], nv0, nv1, c.E, Csub + (int64_t)t * nP * c.E, c.E, 1,
                      p + L.W[0] + (int64_t)t * c.E * ld, ld, ep);
    }
}

// Row b, column vectors [nv, nv + N) of embed_forward: N tanh chains side by side.
template <class T, int N>
static inline void embed_forward_vectors(int Tt, const int32_t* s, const T* P, int64_t tstride, int64_t ldP,
                                         int64_t ld, const T* bias, T* h, T* hd, const T* mask, int b,
                                         int nv) {
    constexpr int W = VT<T>::W;
    const int64_t n = (int64_t)nv * W;
    vec<T> acc[N];
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) acc[j] = vload(bias + n + j * W);
    for (int t = 0; t < Tt; ++t) {
        const T* row = P + t * tstride + s[t] * ldP + n;
#pragma GCC unroll 8
        for (int j = 0; j < N; ++j) acc[j] += vload(row + j * W);
    }
    vtanh_n<N>(acc);
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) {
        vstore(h + b * ld + n + j * W, acc[j]);
        if (mask) vstore(hd + b * ld + n + j * W, acc[j] * vload(mask + b * ld + n + j * W));
    }
}

// h[b] = tanh(b1 + sum_t P_t[slot[b, t]]) for rows [b0, b1) and column vectors [nv0, nv1);
// hd = h * mask when there is dropout. P_t starts tstride elements after P_{t-1}, its rows ldP
// apart; h's rows are ld apart.
template <class T>
static void embed_forward(int Tt, int b0, int b1, const int32_t* slot, const T* P, int64_t tstride,
                          int64_t ldP, int64_t ld, const T* bias, T* h, T* hd, const T* mask, int nv0,
                          int nv1) {
    for (int b = b0; b < b1; ++b) {
        const int32_t* s = slot + (int64_t)b * Tt;
        int nv = nv0;
        for (; nv + 4 <= nv1; nv += 4)
            embed_forward_vectors<T, 4>(Tt, s, P, tstride, ldP, ld, bias, h, hd, mask, b, nv);
        for (; nv < nv1; ++nv)
            embed_forward_vectors<T, 1>(Tt, s, P, tstride, ldP, ld, bias, h, hd, mask, b, nv);
    }
}

// out[nv .. nv + N vectors) = the sum of the rows rows[0 .. n) of x, in that order.
template <class T, int N>
static inline void psum_vectors(const int32_t* rows, int n, const T* x, int64_t ld, int nv, T* out) {
    constexpr int W = VT<T>::W;
    vec<T> acc[N];
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) acc[j] = vec<T>{};
    for (int k = 0; k < n; ++k) {
        const T* row = x + (int64_t)rows[k] * ld + (int64_t)nv * W;
#pragma GCC unroll 8
        for (int j = 0; j < N; ++j) acc[j] += vload(row + j * W);
    }
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) vstore(out + (int64_t)(nv + j) * W, acc[j]);
}

// Backward, first half (column vectors [nv0, nv1)): G_t = per-id sums of dpre (nu, H0p), its rows
// ldd apart: G_t[i] = the sum of dpre over the contexts with id i at position t, in increasing
// order, kept in registers 8, 4 or 1 vectors at a time. Row i of G_t at G + (t * nP + i) * ldG.
template <class T>
static void embed_backward_sums(const Config& c, Workspace* ws, const T* dpre, int64_t ldd, T* G, int64_t ldG,
                                int nv0, int nv1) {
    const int nP = ws->nP;
    for (int t = 0; t < c.T; ++t) {
        T* Gt = G + (int64_t)t * nP * ldG;
        const int32_t* ps = ws->pstart + t * (nP + 1);
        const int32_t* pl = ws->plist + t * ws->B;
        for (int i = 0; i < ws->cur.nids[t]; ++i) {
            const int32_t* rows = pl + ps[i];
            const int n = ps[i + 1] - ps[i];
            int nv = nv0;
            for (; nv + 8 <= nv1; nv += 8) psum_vectors<T, 8>(rows, n, dpre, ldd, nv, Gt + i * ldG);
            for (; nv + 4 <= nv1; nv += 4) psum_vectors<T, 4>(rows, n, dpre, ldd, nv, Gt + i * ldG);
            for (; nv < nv1; ++nv) psum_vectors<T, 1>(rows, n, dpre, ldd, nv, Gt + i * ldG);
        }
    }
}

// Then dW1_t = Csub_t^T @ G_t and db1 = the column sums of dpre (= the sum of G_0's rows), through
// out (GradOut or SgdOut; with SgdOut after dCsub, which reads W1).
template <class T, class Out>
static void embed_backward_weights(const Config& c, const Layout& L, Workspace* ws, const T* G, int64_t ldG,
                                   Out& out, int nv0, int nv1) {
    const int nP = ws->nP;
    const int64_t ld = L.ld[0];
    const T* Csub = (const T*)ws->Csub;
    for (int t = 0; t < c.T; ++t) {
        auto ep = out.ep(L.W[0] + (int64_t)t * c.E * ld, ld);
        gemm_bcast<T>(c.E, nv0, nv1, ws->cur.nids[t], Csub + (int64_t)t * nP * c.E, 1, c.E,
                      G + (int64_t)t * nP * ldG, ldG, ep);
        out.take(ep);
    }
    auto eb = out.ep(L.b[0], 0);
    colsum<T>(ws->cur.nids[0], nv0, nv1, G, ldG, eb);
    out.take(eb);
}

// Backward, second half (rows [r0, r1) of each position's table): dCsub_t = G_t @ W1_t^T.
template <class T>
static void embed_backward_rows(const Config& c, const Layout& L, Workspace* ws, const T* p,
                                const Panels<T>& G, int part, int nparts) {
    const int nP = ws->nP;
    const int64_t ld = L.ld[0];
    for (int t = 0; t < c.T; ++t) {
        int64_t r0, r1;
        split_range(ws->cur.nids[t], part, nparts, &r0, &r1);
        DotStore<T> ep{(T*)ws->dCsub + (int64_t)t * nP * c.E, c.E, nullptr};
        gemm_dot<T>((int)r0, (int)r1, c.E, G.whole((int64_t)t * nP), p + L.W[0] + (int64_t)t * c.E * ld, ld,
                    ep);
    }
}

// With column blocks (KB > 1), block q's part of dCsub: G_t[:, block q] @ W1_t[:, block q]^T, into
// pdCsub[q] (its rows G's panel q).
template <class T>
static void embed_backward_block(const Config& c, const Layout& L, Workspace* ws, const T* p,
                                 const Panels<T>& G, int q) {
    const int nP = ws->nP;
    const int64_t ld = L.ld[0];
    T* out = (T*)ws->pdCsub + (int64_t)q * c.T * nP * c.E;
    for (int t = 0; t < c.T; ++t) {
        DotStore<T> ep{out + (int64_t)t * nP * c.E, c.E, nullptr};
        gemm_dot<T>(0, ws->cur.nids[t], c.E, G.one(q, (int64_t)t * nP), p + L.W[0] + (int64_t)t * c.E * ld,
                    ld, ep);
    }
}

// dC = 0; dC[ids[t]] += dCsub_t (with KB column blocks, dCsub_t = the blocks' parts added in block
// order). Serial, positions in order.
template <class T>
static void embed_backward_scatter(const Config& c, const Layout& L, Workspace* ws, T* g, int kb) {
    const int nP = ws->nP, E = c.E;
    const int32_t *ids = ws->cur.ids, *nids = ws->cur.nids;
    T* dC = g + L.C;
    __builtin_memset(dC, 0, sizeof(T) * c.V * E);
    const int64_t bstride = (int64_t)c.T * nP * E;
    for (int t = 0; t < c.T; ++t) {
        const T* d = (const T*)(kb > 1 ? ws->pdCsub : ws->dCsub) + (int64_t)t * nP * E;
        for (int i = 0; i < nids[t]; ++i) {
            T* row = dC + (int64_t)ids[t * nP + i] * E;
            if (kb == 1) {  // a loop of its own: the lecture step's
                for (int e = 0; e < E; ++e) row[e] += d[i * E + e];
                continue;
            }
            for (int e = 0; e < E; ++e) {
                T s = d[i * E + e];
                for (int q = 1; q < kb; ++q) s += d[q * bstride + i * E + e];
                row[e] += s;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hidden layer l (0 < l < L): h_l = tanh(hd_{l-1} @ W_l + b_l), then dropout.

template <class T>
static void hidden_forward(const Config& c, const Layout& L, const T* p, int l, int B, T* const* h,
                           T* const* hd, T* const* mask, int nv0, int nv1) {
    EpTanh<T> ep{h[l], hd[l], mask[l], hp(c, l), p + L.b[l]};
    gemm_bcast<T>(B, nv0, nv1, c.H[l - 1], hd[l - 1], hp(c, l - 1), 1, p + L.W[l], L.ld[l], ep);
}

// Given dpre_l = dh[l] (B, H_lp): db_l, dW_l (column vectors [nv0, nv1)) and
// dpre_{l-1} = (dpre_l @ W_l^T) * mask * (1 - h_{l-1}^2) (rows [r0, r1)).
template <class T>
static void hidden_backward(const Config& c, const Layout& L, const T* p, T* g, int l, int B, T* const* h,
                            T* const* hd, T* const* mask, T* const* dh, int nv0, int nv1, int r0, int r1) {
    const int64_t ldo = hp(c, l), ldi = hp(c, l - 1);
    EpStore<T> eb{g + L.b[l], 0, nullptr};
    colsum<T>(B, nv0, nv1, dh[l], ldo, eb);
    EpStore<T> ep{g + L.W[l], L.ld[l], nullptr};
    gemm_bcast<T>(c.H[l - 1], nv0, nv1, B, hd[l - 1], 1, ldi, dh[l], ldo, ep);
    DotDtanh<T> dp{dh[l - 1], h[l - 1], mask[l - 1], ldi};
    gemm_dot<T>(r0, r1, c.H[l - 1], (int)ldo, dh[l], ldo, p + L.W[l], L.ld[l], dp);
}

// ---------------------------------------------------------------------------------------------
// Output layer: logits (B, Vp) = hd_{L-1} @ W_out + b_out, with W_out stored as (V, H_{L-1}p).

template <class T>
static void output_forward(const Config& c, const Layout& L, const T* p, const Rows<T>& x, int r0, int r1,
                           T* logits) {
    DotStore<T> ep{logits, padded(c.V), p + L.b[c.L]};
    gemm_dot<T>(r0, r1, c.V, x, p + L.W[c.L], L.ld[c.L], ep);
}

// Given dlogits (B, Vp): dpre_{L-1} = (dlogits @ W_out^T) * mask * (1 - h^2) (column vectors
// [nv0, nv1) of the hidden width; the rows of h, hd, mask and dpre ld apart), then, through out
// (GradOut or SgdOut: after dpre, which reads W_out), db_out (bias vectors [bv0, bv1)) and dW_out
// (the same columns).
template <class T, class Out>
static void output_backward(const Config& c, const Layout& L, const T* p, Out& out, int B, const T* dlogits,
                            const T* h, const T* hd, const T* mask, T* dpre, int64_t ld, int nv0, int nv1,
                            int bv0, int bv1) {
    const int64_t Vp = padded(c.V);
    EpDtanh<T> dp{dpre, h, mask, ld};
    gemm_bcast<T>(B, nv0, nv1, c.V, dlogits, Vp, 1, p + L.W[c.L], L.ld[c.L], dp);
    auto eb = out.ep(L.b[c.L], 0);
    colsum<T>(B, bv0, bv1, dlogits, Vp, eb);
    out.take(eb);
    auto ep = out.ep(L.W[c.L], L.ld[c.L]);
    gemm_bcast<T>(c.V, nv0, nv1, B, dlogits, 1, Vp, hd, ld, ep);
    out.take(ep);
}

// ---------------------------------------------------------------------------------------------
// Dropout masks: mask[b, j] = 1/(1-p) if unit j of row b is kept, else 0 (see rng.h), for rows
// [b0, b1) and columns [j0, j1) (j1 <= H; padding stays 0).
template <class T>
static void dropout_fill(uint64_t seed, int64_t step, int l, int L, int B, int H, int64_t ld, double p,
                         int b0, int b1, int j0, int j1, T* mask) {
    const uint64_t k = rng::key(seed, rng::DROPOUT);
    const uint64_t thr = (uint64_t)__builtin_llround(p * 16777216.0);
    const T keep = T(1.0 / (1.0 - p));
    for (int b = b0; b < b1; ++b) {
        uint64_t c0 = (((uint64_t)step * L + l) * B + b) * (uint64_t)H;
        for (int j = j0; j < j1; ++j) mask[b * ld + j] = (rng::draw(k, c0 + j) >> 40) >= thr ? keep : T(0);
    }
}

// ---------------------------------------------------------------------------------------------
// The whole model on one batch (ws->cur.xb, ws->cur.yb, B rows): loss, and the gradient into g (arena-
// shaped). Dropout when p > 0, with the masks of (seed, step). Returns the mean loss; when it is
// not finite, returns before the backward pass.

static inline int parts_for(double macs) {
    // Below a few million multiply-adds per phase, waking a second thread costs more than it saves
    // (measured: benchmarks/NOTES.md).
    int nt = mm::pool_threads();
    if (nt > MAX_PARTS) nt = MAX_PARTS;
    if (nt <= 1 || macs < 1.5e6) return 1;
    int n = (int)(macs / 0.75e6);
    return n < nt ? (n < 1 ? 1 : n) : nt;
}

// The parts a step of B rows is split into.
static inline int step_parts(const Config& c, int B) {
    double macs = (double)B * c.H[c.L - 1] * c.V + (double)B * c.T * c.H[0];
    for (int l = 1; l < c.L; ++l) macs += (double)B * c.H[l - 1] * c.H[l];
    macs += (double)c.T * (B < c.V ? B : c.V) * c.E * c.H[0];
    return parts_for(macs);
}

// No work beside the last phase of a step (see model_forward_backward).
struct NoWork {
    void operator()(int) const {}
};

// prepared: prepare_batch has already run on this minibatch. With sgd_lr, when the step has one
// hidden layer and either one part or column blocks, plain SGD at that rate is taken inside the
// backward pass: each parameter block is updated as its gradient is computed (after the products
// that read it), with the same bits as the gradient then the update. Then *updated is set, g holds
// dC only, and *finite says whether every updated parameter is finite. With column blocks on
// several threads, the last phase is two parts: part 0 scatters dC and updates C, then calls
// beside(0); part 1 calls beside(1) (the training loop prepares minibatches there: part 0 may
// overwrite this minibatch's buffers).
template <class T, class Beside = NoWork>
static double model_forward_backward(ParamView<T> pv, Workspace* ws, int B, T* g, double dropout,
                                     uint64_t seed, int64_t step, bool prepared = false,
                                     const double* sgd_lr = nullptr, bool* updated = nullptr,
                                     bool* finite = nullptr, Beside&& beside = Beside{}) {
    const Config& c = *pv.cfg;
    const Layout& L = *pv.lay;
    const T* p = pv.p;
    const int Lh = c.L;
    const int64_t Vp = padded(c.V);
    T* h[MAX_HIDDEN];
    T* hd[MAX_HIDDEN];
    T* mask[MAX_HIDDEN];
    T* dh[MAX_HIDDEN];
    for (int l = 0; l < Lh; ++l) {
        h[l] = (T*)ws->h[l];
        hd[l] = (T*)ws->hd[l];
        mask[l] = dropout > 0 ? (T*)ws->mask[l] : nullptr;
        dh[l] = (T*)ws->dh[l];
    }
    const int np = step_parts(c, B);
    // With column blocks (KB > 1: one hidden layer of 512 units or more), the column-split phases
    // give part k of npc the blocks split_range(KB, k, npc), each with its panels; the sums over the
    // hidden units (logits, dCsub) are taken block by block and the blocks' parts added in block
    // order. The thread pool gives part k to thread k, so each thread keeps its blocks' columns of
    // every buffer and parameter for the whole step, and what crosses between cores is the blocks'
    // parts of the logits and of dCsub, and dlogits. Else part k's columns are a panel of their own.
    const int kb = kblocks(c);
    const int npc = kb > 1 ? (np < kb ? np : kb) : np, npan = kb > 1 ? kb : np;
    const int mult = kb > 1 ? PAD / VT<T>::W : 1;
    const int nvec0 = (int)(hp(c, 0) / VT<T>::W);

    // Forward: embedding, per-position tables and the first layer (split by columns), over the
    // nu distinct contexts (all B rows with dropout).
    if (!prepared) prepare_batch(c.T, B, ws, dropout <= 0);
    embed_rows<T>(c, p + L.C, ws);
    const int nu = ws->nu;
    // The buffers the column-split phases write, in panels (see Panels). The first layer's
    // activations and gradient only with one hidden layer: a second layer reads and writes them
    // split by rows.
    const int pan = Lh == 1 ? npan : 1;
    const Panels<T> Pn((T*)ws->P, (int64_t)c.T * ws->nP, nvec0, npan, mult),
        Gn((T*)ws->G, (int64_t)c.T * ws->nP, nvec0, npan, mult);
    const Panels<T> H0(h[0], nu, nvec0, pan, mult), HD0(hd[0], nu, nvec0, pan, mult),
        M0(mask[0], nu, nvec0, pan, mult), DH0(dh[0], nu, nvec0, pan, mult);
    // f(q, v0, v1) for each panel q of part `part` of n (of Pn's split) and its column vectors [v0, v1).
    auto columns = [&](int part, int n, auto&& f) {
        if (kb > 1) {
            int64_t j0, j1;
            split_range(kb, part, n, &j0, &j1);
            for (int j = (int)j0; j < (int)j1; ++j) f(j, (int)Pn.v0(j), (int)Pn.v0(j + 1));
        } else {
            f(part, (int)Pn.v0(part), (int)Pn.v0(part + 1));
        }
    };
    parallel(npc, [&](int part, int n) {
        columns(part, n, [&](int q, int v0, int v1) {
            embed_tables<T>(c, L, p, ws->cur.nids, ws->nP, (const T*)ws->Csub, Pn.base(q), Pn.ld(q), v0, v1);
            if (mask[0]) {
                int j1 = (int)(v1 * VT<T>::W) < c.H[0] ? (int)(v1 * VT<T>::W) : c.H[0];
                dropout_fill<T>(seed, step, 0, Lh, B, c.H[0], M0.ld(q % pan), dropout, 0, B,
                                (int)(v0 * VT<T>::W), j1, M0.base(q % pan));
            }
            embed_forward<T>(c.T, 0, nu, ws->uslot, Pn.base(q), (int64_t)ws->nP * Pn.ld(q), Pn.ld(q),
                             H0.ld(q % pan), p + L.b[0], H0.base(q % pan), HD0.base(q % pan),
                             M0.base(q % pan), v0, v1);
        });
    });
    for (int l = 1; l < Lh; ++l) {
        parallel(np, [&](int part, int n) {
            int64_t v0, v1;
            split_range(hp(c, l) / VT<T>::W, part, n, &v0, &v1);
            if (mask[l]) {
                int j1 = (int)(v1 * VT<T>::W) < c.H[l] ? (int)(v1 * VT<T>::W) : c.H[l];
                dropout_fill<T>(seed, step, l, Lh, B, c.H[l], hp(c, l), dropout, 0, B, (int)(v0 * VT<T>::W),
                                j1, mask[l]);
            }
            hidden_forward<T>(c, L, p, l, nu, h, hd, mask, (int)v0, (int)v1);
        });
    }
    // Output layer and cross-entropy (split by contexts; with column blocks, each block's part of
    // the logits first, split by blocks). Without a gradient, dlogits is still written (to the
    // workspace), not read.
    T* logits = (T*)ws->logits;
    T* dl = (T*)ws->dlogits;
    const Rows<T> last = Lh == 1 ? HD0.whole() : rows_of<T>(hd[Lh - 1], hp(c, Lh - 1), (int)hp(c, Lh - 1));
    if (kb > 1) {
        parallel(npc, [&](int part, int n) {
            columns(part, n, [&](int q, int, int) {
                DotStore<T> ep{(T*)ws->plogits + (int64_t)q * B * Vp, Vp, nullptr};
                gemm_dot<T>(0, nu, c.V, HD0.one(q), p + L.W[c.L], L.ld[c.L], ep);
            });
        });
    }
    parallel(np, [&](int part, int n) {
        int64_t r0, r1;
        split_range(nu, part, n, &r0, &r1);
        if (kb > 1)
            block_sums<T>((int)r0, (int)r1, kb, (const T*)ws->plogits, (int64_t)B * Vp, Vp, p + L.b[c.L],
                          logits);
        else
            output_forward<T>(c, L, p, last, (int)r0, (int)r1, logits);
        crossentropy_grouped<T>((int)r0, (int)r1, c.V, (int)Vp, logits, ws->cur.yb, ws->ustart, ws->ulist,
                                T(1.0 / B), dl, ws->row_loss);
    });
    double loss = 0;
    for (int b = 0; b < B; ++b) loss += ws->row_loss[b];
    loss /= B;
    if (!g || !__builtin_isfinite(loss)) return loss;

    // Backward.
    constexpr int W = VT<T>::W;
    if (sgd_lr && Lh == 1 && (np == 1 || kb > 1)) {
        // Each part updates the W_out, W1 and b1 columns of its blocks (one part: all of them) and
        // its share of b_out, each after the products that read it: W_out's after dpre, W1's after
        // dCsub (with column blocks, the blocks' parts of it).
        const vec<T> lrv = vset<T>(T(*sgd_lr));
        bool bad[MAX_KBLOCKS] = {};
        parallel(npc, [&](int part, int n) {
            int64_t b0, b1;
            split_range(Vp / W, part, n, &b0, &b1);
            SgdOut<T> so{pv.p, lrv, vec<T>{}};
            bool first = true;  // the part's share of db_out goes with its first block
            columns(part, n, [&](int q, int v0, int v1) {
                output_backward<T>(c, L, p, so, nu, dl, H0.base(q), HD0.base(q), M0.base(q), DH0.base(q),
                                   H0.ld(q), v0, v1, first ? (int)b0 : 0, first ? (int)b1 : 0);
                first = false;
            });
            bad[part] = !all_zero<T>(so.chk);
        });
        parallel(npc, [&](int part, int n) {
            SgdOut<T> so{pv.p, lrv, vec<T>{}};
            columns(part, n, [&](int q, int v0, int v1) {
                embed_backward_sums<T>(c, ws, DH0.base(q), DH0.ld(q), Gn.base(q), Gn.ld(q), v0, v1);
                if (kb > 1)
                    embed_backward_block<T>(c, L, ws, p, Gn, q);
                else
                    embed_backward_rows<T>(c, L, ws, p, Gn, 0, 1);
                embed_backward_weights<T>(c, L, ws, Gn.base(q), Gn.ld(q), so, v0, v1);
            });
            bad[part] = bad[part] || !all_zero<T>(so.chk);
        });
        bool c_ok = true;
        auto scatter_and_c = [&] {
            embed_backward_scatter<T>(c, L, ws, g, kb);
            c_ok = sgd_update<T>(pv.p + L.C, g + L.C, L.W[0] - L.C, T(*sgd_lr));
        };
        if (npc > 1 && !std::is_same<typename std::decay<Beside>::type, NoWork>::value) {
            parallel(2, [&](int part, int) {
                if (part == 0) scatter_and_c();
                beside(part);
            });
        } else {
            scatter_and_c();
        }
        *updated = true;
        *finite = c_ok;
        for (int i = 0; i < npc; ++i) *finite = *finite && !bad[i];
        return loss;
    }
    GradOut<T> go{g};
    parallel(npc, [&](int part, int n) {
        int64_t b0, b1;
        split_range(Vp / VT<T>::W, part, n, &b0, &b1);
        if (Lh == 1) {
            bool first = true;  // the part's share of db_out goes with its first panel
            columns(part, n, [&](int q, int v0, int v1) {
                output_backward<T>(c, L, p, go, nu, dl, H0.base(q % pan), HD0.base(q % pan), M0.base(q % pan),
                                   DH0.base(q % pan), H0.ld(q % pan), v0, v1, first ? (int)b0 : 0,
                                   first ? (int)b1 : 0);
                first = false;
            });
        } else {
            int64_t v0, v1;
            split_range(hp(c, Lh - 1) / VT<T>::W, part, n, &v0, &v1);
            output_backward<T>(c, L, p, go, nu, dl, h[Lh - 1], hd[Lh - 1], mask[Lh - 1], dh[Lh - 1],
                               hp(c, Lh - 1), (int)v0, (int)v1, (int)b0, (int)b1);
        }
    });
    for (int l = Lh - 1; l > 0; --l) {
        parallel(np, [&](int part, int n) {
            int64_t v0, v1, r0, r1;
            split_range(hp(c, l) / VT<T>::W, part, n, &v0, &v1);
            split_range(nu, part, n, &r0, &r1);
            hidden_backward<T>(c, L, p, g, l, nu, h, hd, mask, dh, (int)v0, (int)v1, (int)r0, (int)r1);
        });
    }
    parallel(npc, [&](int part, int n) {
        columns(part, n, [&](int q, int v0, int v1) {
            embed_backward_sums<T>(c, ws, DH0.base(q % pan), DH0.ld(q % pan), Gn.base(q), Gn.ld(q), v0, v1);
            embed_backward_weights<T>(c, L, ws, Gn.base(q), Gn.ld(q), go, v0, v1);
            if (kb > 1) embed_backward_block<T>(c, L, ws, p, Gn, q);
        });
    });
    if (kb == 1) parallel(np, [&](int part, int n) { embed_backward_rows<T>(c, L, ws, p, Gn, part, n); });
    embed_backward_scatter<T>(c, L, ws, g, kb);
    return loss;
}
