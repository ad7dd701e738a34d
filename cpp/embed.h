// embed.h - an Embedding followed by a Linear over npos positions, as per-position tables.
//
//   R  rows (examples, or groups of npos positions)    npos  positions per row    E  n_embd
//   V  vocabulary                                      N     the Linear's width (Np padded)
//
// C[X].reshape(R, npos*E) @ W never materialises C[X]: W splits into npos blocks of E rows, W_t, and
//   C[X].reshape(R, npos*E) @ W = sum_t (C @ W_t)[X[:, t]],
// so it is computed from per-position tables P_t = C[u_t] @ W_t over the distinct ids u_t at
// position t (at most min(R, V) rows each), then gathered and added. The backward pass runs the
// same way in reverse: G_t = the sum of dpre over the rows with each id, then dW_t = C[u_t]^T @ G_t
// and dC[u_t] += G_t @ W_t^T. For the lecture's batch this does about 60% of the direct arithmetic;
// for a batch of 512 at context 8 about a fifth. The MLP plan (mlp.h) runs its first layer so, and
// the layer plan (layers.h) every Embedding that a Linear follows.
//
// Rows may be grouped (group_rows): rows with the same ids at every position are one context,
// computed once.
//
// Included inside an instruction set's namespace (see isa_impl.h), after kernels.h.
#pragma once

// Where the tables' operands live in the arena.
struct EmbedGeom {
    int V, E, npos;
    int64_t C;       // the embedding table (V, E)
    int64_t W, ldW;  // the Linear's weight: position t's E rows at W + t * E * ldW
    int64_t b;       // its bias (padded), or -1
};

// ---------------------------------------------------------------------------------------------
// Column panels. The phases split by columns give part k of n the column vectors [v0, v1) of the
// Linear's output (split_range). The buffers of that width which those phases write (the tables P,
// the sums G and, in the MLP plan with one hidden layer, its activations and their gradient) keep
// each part's columns in a block of memory of its own, a panel: column j of row r of part k's panel
// at base(k)[r * ld(k) + j], j the column's index in the whole row. No page then holds two threads'
// columns: two cores writing into the same pages can slow each other down severalfold
// (benchmarks/NOTES.md). With n = 1 it is the usual row-major layout.
template <class T>
struct Panels {
    T* mem;
    int64_t rows;
    int n;
    int64_t q, r;  // the split of the column vectors: q each, one more for the first r (split_range)
    int mult;      // vectors per unit of that split (PAD / W for column blocks, else 1)
    Panels(T* mem_, int64_t rows_, int nvec, int n_, int mult_ = 1)
        : mem(mem_), rows(rows_), n(n_), q(nvec / mult_ / n_), r(nvec / mult_ % n_), mult(mult_) {}
    int64_t v0(int k) const { return (k * q + (k < r ? k : r)) * mult; }  // part k's first column vector
    int64_t ld(int k) const { return (v0(k + 1) - v0(k)) * VT<T>::W; }
    T* base(int k) const {  // panel start - v0 columns
        return mem ? mem + (rows - 1) * v0(k) * VT<T>::W : nullptr;
    }
    // Rows first .. of all the columns, as gemm_dot's operand (the panels that have columns).
    Rows<T> whole(int64_t first = 0) const {
        Rows<T> a;
        a.n = 0;
        for (int k = 0; k < n; ++k) {
            if (v0(k + 1) == v0(k)) continue;
            a.ld[a.n] = ld(k);
            a.a[a.n] = base(k) + first * a.ld[a.n];
            a.k[a.n] = (int)(v0(k) * VT<T>::W);
            ++a.n;
        }
        a.k[a.n] = (int)(v0(n) * VT<T>::W);
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
// The batch: ids, slots and contexts. Serial; they read no parameter.

// The distinct ids at each position of bt.xb (R, npos): bt.ids[t, :nids[t]] and bt.slot (R, npos)
// into them. O(R npos). Without a branch on whether an id is new (which the processor guesses
// wrong about as often as not): ids[t, n] is written for every row and kept for a new id (bt.ids
// holds one element more than npos nP for the last position's).
static void embed_index(int npos, int R, int nP, const Batch& bt) {
    for (int t = 0; t < npos; ++t) {
        int32_t* ids = bt.ids + t * nP;
        int n = 0;
        for (int b = 0; b < R; ++b) {
            const int32_t v = bt.xb[b * npos + t];
            const int32_t s = bt.seen[v];
            const int32_t fresh = s >> 31;  // -1 for a new id (seen is -1), else 0
            const int32_t k = (n & fresh) | (s & ~fresh);
            bt.seen[v] = k;
            ids[n] = v;
            n -= fresh;
            bt.slot[b * npos + t] = k;
        }
        for (int i = 0; i < n; ++i) bt.seen[ids[i]] = -1;
        bt.nids[t] = n;
    }
}

// The distinct contexts of the rows (rows with the same slot at every position; the lecture's
// batches of 32 hold about 27.6): with group, rows with one context have the same activations
// (no dropout, no batch statistics), so the layers run over the nu distinct contexts and each
// context's gradient is the sum of its rows'. With group false every row is a context of its own.
// Contexts are numbered in order of their first row. From the slots and ids of bt, into es's
// contexts and lists. O(R npos).
static void group_rows(int npos, int R, const Batch& bt, EmbedScratch* es, bool group) {
    const int32_t* slot = bt.slot;
    int32_t *uslot = es->uslot, *urow = es->urow, *ustart = es->ustart, *ht = es->htab;
    const int nP = es->nP;
    int nu = 0;
    int nb = 1;  // bits of a slot (< nP)
    while (((int64_t)1 << nb) < nP) ++nb;
    if (group) {
        const uint64_t mask = (uint64_t)es->hsize - 1;
        for (int64_t i = 0; i < es->hsize; ++i) ht[i] = -1;
        if (nb * npos <= 64) {
            // A context's slots packed into one key, hashed and compared as one number.
            const int shift = 64 - __builtin_ctzll((uint64_t)es->hsize);
            uint64_t* ckey = es->ckey;  // (nu) each context's key
            for (int b = 0; b < R; ++b) {
                const int32_t* sb = slot + b * npos;
                uint64_t k = 0;
                for (int t = 0; t < npos; ++t) k |= (uint64_t)sb[t] << (nb * t);
                for (uint64_t i = (k * 0x9E3779B97F4A7C15ull) >> shift;; i = (i + 1) & mask) {
                    int u = ht[i];
                    if (u < 0) {
                        u = ht[i] = nu++;
                        ckey[u] = k;
                        for (int t = 0; t < npos; ++t) uslot[u * npos + t] = sb[t];
                    } else if (ckey[u] != k) {
                        continue;
                    }
                    urow[b] = u;
                    break;
                }
            }
        } else {
            for (int b = 0; b < R; ++b) {
                const int32_t* sb = slot + b * npos;
                uint32_t h = 0;
                for (int t = 0; t < npos; ++t) h = (h ^ (uint32_t)sb[t]) * 0x9E3779B1u;
                for (uint64_t i = (h ^ (h >> 15)) & mask;; i = (i + 1) & mask) {
                    int u = ht[i];
                    if (u < 0) {
                        u = ht[i] = nu++;
                        for (int t = 0; t < npos; ++t) uslot[u * npos + t] = sb[t];
                    } else {
                        int t = 0;
                        while (t < npos && uslot[u * npos + t] == sb[t]) ++t;
                        if (t < npos) continue;
                    }
                    urow[b] = u;
                    break;
                }
            }
        }
    } else {
        for (int b = 0; b < R; ++b) {
            for (int t = 0; t < npos; ++t) uslot[b * npos + t] = slot[b * npos + t];
            urow[b] = b;
        }
        nu = R;
    }
    // Each context's rows, in increasing order: ulist[ustart[u] .. ustart[u + 1]).
    for (int u = 0; u <= nu; ++u) ustart[u] = 0;
    for (int b = 0; b < R; ++b) ++ustart[urow[b] + 1];
    for (int u = 0; u < nu; ++u) ustart[u + 1] += ustart[u];
    int32_t* cur = ht;  // hsize >= 2R > nu
    for (int u = 0; u < nu; ++u) cur[u] = ustart[u];
    for (int b = 0; b < R; ++b) es->ulist[cur[urow[b]]++] = b;
    es->nu = nu;
    // The contexts with each id at each position, in increasing order (for the gradient sums G_t).
    for (int t = 0; t < npos; ++t) {
        int32_t* ps = es->pstart + t * (nP + 1);
        int32_t* pl = es->plist + t * R;
        const int n = bt.nids[t];
        for (int i = 0; i <= n; ++i) ps[i] = 0;
        for (int u = 0; u < nu; ++u) ++ps[uslot[u * npos + t] + 1];
        for (int i = 0; i < n; ++i) ps[i + 1] += ps[i];
        for (int i = 0; i < n; ++i) cur[i] = ps[i];
        for (int u = 0; u < nu; ++u) pl[cur[uslot[u * npos + t]]++] = u;
    }
}

// Everything about the minibatch in es->cur.xb that reads no parameter: its ids and contexts. (The
// training loops prepare their minibatches themselves, ahead: train.h.)
static inline void prepare_batch(EmbedScratch* es, bool group) {
    embed_index(es->npos, es->R, es->nP, es->cur);
    group_rows(es->npos, es->R, es->cur, es, group);
}

// ---------------------------------------------------------------------------------------------
// Forward.

// The embedding rows Csub[t] (nids[t], E) = C[ids[t]]. Serial; O(npos nP E).
template <class T>
static void embed_rows(const EmbedGeom& g, const T* p, EmbedScratch* es) {
    const int E = g.E, nP = es->nP;
    const T* C = p + g.C;
    T* Csub = (T*)es->Csub;
    for (int t = 0; t < g.npos; ++t)
        for (int i = 0; i < es->cur.nids[t]; ++i) {
            T* dst = Csub + ((int64_t)t * nP + i) * E;
            const T* src = C + (int64_t)es->cur.ids[t * nP + i] * E;
            for (int e = 0; e < E; ++e) dst[e] = src[e];
        }
}

// P_t (n_t, Np) = Csub_t (n_t, E) @ W_t (E, Np), for the column vectors [nv0, nv1), column j of
// row i of P_t at P[(t * nP + i) * ldP + j]. Csub and P hold positions nP rows apart.
template <class T>
static void embed_tables(const EmbedGeom& g, const T* p, const int32_t* nids, int nP, const T* Csub, T* P,
                         int64_t ldP, int nv0, int nv1) {
    for (int t = 0; t < g.npos; ++t) {
        EpStore<T> ep{P + (int64_t)t * nP * ldP, ldP, nullptr};
        gemm_bcast<T>(nids[t], nv0, nv1, g.E, Csub + (int64_t)t * nP * g.E, g.E, 1,
                      p + g.W + (int64_t)t * g.E * g.ldW, g.ldW, ep);
    }
}

// The full tables of evaluation, P (npos, V, ldW) = C @ W_t, their column vectors split into n parts.
template <class T>
static void full_tables(const EmbedGeom& g, const T* p, T* P, int n) {
    parallel(n, [&](int part, int np) {
        int64_t nv0, nv1;
        split_range(g.ldW / VT<T>::W, part, np, &nv0, &nv1);
        for (int t = 0; t < g.npos; ++t) {
            EpStore<T> ep{P + (int64_t)t * g.V * g.ldW, g.ldW, nullptr};
            gemm_bcast<T>(g.V, (int)nv0, (int)nv1, g.E, p + g.C, g.E, 1, p + g.W + (int64_t)t * g.E * g.ldW,
                          g.ldW, ep);
        }
    });
}

// Row b, column vectors [nv, nv + N) of embed_forward: N chains side by side.
template <class T, int N, bool TANH>
static inline void embed_forward_vectors(int npos, const int32_t* s, const T* P, int64_t tstride, int64_t ldP,
                                         int64_t ld, const T* bias, T* h, T* hd, const T* mask, int b,
                                         int nv) {
    constexpr int W = VT<T>::W;
    const int64_t n = (int64_t)nv * W;
    vec<T> acc[N];
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) acc[j] = bias ? vload(bias + n + j * W) : vec<T>{};
    for (int t = 0; t < npos; ++t) {
        const T* row = P + t * tstride + s[t] * ldP + n;
#pragma GCC unroll 8
        for (int j = 0; j < N; ++j) acc[j] += vload(row + j * W);
    }
    if (TANH) vtanh_n<N>(acc);
#pragma GCC unroll 8
    for (int j = 0; j < N; ++j) {
        vstore(h + b * ld + n + j * W, acc[j]);
        if (mask) vstore(hd + b * ld + n + j * W, acc[j] * vload(mask + b * ld + n + j * W));
    }
}

// h[b] = bias + sum_t P_t[slot[b, t]] for rows [b0, b1) and column vectors [nv0, nv1), through
// tanh when TANH; hd = h * mask when there is dropout. P_t starts tstride elements after P_{t-1},
// its rows ldP apart; h's rows are ld apart. bias may be null (a Linear without one).
template <class T, bool TANH = true>
static void embed_forward(int npos, int b0, int b1, const int32_t* slot, const T* P, int64_t tstride,
                          int64_t ldP, int64_t ld, const T* bias, T* h, T* hd, const T* mask, int nv0,
                          int nv1) {
    for (int b = b0; b < b1; ++b) {
        const int32_t* s = slot + (int64_t)b * npos;
        int nv = nv0;
        for (; nv + 4 <= nv1; nv += 4)
            embed_forward_vectors<T, 4, TANH>(npos, s, P, tstride, ldP, ld, bias, h, hd, mask, b, nv);
        for (; nv < nv1; ++nv)
            embed_forward_vectors<T, 1, TANH>(npos, s, P, tstride, ldP, ld, bias, h, hd, mask, b, nv);
    }
}

// ---------------------------------------------------------------------------------------------
// Backward.

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

// G_t = per-id sums of dpre (nu, Np), its rows ldd apart (column vectors [nv0, nv1)): G_t[i] = the
// sum of dpre over the contexts with id i at position t, in increasing order, kept in registers 8,
// 4 or 1 vectors at a time. Row i of G_t at G + (t * nP + i) * ldG.
template <class T>
static void embed_backward_sums(const EmbedGeom& g, const EmbedScratch* es, const T* dpre, int64_t ldd, T* G,
                                int64_t ldG, int nv0, int nv1) {
    const int nP = es->nP;
    for (int t = 0; t < g.npos; ++t) {
        T* Gt = G + (int64_t)t * nP * ldG;
        const int32_t* ps = es->pstart + t * (nP + 1);
        const int32_t* pl = es->plist + t * es->R;
        for (int i = 0; i < es->cur.nids[t]; ++i) {
            const int32_t* rows = pl + ps[i];
            const int n = ps[i + 1] - ps[i];
            int nv = nv0;
            for (; nv + 8 <= nv1; nv += 8) psum_vectors<T, 8>(rows, n, dpre, ldd, nv, Gt + i * ldG);
            for (; nv + 4 <= nv1; nv += 4) psum_vectors<T, 4>(rows, n, dpre, ldd, nv, Gt + i * ldG);
            for (; nv < nv1; ++nv) psum_vectors<T, 1>(rows, n, dpre, ldd, nv, Gt + i * ldG);
        }
    }
}

// Then dW_t = Csub_t^T @ G_t and db = the column sums of dpre (= the sum of G_0's rows), through
// out (GradOut or SgdOut; with SgdOut after dCsub, which reads W).
template <class T, class Out>
static void embed_backward_weights(const EmbedGeom& g, const EmbedScratch* es, const T* G, int64_t ldG,
                                   Out& out, int nv0, int nv1) {
    const int nP = es->nP;
    const T* Csub = (const T*)es->Csub;
    for (int t = 0; t < g.npos; ++t) {
        auto ep = out.ep(g.W + (int64_t)t * g.E * g.ldW, g.ldW);
        gemm_bcast<T>(g.E, nv0, nv1, es->cur.nids[t], Csub + (int64_t)t * nP * g.E, 1, g.E,
                      G + (int64_t)t * nP * ldG, ldG, ep);
        out.take(ep);
    }
    if (g.b < 0) return;
    auto eb = out.ep(g.b, 0);
    colsum<T>(es->cur.nids[0], nv0, nv1, G, ldG, eb);
    out.take(eb);
}

// dCsub_t = G_t @ W_t^T, rows [r0, r1) of each position's table (part `part` of nparts).
template <class T>
static void embed_backward_rows(const EmbedGeom& g, EmbedScratch* es, const T* p, const Panels<T>& G,
                                int part, int nparts) {
    const int nP = es->nP;
    for (int t = 0; t < g.npos; ++t) {
        int64_t r0, r1;
        split_range(es->cur.nids[t], part, nparts, &r0, &r1);
        DotStore<T> ep{(T*)es->dCsub + (int64_t)t * nP * g.E, g.E, nullptr};
        gemm_dot<T>((int)r0, (int)r1, g.E, G.whole((int64_t)t * nP), p + g.W + (int64_t)t * g.E * g.ldW,
                    g.ldW, ep);
    }
}

// With KB column blocks (KB > 1), block q's part of dCsub: G_t[:, block q] @ W_t[:, block q]^T,
// into pdCsub[q] (its rows G's panel q).
template <class T>
static void embed_backward_block(const EmbedGeom& g, EmbedScratch* es, const T* p, const Panels<T>& G,
                                 int q) {
    const int nP = es->nP;
    T* out = (T*)es->pdCsub + (int64_t)q * g.npos * nP * g.E;
    for (int t = 0; t < g.npos; ++t) {
        DotStore<T> ep{out + (int64_t)t * nP * g.E, g.E, nullptr};
        gemm_dot<T>(0, es->cur.nids[t], g.E, G.one(q, (int64_t)t * nP), p + g.W + (int64_t)t * g.E * g.ldW,
                    g.ldW, ep);
    }
}

// dC = 0; dC[ids[t]] += dCsub_t (with KB column blocks, dCsub_t = the blocks' parts added in block
// order), into the gradient arena grad. Serial, positions in order.
template <class T>
static void embed_backward_scatter(const EmbedGeom& g, const EmbedScratch* es, T* grad, int kb) {
    const int nP = es->nP, E = g.E;
    const int32_t *ids = es->cur.ids, *nids = es->cur.nids;
    T* dC = grad + g.C;
    __builtin_memset(dC, 0, sizeof(T) * g.V * E);
    const int64_t bstride = (int64_t)g.npos * nP * E;
    for (int t = 0; t < g.npos; ++t) {
        const T* d = (const T*)(kb > 1 ? es->pdCsub : es->dCsub) + (int64_t)t * nP * E;
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
