// eval.h - the forward pass over any number of rows: loss and logits, for either plan.
//
// A plan is seen through a rows adapter (MlpRows, NetRows): its first layer's per-position tables
// built once over the whole vocabulary (P_t = C @ W_t (V, Np)), after which each row's first layer
// is npos gathers and adds, and the logits of a chunk of rows. Each distinct context is computed
// once when the contexts fit a table (see evaluate). Rows go in chunks of ROWS; each chunk's loss is
// summed in row order and the chunks' sums are added in chunk order by the caller, so the result
// does not depend on the number of threads.
//
// Included inside an instruction set's namespace (see isa_impl.h), after mlp.h and layers.h.
#pragma once

static constexpr int ROWS = 32;
static constexpr int CHUNKS = SUM_ROWS / ROWS;  // chunks per block (common.h: SUM_ROWS)

// Memory that zeroes itself and frees itself. Allocated on the calling thread, before any parallel
// region, so that a failed allocation raises MemoryError instead of ending the process.
struct Mem {
    void* p;
    explicit Mem(size_t bytes, bool zero = true) : p(mm::aligned_malloc(bytes)) {
        if (zero) __builtin_memset(p, 0, bytes);
    }
    ~Mem() { mm::aligned_free(p); }
    Mem(const Mem&) = delete;
    Mem& operator=(const Mem&) = delete;
};

// The MLP plan's rows.
template <class T>
struct MlpRows {
    const Config& c;
    const Layout& lay;
    const T* p;
    int V() const { return c.V; }
    int block() const { return c.T; }
    // Multiply-adds of one row's forward pass (with the full tables).
    double macs() const {
        double m = (double)c.H[c.nh - 1] * c.V + (double)c.T * c.H[0];
        for (int l = 1; l < c.nh; ++l) m += (double)c.H[l - 1] * c.H[l];
        return m;
    }
    size_t tables_size() const { return (size_t)c.T * c.V * lay.ld[0]; }  // elements of P
    void tables(T* P, int np) const { full_tables<T>(mlp_embed(c, lay), p, P, np); }
    // Bytes of scratch for `rows` rows (every hidden layer's activations and the logits).
    size_t scratch_bytes(int rows) const {
        int64_t n = rows * padded(c.V);
        for (int l = 0; l < c.nh; ++l) n += rows * padded(c.H[l]);
        return (size_t)n * sizeof(T);
    }
    // The logits (n, Vp) of n rows of contexts x (n, T), through the full tables P; single thread.
    const T* forward(const T* P, const int32_t* x, int n, char* scratch) const {
        T* h[MAX_HIDDEN];
        T* q = (T*)scratch;
        for (int l = 0; l < c.nh; ++l) {
            h[l] = q;
            q += n * padded(c.H[l]);
        }
        T* nomask[MAX_HIDDEN] = {nullptr};
        const int64_t ld0 = lay.ld[0];
        embed_forward<T>(c.T, 0, n, x, P, (int64_t)c.V * ld0, ld0, ld0, p + lay.b[0], h[0], h[0], nullptr, 0,
                         (int)(ld0 / VT<T>::W));
        for (int l = 1; l < c.nh; ++l)
            hidden_forward<T>(c, lay, p, l, n, h, h, nomask, 0, (int)(hp(c, l) / VT<T>::W));
        output_forward<T>(c, lay, p, rows_of<T>(h[c.nh - 1], hp(c, c.nh - 1), (int)hp(c, c.nh - 1)), 0, n, q);
        return q;
    }
};

// The layer plan's rows (evaluation mode: BatchNorm1d with its running statistics).
template <class T>
struct NetRows {
    const Net& net;
    const T* p;
    int V() const { return net.V; }
    int block() const { return net.T; }
    double macs() const { return net_row_macs(net); }
    size_t tables_size() const {
        const Op& op = net.ops[0];
        return op.kind == OP_EMBED_LINEAR ? (size_t)op.npos * net.V * op.ldout : 0;
    }
    void tables(T* P, int np) const {
        if (net.ops[0].kind == OP_EMBED_LINEAR) full_tables<T>(op_embed(net, net.ops[0]), p, P, np);
    }
    size_t scratch_bytes(int rows) const { return net_rows_bytes(net, rows); }
    const T* forward(const T* P, const int32_t* x, int n, char* scratch) const {
        return net_rows_forward<T>(net, p, P, x, n, (T*)scratch);
    }
};

// The number of contexts, V^T (the T ids of a context read as a number in base V, the oldest id
// first), or limit + 1 if that is more than limit.
static inline int64_t context_count(int V, int T, int64_t limit) {
    int64_t n = 1;
    for (int t = 0; t < T; ++t) {
        if (n > limit / V) return limit + 1;
        n *= V;
    }
    return n;
}

// The T ids of context number k < 2^52 (context_count) into ctx[0..T): its digits in base V, taken
// by a multiplication with inv = 1 / V and one step of correction (k * inv is within 1 of k / V),
// not two 64-bit divisions a digit (those were a quarter of evaluate's own time).
static inline void context_ids(int64_t k, int T, int V, double inv, int32_t* ctx) {
    for (int t = T - 1; t >= 0; --t) {
        int64_t q = (int64_t)((double)k * inv), r = k - q * V;
        q += (r >= V) - (r < 0);
        ctx[t] = (int32_t)(k - q * V);
        k = q;
    }
}

// Whether every id of a[0..n) is in [0, V). evaluate checks the ids it is given in the pass that
// reads them, before using any as an index: the package sends int32 arrays without checking them
// first (makemore_cpp/_validate.py: index_array), a pass over them less. Taken as the largest id
// read as unsigned (a negative one is then above any V): a max, which the compiler vectorises,
// where it left a running "and" of comparisons scalar (a fifth of loss()'s time, benchmarks/NOTES.md).
static inline bool ids_below(const int32_t* a, int64_t n, int V) {
    uint32_t most = 0;
    for (int64_t i = 0; i < n; ++i) most = (uint32_t)a[i] > most ? (uint32_t)a[i] : most;
    return most < (uint32_t)V;
}

// Rows r0..r1 of contexts X (N, T): each row's context number into kr[r], and mark[k] = 1 for
// each number k that occurs; false, and marks for only some of the rows, if an id is not below V.
// A slab of keys first, then its marks: with TT (= T) known at compile time the keys' loop is
// vectorised, and a mark is one byte stored, where a bit set in a word is a load and a store that
// wait for the last store to the same word.
template <int TT>
static bool context_keys(const int32_t* __restrict X, int64_t r0, int64_t r1, int Tt, int V,
                         int32_t* __restrict kr, uint8_t* __restrict mark) {
    const int T = TT ? TT : Tt;
    for (int64_t s0 = r0; s0 < r1; s0 += 512) {
        const int64_t s1 = r1 - s0 < 512 ? r1 : s0 + 512;
        if (!ids_below(X + s0 * T, (s1 - s0) * T, V)) return false;
        for (int64_t r = s0; r < s1; ++r) {
            int32_t k = 0;
            for (int t = 0; t < T; ++t) k = k * V + X[r * T + t];
            kr[r] = k;
        }
        for (int64_t r = s0; r < s1; ++r) mark[kr[r]] = 1;
    }
    return true;
}
static inline bool context_keys_any(const int32_t* X, int64_t r0, int64_t r1, int Tt, int V, int32_t* kr,
                                    uint8_t* mark) {
    switch (Tt) {  // the lecture's 27 characters fit a table of contexts up to 5 positions
        case 1:
            return context_keys<1>(X, r0, r1, Tt, V, kr, mark);
        case 2:
            return context_keys<2>(X, r0, r1, Tt, V, kr, mark);
        case 3:
            return context_keys<3>(X, r0, r1, Tt, V, kr, mark);
        case 4:
            return context_keys<4>(X, r0, r1, Tt, V, kr, mark);
        case 5:
            return context_keys<5>(X, r0, r1, Tt, V, kr, mark);
        case 6:
            return context_keys<6>(X, r0, r1, Tt, V, kr, mark);
        default:
            return context_keys<0>(X, r0, r1, Tt, V, kr, mark);
    }
}

// f(part, ch) for the chunks ch < nchunks on np parts, `grain` chunks at a time handed out in turn
// to the parts that ask (so a thread slowed down by other work on its core takes fewer).
template <class F>
static void for_chunks(int np, int64_t nchunks, int64_t grain, F&& f) {
    int64_t next = 0;
    parallel(np, [&](int part, int) {
        for (int64_t c0; (c0 = __atomic_fetch_add(&next, grain, __ATOMIC_RELAXED)) < nchunks;)
            for (int64_t ch = c0; ch < c0 + grain && ch < nchunks; ++ch) f(part, ch);
    });
}

// f(part, blk) for the blocks blk < nblocks (< 2^32: a share's next block and end are halves of
// one word) on np parts: part p takes the blocks of its own share
// (split_range) in order, then takes over the last blocks of the other shares still left. So a part
// reads the rows it handled in an earlier phase split the same way (kept in its core's cache),
// unless the host slows a thread down, when the other takes over its last blocks.
template <class F>
static void for_blocks_home(int np, int64_t nblocks, F&& f) {
    if (nblocks <= 0) return;
    struct alignas(64) Share {
        uint64_t w;  // the share's next block (low half) and its end (high half)
    };
    Share share[MAX_PARTS];
    for (int p = 0; p < np; ++p) {
        int64_t lo, hi;
        split_range(nblocks, p, np, &lo, &hi);
        share[p].w = (uint64_t)lo | (uint64_t)hi << 32;
    }
    parallel(np, [&](int part, int n) {
        for (int o = 0; o < n; ++o) {
            uint64_t* w = &share[(part + o) % n].w;
            for (uint64_t x = __atomic_load_n(w, __ATOMIC_RELAXED); (uint32_t)x < (uint32_t)(x >> 32);) {
                // the owner from the front, the others from the back
                const uint64_t y = o == 0 ? x + 1 : x - ((uint64_t)1 << 32);
                if (__atomic_compare_exchange_n(w, &x, y, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
                    f(part, o == 0 ? (int64_t)(uint32_t)x : (int64_t)(x >> 32) - 1);
                    x = y;  // a failed exchange reloads x; a successful one leaves it to us
                }
            }
        }
    });
}

// Bring the cache lines of [p, p + bytes) to this core: one load a line, in order.
static inline void fetch_lines(const void* p, int64_t bytes) {
    const char* q = (const char*)((uintptr_t)p & ~(uintptr_t)63);
    const char* e = (const char*)p + bytes;
    char sink = 0;
    for (; q < e; q += 64) sink ^= *(const volatile char*)q;
    (void)sink;
}

// The sum, in order, of n chunk sums.
static inline double block_sum(const double* cs, int n) {
    double s = 0;
    for (int i = 0; i < n; ++i) s += cs[i];
    return s;
}

// Scratch for one chunk of up to `rows` rows, in a block of chunk_bytes: the plan's (activations and
// logits), then the row losses, then `extra` bytes for the caller.
template <class M>
static size_t chunk_bytes(const M& m, int rows, size_t extra) {
    return (m.scratch_bytes(rows) + sizeof(double) * rows + extra + 63) / 64 * 64;
}
template <class M>
static double* chunk_loss(const M& m, int rows, char* mem) {
    return (double*)(mem + m.scratch_bytes(rows));
}
template <class M>
static char* chunk_extra(const M& m, int rows, char* mem) {
    return (char*)(chunk_loss(m, rows, mem) + rows);
}

// Returns false, with block_loss and out unfinished, if an id of X or Y is not below V.
template <class T, class M>
static bool evaluate_rows(const M& m, const int32_t* X, const int32_t* Y, int64_t N, double* block_loss,
                          T* out, bool dedup) {
    const int Tt = m.block(), V = m.V();
    const int64_t Vp = padded(V);
    const int64_t nchunks = (N + ROWS - 1) / ROWS;
    const double per_row = m.macs();

    // Contexts repeat (the lecture's 182,625 training rows hold 5,438 distinct ones): when the
    // context numbers fit a table of a few entries per row, find the distinct contexts, compute
    // each one's logits once, and give every row its context's. The same values as computing each
    // row: no row's logits depend on the other rows of its chunk, and the losses are summed in the
    // same chunks and blocks in the same order.
    const int64_t limit =
        N > ((int64_t)1 << 26) ? ((int64_t)1 << 28) : (4 * N > DEDUP_ALWAYS ? 4 * N : DEDUP_ALWAYS);
    const int64_t nctx = context_count(V, Tt, limit);
    if (dedup && nctx <= limit) {
        // Each part marks the contexts of its rows in a byte map of its own (no cache line is
        // written by two threads; nctx bytes a part, at most 4 bytes a row, as kr, or 2^28 bytes
        // past 2^26 rows); the maps' union, read in order, numbers the distinct contexts. A row's
        // number and mark cost about what 8 multiply-adds do per position (parts_for's measure).
        const int64_t most = N < nctx ? N : nctx;  // distinct contexts at most
        const int64_t stride = (nctx + 63) / 64 * 64;
        const int npn = parts_for((double)N * Tt * 8);
        Mem marks(stride * npn);
        Mem table(sizeof(int32_t) * nctx, false);  // each occurring context's index among them
        Mem keys(sizeof(int32_t) * (N + most), false);
        int32_t* id = (int32_t*)table.p;
        int32_t* kr = (int32_t*)keys.p;  // each row's context number
        int32_t* ukey = kr + N;          // each distinct context's number
        const int64_t nblocks = (N + SUM_ROWS - 1) / SUM_ROWS;
        bool bad[MAX_PARTS] = {};
        parallel(npn, [&](int part, int n) {
            int64_t b0, b1;  // whole blocks, as for_blocks_home shares the losses' pass (the same shares with
                             // as many parts)
            split_range(nblocks, part, n, &b0, &b1);
            bad[part] = !context_keys_any(X, b0 * SUM_ROWS, b1 * SUM_ROWS < N ? b1 * SUM_ROWS : N, Tt, V, kr,
                                          (uint8_t*)marks.p + part * stride);
        });
        if (any_bad(bad, npn)) return false;
        int64_t nu = 0;
        for (int64_t w = 0; w < stride / 8; ++w) {
            uint64_t m = 0;
            for (int q = 0; q < npn; ++q) m |= ((const uint64_t*)marks.p)[q * stride / 8 + w];
            static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "byte k of a word is its bits 8k..8k+7");
            for (; m; m &= m - 1) {  // a mark is 1: the set bits are the low bits of marked bytes
                const int32_t k = (int32_t)(w * 8 + __builtin_ctzll(m) / 8);
                ukey[nu] = k;
                id[k] = (int32_t)nu++;
            }
        }
        if (nu * Vp * (int64_t)sizeof(T) <= ((int64_t)256 << 20)) {
            // The distinct contexts' logits U (nu, Vp) and log-sum-exps lse (nu).
            const int64_t uchunks = (nu + ROWS - 1) / ROWS;
            int np = parts_for(per_row * (double)nu);
            if (np > uchunks) np = (int)(uchunks > 0 ? uchunks : 1);  // no rows: one part, no chunk
            Mem tables(sizeof(T) * m.tables_size());
            Mem logits(sizeof(T) * nu * Vp + sizeof(double) * nu, false);
            T* U = (T*)logits.p;
            double* lse = (double*)(U + nu * Vp);
            T* P = (T*)tables.p;
            m.tables(P, np);
            const size_t bytes = chunk_bytes(m, ROWS, sizeof(int32_t) * ROWS * Tt);
            Mem scratch(bytes * np);
            const double inv = 1.0 / V;
            Mem owners(uchunks, false);  // the part that computed each chunk of contexts
            uint8_t* owner = (uint8_t*)owners.p;
            // Each part computes a contiguous share of the chunks (another takes over its last ones
            // if it is late), rather than chunks handed out by a counter that every thread writes,
            // whose cache line then moves between the cores at every chunk (measured: the forward
            // takes 0.96 of the time that took, on 2 threads).
            for_blocks_home(np, uchunks, [&](int part, int64_t ch) {
                owner[ch] = (uint8_t)part;
                char* sm = (char*)scratch.p + bytes * part;
                int32_t* ctx = (int32_t*)chunk_extra(m, ROWS, sm);
                const int64_t u0 = ch * ROWS;
                const int rows = (int)(nu - u0 < ROWS ? nu - u0 : ROWS);
                for (int r = 0; r < rows; ++r) context_ids(ukey[u0 + r], Tt, V, inv, ctx + r * Tt);
                const T* lg = m.forward(P, ctx, rows, sm);
                crossentropy_forward<T>(0, rows, V, (int)Vp, lg, nullptr, lse + u0);
                __builtin_memcpy(U + u0 * Vp, lg, sizeof(T) * rows * Vp);
            });
            // Each row's loss is its context's lse minus its target's logit. A block's 32 chunks
            // are summed four at a time side by side (each chunk's sum still in row order): one
            // chain of dependent additions would take longer than the loads.
            // On several threads, each first requests the cache lines it will gather from: the
            // logits and lse of the contexts another part computed, then those of its own, and the
            // contexts' indices. Requested in order, many at a time, they arrive sooner than when
            // each gather waits for its own. Its own lines too: a line this core wrote and another core
            // then read may have left this core's cache (measured in benchmarks/NOTES.md).
            // Only when they fit a core's L2 cache (the lecture's: 0.7 MB): more would push each
            // other out.
            const int npr = parts_for((double)N * (out ? V * 4 : 64));
            const bool fetch = npr > 1 && nu * ((int64_t)sizeof(T) * Vp + (Y ? 8 : 0)) <= ((int64_t)1 << 20);
            bool fetched[MAX_PARTS] = {};
            for_blocks_home(npr, nblocks, [&](int part, int64_t blk) {
                const int64_t b0 = blk * SUM_ROWS, b1 = N - b0 < SUM_ROWS ? N : b0 + SUM_ROWS;
                if (Y && !ids_below(Y + b0, b1 - b0, V)) {
                    bad[part] = true;
                    return;
                }
                if (fetch && !fetched[part]) {
                    fetched[part] = true;
                    for (int own = 0; own < 2; ++own)  // the others' chunks, then its own
                        for (int64_t ch = 0; ch < uchunks; ++ch) {
                            if ((owner[ch] == part) != (own == 1)) continue;
                            const int64_t u0 = ch * ROWS, u1 = nu - u0 < ROWS ? nu : u0 + ROWS;
                            fetch_lines(U + u0 * Vp, sizeof(T) * (u1 - u0) * Vp);
                            if (Y) fetch_lines(lse + u0, sizeof(double) * (u1 - u0));
                        }
                    for (int64_t u = 0; u < nu; ++u) __builtin_prefetch(id + ukey[u]);
                }
                if (out)
                    for (int64_t r = b0; r < b1; ++r)
                        __builtin_memcpy(out + r * V, U + id[kr[r]] * Vp, sizeof(T) * V);
                if (!Y) return;
                auto term = [&](int64_t r) {
                    const int64_t u = id[kr[r]];
                    return lse[u] - (double)U[u * Vp + Y[r]];
                };
                double cs[CHUNKS];
                const int full = (int)((b1 - b0) / ROWS), nch = (int)((b1 - b0 + ROWS - 1) / ROWS);
                int j = 0;
                for (; j + 4 <= full; j += 4) {
                    const int64_t r = b0 + (int64_t)j * ROWS;
                    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                    for (int i = 0; i < ROWS; ++i) {
                        s0 += term(r + i);
                        s1 += term(r + ROWS + i);
                        s2 += term(r + 2 * ROWS + i);
                        s3 += term(r + 3 * ROWS + i);
                    }
                    cs[j] = s0, cs[j + 1] = s1, cs[j + 2] = s2, cs[j + 3] = s3;
                }
                for (; j < nch; ++j) {
                    double s0 = 0;
                    for (int64_t r = b0 + (int64_t)j * ROWS; r < b1 && r < b0 + (int64_t)(j + 1) * ROWS; ++r)
                        s0 += term(r);
                    cs[j] = s0;
                }
                block_loss[blk] = block_sum(cs, nch);
            });
            if (any_bad(bad, npr)) return false;
            return true;
        }
    }

    // Every row computed: the per-position tables are built once over the whole vocabulary, and
    // each row's first layer is npos gathers and adds.
    Mem tables(sizeof(T) * m.tables_size());
    T* P = (T*)tables.p;
    int np = parts_for(per_row * (double)N);
    if (np > nchunks) np = (int)(nchunks > 0 ? nchunks : 1);
    m.tables(P, np);
    const size_t bytes = chunk_bytes(m, ROWS, 0);
    Mem scratch(bytes * np);
    Mem sums(sizeof(double) * (Y ? nchunks : 1), false);
    double* cs = (double*)sums.p;
    bool bad[MAX_PARTS] = {};
    for_chunks(np, nchunks, 1, [&](int part, int64_t ch) {
        char* sm = (char*)scratch.p + bytes * part;
        double* loss = chunk_loss(m, ROWS, sm);
        const int64_t r0 = ch * ROWS;
        const int rows = (int)(N - r0 < ROWS ? N - r0 : ROWS);
        if (!ids_below(X + r0 * Tt, (int64_t)rows * Tt, V) || (Y && !ids_below(Y + r0, rows, V))) {
            bad[part] = true;
            return;
        }
        const T* lg = m.forward(P, X + r0 * Tt, rows, sm);
        if (out)
            for (int r = 0; r < rows; ++r) __builtin_memcpy(out + (r0 + r) * V, lg + r * Vp, sizeof(T) * V);
        if (Y) {
            crossentropy_forward<T>(0, rows, V, (int)Vp, lg, Y + r0, loss);
            double sum = 0;
            for (int r = 0; r < rows; ++r) sum += loss[r];
            cs[ch] = sum;
        }
    });
    if (any_bad(bad, np)) return false;
    if (Y)
        for (int64_t ch = 0; ch < nchunks; ch += CHUNKS)
            block_loss[ch / CHUNKS] =
                block_sum(cs + ch, (int)(nchunks - ch < CHUNKS ? nchunks - ch : CHUNKS));
    return true;
}

template <class T>
static bool evaluate(ParamView<T> pv, const int32_t* X, const int32_t* Y, int64_t N, double* block_loss,
                     T* out, bool dedup) {
    return evaluate_rows<T>(MlpRows<T>{*pv.cfg, *pv.lay, pv.p}, X, Y, N, block_loss, out, dedup);
}
template <class T>
static bool net_evaluate(NetView<T> nv, const int32_t* X, const int32_t* Y, int64_t N, double* block_loss,
                         T* out, bool dedup) {
    return evaluate_rows<T>(NetRows<T>{*nv.net, nv.p}, X, Y, N, block_loss, out, dedup);
}
