// kernels.h - the hot loops: two register-blocked matrix products, cross-entropy, column sums.
//
// Included inside an instruction set's namespace (see isa_impl.h), after simd.h.
// MM_MR x MM_NR is the register tile of gemm_bcast (accumulators in vector registers).
//
// Every output element is summed in one fixed order that does not depend on how the work is split
// into tiles or between threads, so results are bit-identical at any thread count.
#pragma once

// ---------------------------------------------------------------------------------------------
// Work splitting.

// The parts a phase of `macs` multiply-adds is split into: below a few million multiply-adds,
// waking a second thread costs more than it saves (measured: benchmarks/NOTES.md).
static inline int parts_for(double macs) {
    int nt = mm::pool_threads();
    if (nt > MAX_PARTS) nt = MAX_PARTS;
    if (nt <= 1 || macs < 1.5e6) return 1;
    int n = (int)(macs / 0.75e6);
    return n < nt ? (n < 1 ? 1 : n) : nt;
}

// Whether a part of a job flagged a failure (an id out of range, a non-finite update).
static inline bool any_bad(const bool* bad, int nparts) {
    for (int q = 0; q < nparts; ++q)
        if (bad[q]) return true;
    return false;
}

static inline void split_range(int64_t n, int part, int nparts, int64_t* lo, int64_t* hi) {
    int64_t base = n / nparts, extra = n % nparts;
    *lo = part * base + (part < extra ? part : extra);
    *hi = *lo + base + (part < extra ? 1 : 0);
}

// Run f(part, nparts) for part < nparts on the thread pool (inline when nparts == 1).
template <class F>
static inline void parallel(int nparts, F&& f) {
    if (nparts <= 1) {
        f(0, 1);
        return;
    }
    typedef typename std::remove_reference<F>::type Fn;
    mm::pool_run(nparts, [](void* c, int part, int n) { (*(Fn*)c)(part, n); }, (void*)&f);
}

// ---------------------------------------------------------------------------------------------
// gemm_bcast: for m < M and the column vectors [nv0, nv1) of the output,
//     acc[m, n] = sum_k A(m, k) * B[k, n],   A(m, k) = a[m * sm + k * sk],   B row-major (ldb)
// then ep(m, n, acc-vector) for each vector of W columns starting at column n.
// A's elements are broadcast, B's rows are loaded as vectors: the shape for x @ W (A = x),
// x^T @ dy (A = x transposed through its strides) and dy @ W^T with W stored transposed.
// Each output lane is one chain of multiply-adds over k in order.

// An epilogue with sums (EpSgdStats) keeps a tile's in registers: apply(m, n, acc, sums) for each
// output vector, then add(sums) once a tile (kept in the epilogue, they would be stored and loaded
// again at every tile). Its sums are also its finite check (UpdateSums).
template <class E, class = void>
struct EpHasSums : std::false_type {};
template <class E>
struct EpHasSums<E, std::void_t<typename E::Sums>> : std::true_type {};

template <class T, int MR, int NR, class Ep>
static inline void kern_bcast(const T* a, int64_t sm, int64_t sk, int K, const T* b, int64_t ldb, int m0,
                              int n0, Ep& ep) {
    typedef vec<T> V;
    constexpr int W = VT<T>::W;
    V acc[MR][NR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) acc[i][j] = V{};
    const T* ap = a + m0 * sm;
    const T* bp = b + n0;
    for (int k = 0; k < K; ++k) {
        V bv[NR];
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) bv[j] = vload(bp + j * W);
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
            V av = vset(ap[i * sm]);
#pragma GCC unroll 8
            for (int j = 0; j < NR; ++j) acc[i][j] += av * bv[j];
        }
        ap += sk;
        bp += ldb;
    }
    Ep e = ep;  // a local copy: the compiler then need not reload its fields after each store
    if constexpr (EpHasSums<Ep>::value) {
        typename Ep::Sums ts{};  // the tile's sums, in registers
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
            for (int j = 0; j < NR; ++j) e.apply(m0 + i, n0 + j * W, acc[i][j], ts);
        e.add(ts);
    } else {
        V chk = V{};
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
            for (int j = 0; j < NR; ++j) chk += e(m0 + i, n0 + j * W, acc[i][j]);
        e.check(chk);
    }
    ep = e;
}

template <class T, class Ep, int MR, int NR = 1>
static inline void kern_bcast_nr(int nr, const T* a, int64_t sm, int64_t sk, int K, const T* b, int64_t ldb,
                                 int m0, int n0, Ep& ep) {
    if constexpr (NR <= MM_NR) {
        if (nr == NR)
            kern_bcast<T, MR, NR, Ep>(a, sm, sk, K, b, ldb, m0, n0, ep);
        else
            kern_bcast_nr<T, Ep, MR, NR + 1>(nr, a, sm, sk, K, b, ldb, m0, n0, ep);
    }
}
template <class T, class Ep, int MR = 1>
static inline void kern_bcast_mr(int mr, int nr, const T* a, int64_t sm, int64_t sk, int K, const T* b,
                                 int64_t ldb, int m0, int n0, Ep& ep) {
    if constexpr (MR <= MM_MR) {
        if (mr == MR)
            kern_bcast_nr<T, Ep, MR>(nr, a, sm, sk, K, b, ldb, m0, n0, ep);
        else
            kern_bcast_mr<T, Ep, MR + 1>(mr, nr, a, sm, sk, K, b, ldb, m0, n0, ep);
    }
}

template <class T, class Ep>
static void gemm_bcast(int M, int nv0, int nv1, int K, const T* a, int64_t sm, int64_t sk, const T* b,
                       int64_t ldb, Ep& ep) {
    constexpr int W = VT<T>::W;
    int nv = nv1 - nv0;
    if (nv <= 0 || M <= 0) return;
    // Balanced tiles: no tile is much narrower or shorter than the others.
    int nch = (nv + MM_NR - 1) / MM_NR, nbase = nv / nch, nextra = nv % nch;
    int mt = (M + MM_MR - 1) / MM_MR, mbase = M / mt, mextra = M % mt;
    int n = nv0;
    for (int c = 0; c < nch; ++c) {
        int nr = nbase + (c < nextra);
        int m = 0;
        for (int r = 0; r < mt; ++r) {
            int mr = mbase + (r < mextra);
            kern_bcast_mr<T, Ep>(mr, nr, a, sm, sk, K, b, ldb, m, n * W, ep);
            m += mr;
        }
        n += nr;
    }
}

// Epilogues of gemm_bcast: ep(m, n, acc) for each output vector returns lanes whose sum over a
// tile goes to ep.check (zero but for EpSgd, which checks what it writes; the sum is kept in
// registers by the kernel: a sum in the epilogue's memory would be reloaded after every store).
template <class T>
struct EpStore {  // out = acc (+ bias)
    T* out;
    int64_t ld;
    const T* bias;
    inline vec<T> operator()(int m, int n, vec<T> acc) const {
        if (bias) acc += vload(bias + n);
        vstore(out + m * ld + n, acc);
        return vec<T>{};
    }
    void check(vec<T>) const {}
};
template <class T>
struct EpTanh {  // h = tanh(acc + bias); hd = h * mask when there is dropout
    T* h;
    T* hd;
    const T* mask;
    int64_t ld;
    const T* bias;
    inline vec<T> operator()(int m, int n, vec<T> acc) const {
        vec<T> y = vtanh(acc + vload(bias + n));
        vstore(h + m * ld + n, y);
        if (mask) vstore(hd + m * ld + n, y * vload(mask + m * ld + n));
        return vec<T>{};
    }
    void check(vec<T>) const {}
};
template <class T>
struct EpDtanh {  // dpre = acc * mask * (1 - h^2): back through dropout and tanh
    T* out;
    const T* h;
    const T* mask;
    int64_t ld;
    inline vec<T> operator()(int m, int n, vec<T> acc) const {
        vec<T> y = vload(h + m * ld + n);
        if (mask) acc *= vload(mask + m * ld + n);
        vstore(out + m * ld + n, acc * (T(1) - y * y));
        return vec<T>{};
    }
    void check(vec<T>) const {}
};

// Where a backward pass puts a parameter block's gradient (at offset off of the arena, rows ld
// apart): into the gradient arena (GradOut), or, for plain SGD taken inside the step, straight into
// the parameters as the update p -= lr * grad (SgdOut: the same bits as storing the gradient and
// updating after; chk sums p * 0 over the updated parameters, so it is NaN once one is not finite).
// ep(off, ld) is the block's epilogue (of gemm_bcast or colsum); take(ep) after its product.
// Plain SGD on one vector of parameters: p -= lr * d; returns p * 0 (0, or NaN where a parameter
// is not finite).
template <class T>
static inline vec<T> sgd_vector(T* p, vec<T> lr, vec<T> d) {
    vec<T> x = vload(p) - lr * d;
    vstore(p, x);
    return x * T(0);
}
template <class T>
static inline bool all_zero(vec<T> x) {
    bool z = true;
    for (int k = 0; k < VT<T>::W; ++k) z = z && x[k] == T(0);
    return z;
}
// Whether each of n values is finite.
template <class T>
static bool all_finite(const T* p, int64_t n) {
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) ok = ok && __builtin_isfinite(p[i]);
    return ok;
}
// Plain SGD on n parameters (a multiple of the vector width) from their gradient g; returns whether
// every updated parameter is finite.
template <class T>
static inline bool sgd_update(T* p, const T* g, int64_t n, T lr) {
    const vec<T> lrv = vset<T>(lr);
    vec<T> chk = vec<T>{};
    for (int64_t i = 0; i < n; i += VT<T>::W) chk += sgd_vector<T>(p + i, lrv, vload(g + i));
    return all_zero<T>(chk);
}
template <class T>
struct EpSgd {
    T* p;
    int64_t ld;
    vec<T> lr, chk;
    inline vec<T> operator()(int m, int n, vec<T> acc) const {
        return sgd_vector<T>(p + m * ld + n, lr, acc);
    }
    void check(vec<T> c) { chk += c; }
};
// With the update's statistics (STATS): the sums of the update u and of the parameter x after it,
// u, u^2, x, x^2, as sgd_vector updates each vector (the same bits), lane by lane. They are the
// update's finite check too: x is not finite once an updated parameter is not (or once the sum
// overflows, which the caller tells apart by looking at the parameters: train.h).
template <class T>
struct UpdateSums {
    vec<T> u, u2, x, x2;
    inline void apply(T* p, vec<T> lr, vec<T> d) {
        const vec<T> before = vload(p), after = before - lr * d, du = after - before;
        vstore(p, after);
        u += du, u2 += du * du, x += after, x2 += after * after;
    }
    inline void add(const UpdateSums& s) { u += s.u, u2 += s.u2, x += s.x, x2 += s.x2; }
};
template <class T>
struct EpSgdStats {
    typedef UpdateSums<T> Sums;
    T* p;
    int64_t ld;
    vec<T> lr;
    Sums* param;  // the sums of the parameter the block belongs to
    inline void apply(int m, int n, vec<T> acc, Sums& s) const { s.apply(p + m * ld + n, lr, acc); }
    void add(const Sums& s) const { param->add(s); }
};

// update(p, g, n): the update of n parameters from a gradient computed whole (C's, in the MLP
// plan), ok(): whether every parameter updated so far is finite, and part(k): the Out of part k of
// a phase.
template <class T>
struct GradOut {
    static constexpr bool updates = false;
    T* g;
    EpStore<T> ep(int64_t off, int64_t ld) const { return EpStore<T>{g + off, ld, nullptr}; }
    void take(const EpStore<T>&) {}
    bool update(T*, const T*, int64_t) const { return true; }
    bool ok() const { return true; }
    GradOut part(int) const { return *this; }
};
// With STATS, part k adds its updates' sums to sums[k * nspans + q] (UpdateSums, q the parameter
// of spans the block lies in), and they are the finite check: ok() is then the caller's.
template <class T, bool STATS = false>
struct SgdOut {
    static constexpr bool updates = true;
    typedef typename std::conditional<STATS, EpSgdStats<T>, EpSgd<T>>::type Ep;
    T* p;
    vec<T> lr, chk;
    UpdateSums<T>* sums = nullptr;
    const ParamSpan* spans = nullptr;
    int nspans = 0;
    Ep ep(int64_t off, int64_t ld) const {
        if constexpr (STATS)
            return Ep{p + off, ld, lr, param(off)};
        else
            return Ep{p + off, ld, lr, vec<T>{}};
    }
    void take(const Ep& e) {
        if constexpr (!STATS) chk += e.chk;
    }
    bool update(T* q, const T* g, int64_t n) {
        if constexpr (STATS) {
            UpdateSums<T> us{};
            for (int64_t i = 0; i < n; i += VT<T>::W) us.apply(q + i, lr, vload(g + i));
            param(q - p)->add(us);
            return true;
        } else {
            return sgd_update<T>(q, g, n, lr[0]);
        }
    }
    bool ok() const { return all_zero<T>(chk); }
    SgdOut part(int k) const {
        SgdOut o = *this;
        o.chk = vec<T>{};
        if (sums) o.sums = sums + (int64_t)k * nspans;
        return o;
    }
    UpdateSums<T>* param(int64_t off) const {
        int q = 0;
        while (q + 1 < nspans && off >= spans[q].off + spans[q].span) ++q;
        return sums + q;
    }
};

// ---------------------------------------------------------------------------------------------
// gemm_dot: for rows m in [m0, m1) and n < N,
//     s = sum_k a[m * lda + k] * b[n * ldb + k]      (k < Kp, a multiple of the vector width)
// then ep(m, n, s). Rows of both operands are loaded as vectors and each output is a dot product:
// the shape for h @ W^T with W stored as rows of length K (the output layer, and dx = dy @ W^T).
// A tile of MR x NR = W outputs keeps W vector accumulators and reduces them together (vreduce).
// The last rows, fewer than MR, go one at a time in tiles of 1 x W outputs: each output's lanes are
// summed in one order whatever its tile (the same bits), where a tile of MR rows would compute rows
// that are not there (4 times the work for a single row, the sampler's usual batch at its end).
// Columns past the end of a tile repeat the last column (computed, not stored).

// The rows of gemm_dot's first operand: columns [k[s], k[s + 1]) of row m at a[s][m * ld[s] + column],
// for s < n, each segment at least one vector (kern_dot reads one before its test). One block
// (n = 1), or the column panels of a buffer split between threads (model.h: Panels). A row read in
// panels is summed in the same order as a row read whole.
template <class T>
struct Rows {
    int n;
    const T* a[MAX_PARTS];
    int64_t ld[MAX_PARTS];
    int k[MAX_PARTS + 1];
};
template <class T>
static inline Rows<T> rows_of(const T* a, int64_t lda, int Kp) {
    Rows<T> r;
    r.n = 1;
    r.a[0] = a;
    r.ld[0] = lda;
    r.k[0] = 0;
    r.k[1] = Kp;
    return r;
}

// Not inlined: inlined into a loop over positions (embed_backward_rows) it spilled an accumulator.
// SEG false: one block (A.n == 1), which the compiler then reads as plain arguments.
template <class T, int MR, int NR, class Ep, bool SEG>
__attribute__((noinline)) static void kern_dot(const Rows<T>& A, const T* b, int64_t ldb, int m0, int n0,
                                               int nr, Ep& ep) {
    typedef vec<T> V;
    constexpr int W = VT<T>::W;
    static_assert(MR * NR == W, "one accumulator per lane");
    const T* bp[NR];
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) bp[j] = b + (n0 + (j < nr ? j : nr - 1)) * ldb;
    V acc[W];
#pragma GCC unroll 16
    for (int q = 0; q < W; ++q) acc[q] = V{};
    const int nseg = SEG ? A.n : 1;
    int sg = 0;
    do {  // do-while loops: with a test before the first pass, GCC kept acc in memory
        const T* ap[MR];
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) ap[i] = A.a[sg] + (m0 + i) * A.ld[sg];
        const int k1 = A.k[sg + 1];
        int k = A.k[sg];
        do {
            V av[MR], bv[NR];
#pragma GCC unroll 8
            for (int i = 0; i < MR; ++i) av[i] = vload(ap[i] + k);
#pragma GCC unroll 16
            for (int j = 0; j < NR; ++j) bv[j] = vload(bp[j] + k);
#pragma GCC unroll 8
            for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
                for (int j = 0; j < NR; ++j) acc[i * NR + j] += av[i] * bv[j];
            k += W;
        } while (k < k1);
    } while (++sg < nseg);
    V s = vreduce<T, W>(acc);
    T t[W];
    vstore(t, s);
    if (nr == NR)  // whole rows of the tile: loops of fixed length, which the compiler vectorises
        ep.template tile<MR, NR>(m0, n0, MR, t);
    else
        for (int i = 0; i < MR; ++i)
            for (int j = 0; j < nr; ++j) ep(m0 + i, n0 + j, t[i * NR + j]);
}

template <class T>
struct DotTile {
    static constexpr int W = VT<T>::W;
    static constexpr int MR = W >= 8 ? 4 : (W >= 2 ? 2 : 1);
    static constexpr int NR = W / MR;
};

template <class T, class Ep>
static void gemm_dot(int m0, int m1, int N, const Rows<T>& A, const T* b, int64_t ldb, Ep& ep) {
    constexpr int MR = DotTile<T>::MR, NR = DotTile<T>::NR, W = VT<T>::W;
    const int full = m1 - m0 < MR ? m0 : m0 + (m1 - m0) / MR * MR;
    for (int n = 0; n < N; n += NR) {
        const int nr = N - n < NR ? N - n : NR;
        for (int m = m0; m < full; m += MR) {
            if (A.n == 1)
                kern_dot<T, MR, NR, Ep, false>(A, b, ldb, m, n, nr, ep);
            else
                kern_dot<T, MR, NR, Ep, true>(A, b, ldb, m, n, nr, ep);
        }
    }
    for (int m = full; m < m1; ++m)
        for (int n = 0; n < N; n += W) {
            const int nr = N - n < W ? N - n : W;
            if (A.n == 1)
                kern_dot<T, 1, W, Ep, false>(A, b, ldb, m, n, nr, ep);
            else
                kern_dot<T, 1, W, Ep, true>(A, b, ldb, m, n, nr, ep);
        }
}
template <class T, class Ep>
static void gemm_dot(int m0, int m1, int N, int Kp, const T* a, int64_t lda, const T* b, int64_t ldb,
                     Ep& ep) {
    gemm_dot<T, Ep>(m0, m1, N, rows_of(a, lda, Kp), b, ldb, ep);
}

// Epilogues of gemm_dot.
template <class T>
struct DotStore {  // out = s (+ bias)
    T* out;
    int64_t ld;
    const T* bias;
    inline void operator()(int m, int n, T s) const { out[m * ld + n] = bias ? s + bias[n] : s; }
    template <int MR, int NR>  // the outputs s[i * NR + j] of rows m + i < m + mr, columns n + j
    inline void tile(int m, int n, int mr, const T* s) const {
        T* o = out + m * ld + n;
        if (bias) {
            for (int i = 0; i < mr; ++i)
                for (int j = 0; j < NR; ++j) o[i * ld + j] = s[i * NR + j] + bias[n + j];
        } else {
            for (int i = 0; i < mr; ++i)
                for (int j = 0; j < NR; ++j) o[i * ld + j] = s[i * NR + j];
        }
    }
};
template <class T>
struct DotDtanh {  // dpre = s * mask * (1 - h^2)
    T* out;
    const T* h;
    const T* mask;
    int64_t ld;
    inline void operator()(int m, int n, T s) const {
        T y = h[m * ld + n];
        if (mask) s *= mask[m * ld + n];
        out[m * ld + n] = s * (T(1) - y * y);
    }
    template <int MR, int NR>
    inline void tile(int m, int n, int mr, const T* s) const {
        for (int i = 0; i < mr; ++i)
            for (int j = 0; j < NR; ++j) (*this)(m + i, n + j, s[i * NR + j]);
    }
};

// ---------------------------------------------------------------------------------------------
// Cross-entropy, max-subtracted:
//     loss_b = log(sum_v exp(l_bv - m_b)) + m_b - l_b,y_b
//     dl_bv  = (softmax(l_b)_v - [v == y_b]) * scale
// logits and dl are (rows, Vp) with V valid columns; dl's padding is written as zeros.

// N rows' max m and sum_v exp(l_v - m) (the exps into d[r] if d is not null), the rows side by side:
// each row's operations are those of one row alone, in the same order; N rows hide each other's
// latency (a row is a chain of max, fold, exp, sum and fold). Both cross-entropies take rows 4 at
// a time (rows_expsum).
template <class T, int N>
static inline void row_expsum(const T* const* l, int V, int Vp, T* const* d, T* m, T* sum) {
    typedef vec<T> Vv;
    constexpr int W = VT<T>::W;
    const ivec<T> lane = viota<T>();
    Vv mx[N], s[N];
#pragma GCC unroll 8
    for (int r = 0; r < N; ++r) mx[r] = vset<T>(-__builtin_inf());
    for (int v = 0; v < Vp; v += W) {
        const ivec<T> in = lane + v < V;
#pragma GCC unroll 8
        for (int r = 0; r < N; ++r)
            mx[r] = vselect<T>(in, vselect<T>(vload(l[r] + v) > mx[r], vload(l[r] + v), mx[r]), mx[r]);
    }
#pragma GCC unroll 8
    for (int r = 0; r < N; ++r) {
        m[r] = hmax<T>(mx[r]);
        s[r] = Vv{};
    }
    for (int v = 0; v < Vp; v += W) {
        const ivec<T> in = lane + v < V;
#pragma GCC unroll 8
        for (int r = 0; r < N; ++r) {
            Vv e = vselect<T>(in, vexp(vload(l[r] + v) - m[r]), Vv{});
            s[r] += e;
            if (d) vstore(d[r] + v, e);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < N; ++r) sum[r] = hsum<T>(s[r]);
}

// Rows [b0, b1) of a (rows, Vp) buffer of logits, 4 side by side, then one at a time: f(b, n, m, sum)
// with rows b .. b + n - 1's maxima m[r] and sums sum[r]; their exps go to d's rows if d is not null.
template <class T, class F>
static inline void rows_expsum(int b0, int b1, int V, int Vp, const T* logits, T* d, F&& f) {
    int b = b0;
    for (; b + 4 <= b1; b += 4) {
        const T* l[4];
        T* dr[4];
        T m[4], sum[4];
        for (int r = 0; r < 4; ++r) {
            l[r] = logits + (int64_t)(b + r) * Vp;
            dr[r] = d ? d + (int64_t)(b + r) * Vp : nullptr;
        }
        row_expsum<T, 4>(l, V, Vp, d ? dr : nullptr, m, sum);
        f(b, 4, m, sum);
    }
    for (; b < b1; ++b) {
        const T* l[1] = {logits + (int64_t)b * Vp};
        T* dr[1] = {d ? d + (int64_t)b * Vp : nullptr};
        T m[1], sum[1];
        row_expsum<T, 1>(l, V, Vp, d ? dr : nullptr, m, sum);
        f(b, 1, m, sum);
    }
}

// The losses of rows [b0, b1) (no gradient): loss_b into row_loss[b]; with y null,
// log(sum_v exp(l_bv - m_b)) + m_b, from which loss_b is that minus l_b,y_b.
template <class T>
static void crossentropy_forward(int b0, int b1, int V, int Vp, const T* logits, const int32_t* y,
                                 double* row_loss) {
    rows_expsum<T>(b0, b1, V, Vp, logits, nullptr, [&](int b, int n, const T* m, const T* sum) {
        for (int r = 0; r < n; ++r) {
            const double lse = __builtin_log((double)sum[r]) + (double)m[r];
            row_loss[b + r] = y ? lse - (double)logits[(int64_t)(b + r) * Vp + y[b + r]] : lse;
        }
    });
}

// Forward and backward for rows that share logits: context u in [u0, u1) has the logits row u and
// the rows ulist[ustart[u] .. ustart[u + 1]). Each row's loss as above, and one dlogits row
// per context: the sum, in row order, of its rows' dlogits rows (so that rows whose gradients
// cancel exactly still do: a sum scaled by the row count would not). Each later row adds
// q = exp * scale / sum, recomputed from the same exps; on the lanes of vectors without the row's
// target the compiler may fuse that product into the add (one rounding instead of two), and which
// vectors it fuses depends on how the loop was compiled: the bits are the build's and the
// instruction set's, the same at any thread count. So the contexts' maxima, exps and sums are taken
// first, 4 contexts side by side (rows_expsum: each row's operations those of one row alone), and
// then each context's scaling and rows one context at a time, in one loop whose code does not
// depend on how many contexts there are: taken 4 at a time, the AVX-512 build fused other vectors
// and dlogits moved in the last bit (benchmarks/NOTES.md).
template <class T>
static void crossentropy_grouped(int u0, int u1, int V, int Vp, const T* logits, const int32_t* y,
                                 const int32_t* ustart, const int32_t* ulist, T scale, T* dl,
                                 double* row_loss) {
    typedef vec<T> Vv;
    constexpr int W = VT<T>::W, CH = 64;
    const ivec<T> lane = viota<T>();
    // Contexts a chunk: at most CH, and their exps within ~32 KB (read again by the rows' loop).
    const int64_t fit = ((int64_t)32768 / ((int64_t)Vp * (int64_t)sizeof(T))) / 4 * 4;
    const int ch = fit < 4 ? 4 : (fit > CH ? CH : (int)fit);
    T mx[CH], sm[CH];
    for (int c0 = u0; c0 < u1; c0 += ch) {
        const int c1 = u1 - c0 < ch ? u1 : c0 + ch;
        rows_expsum<T>(c0, c1, V, Vp, logits, dl, [&](int u, int n, const T* m, const T* sum) {
            for (int r = 0; r < n; ++r) {
                mx[u - c0 + r] = m[r];
                sm[u - c0 + r] = sum[r];
            }
        });
        for (int u = c0; u < c1; ++u) {
            const T* l = logits + (int64_t)u * Vp;
            T* d = dl + (int64_t)u * Vp;
            const T m = mx[u - c0], sum = sm[u - c0];
            const double lse = __builtin_log((double)sum) + (double)m;
            const Vv f = vset<T>(scale / sum);
            for (int v = 0; v < Vp; v += W) vstore(d + v, vload(d + v) * f);  // q = softmax * scale
            const int i0 = ustart[u], i1 = ustart[u + 1];
            for (int i = i0; i < i1; ++i) {
                const int b = ulist[i], yb = y[b];
                row_loss[b] = lse - (double)l[yb];
                if (i == i0) {
                    d[yb] -= scale;  // the first row's dlogits: q - scale at its target
                    continue;
                }
                // d += q, then d[yb] = (d[yb] before) + (q[yb] - scale); q again from the same exps.
                const T before = d[yb];
                T qy = 0;
                for (int v = 0; v < Vp; v += W) {
                    Vv q = vselect<T>(lane + v < V, vexp(vload(l + v) - m), Vv{}) * f;
                    if (yb >= v && yb < v + W) qy = q[yb - v];
                    vstore(d + v, vload(d + v) + q);
                }
                d[yb] = before + (qy - scale);
            }
        }
    }
}

// s[n] = sum_{r < R} x[r * ld + n] for the column vectors [nv0, nv1), rows in order, then
// ep(0, n, s) for each vector (an epilogue of gemm_bcast with ld 0).
template <class T, class Ep>
static void colsum(int R, int nv0, int nv1, const T* x, int64_t ld, Ep& ep) {
    constexpr int W = VT<T>::W;
    vec<T> chk = vec<T>{};
    for (int nv = nv0; nv < nv1; ++nv) {
        vec<T> s = vec<T>{};
        for (int r = 0; r < R; ++r) s += vload(x + r * ld + nv * W);
        if constexpr (EpHasSums<Ep>::value) {
            typename Ep::Sums ts{};
            ep.apply(0, nv * W, s, ts);
            ep.add(ts);
        } else {
            chk += ep(0, nv * W, s);
        }
    }
    if constexpr (!EpHasSums<Ep>::value) ep.check(chk);
}

// out[r] = (parts_0[r] + parts_1[r] + ... + parts_{kb-1}[r]) + bias, added in that order, for rows
// [r0, r1) of Vp columns; parts_q at parts + q * stride, rows Vp apart.
template <class T>
static void block_sums(int r0, int r1, int kb, const T* parts, int64_t stride, int64_t Vp, const T* bias,
                       T* out) {
    constexpr int W = VT<T>::W;
    for (int64_t r = r0; r < r1; ++r)
        for (int64_t v = 0; v < Vp; v += W) {
            vec<T> s = vload(parts + r * Vp + v);
            for (int q = 1; q < kb; ++q) s += vload(parts + q * stride + r * Vp + v);
            vstore(out + r * Vp + v, s + vload(bias + v));
        }
}

// ---------------------------------------------------------------------------------------------
// Dropout masks: mask[b, j] = 1/(1-p) if unit j of row b of hidden layer l of L is kept, else 0
// (see rng.h), for rows [b0, b1) of B and columns [j0, j1) of H (j1 <= H; padding stays 0).
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
