// eval.h - the forward pass over any number of rows: loss and logits.
//
// For many rows the per-position tables are built once over the whole vocabulary,
// P_t = C @ W1_t (V, H0p), and each row's first layer is T gathers and adds.
// Rows go in chunks of ROWS; each chunk's loss is summed in row order and the chunks' sums are
// added in chunk order by the caller, so the result does not depend on the number of threads.
//
// Included inside an instruction set's namespace (see isa_impl.h), after model.h.
#pragma once

static constexpr int ROWS = 32;

// Full tables P (T, V, H0p) for the column vectors [nv0, nv1).
template <class T>
static void full_tables(const Config& c, const Layout& L, const T* p, T* P, int nv0, int nv1) {
    const int64_t ld = L.ld[0];
    for (int t = 0; t < c.T; ++t) {
        EpStore<T> ep{P + (int64_t)t * c.V * ld, ld, nullptr};
        gemm_bcast<T>(c.V, nv0, nv1, c.E, p + L.C, c.E, 1, p + L.W[0] + (int64_t)t * c.E * ld, ld, ep);
    }
}

// Memory that zeroes itself and frees itself. Allocated on the calling thread, before any parallel
// region, so that a failed allocation raises MemoryError instead of ending the process.
struct Mem {
    void* p;
    explicit Mem(size_t bytes) : p(mm::aligned_malloc(bytes)) { __builtin_memset(p, 0, bytes); }
    ~Mem() { mm::aligned_free(p); }
    Mem(const Mem&) = delete;
    Mem& operator=(const Mem&) = delete;
};

// Scratch for one chunk of up to `rows` rows: hidden activations of every layer, the logits, the
// row losses, and `extra` bytes for the caller.
template <class T>
struct RowScratch {
    T* h[MAX_HIDDEN];
    T* logits;
    double* loss;
    char* extra;
};
static inline size_t rows_bytes(const Config& c, int rows, size_t extra) {
    int64_t n = rows * padded(c.V);
    for (int l = 0; l < c.L; ++l) n += rows * padded(c.H[l]);
    return (n * sizeof(double) + sizeof(double) * rows + extra + 63) / 64 * 64;  // room for either type
}
template <class T>
static RowScratch<T> rows_carve(const Config& c, int rows, char* mem) {
    RowScratch<T> s;
    T* q = (T*)mem;
    for (int l = 0; l < c.L; ++l) {
        s.h[l] = q;
        q += rows * padded(c.H[l]);
    }
    s.logits = q;
    q += rows * padded(c.V);
    s.loss = (double*)q;
    s.extra = (char*)(s.loss + rows);
    return s;
}

// The logits (n, Vp) of n rows of contexts x (n, T), through the full tables P; single thread.
template <class T>
static void rows_forward(const Config& c, const Layout& L, const T* p, const T* P, const int32_t* x, int n,
                         RowScratch<T>& s) {
    const int64_t ld0 = L.ld[0];
    T* nomask[MAX_HIDDEN] = {nullptr};
    embed_forward<T>(c.T, 0, n, x, P, (int64_t)c.V * ld0, ld0, p + L.b[0], s.h[0], s.h[0], nullptr, 0,
                     (int)(ld0 / VT<T>::W));
    for (int l = 1; l < c.L; ++l) hidden_forward<T>(c, L, p, l, n, s.h, s.h, nomask, 0, (int)(hp(c, l) / VT<T>::W));
    output_forward<T>(c, L, p, s.h[c.L - 1], 0, n, s.logits);
}

template <class T>
static void evaluate(ParamView<T> pv, const int32_t* X, const int32_t* Y, int64_t N, double* chunk_loss, T* out) {
    const Config& c = *pv.cfg;
    const Layout& L = *pv.lay;
    const T* p = pv.p;
    const int64_t ld0 = L.ld[0], Vp = padded(c.V);
    Mem tables(sizeof(T) * c.T * c.V * ld0);
    T* P = (T*)tables.p;
    const int64_t nchunks = (N + ROWS - 1) / ROWS;
    double per_row = (double)c.H[c.L - 1] * c.V + (double)c.T * c.H[0];
    for (int l = 1; l < c.L; ++l) per_row += (double)c.H[l - 1] * c.H[l];
    int np = parts_for(per_row * (double)N);
    if (np > nchunks) np = (int)(nchunks > 0 ? nchunks : 1);
    parallel(np, [&](int part, int n) {
        int64_t v0, v1;
        split_range(ld0 / VT<T>::W, part, n, &v0, &v1);
        full_tables<T>(c, L, p, P, (int)v0, (int)v1);
    });
    const size_t bytes = rows_bytes(c, ROWS, 0);
    Mem scratch(bytes * np);
    parallel(np, [&](int part, int n) {
        RowScratch<T> s = rows_carve<T>(c, ROWS, (char*)scratch.p + bytes * part);
        for (int64_t ch = part; ch < nchunks; ch += n) {
            const int64_t r0 = ch * ROWS;
            const int rows = (int)(N - r0 < ROWS ? N - r0 : ROWS);
            rows_forward<T>(c, L, p, P, X + r0 * c.T, rows, s);
            if (out)
                for (int r = 0; r < rows; ++r)
                    __builtin_memcpy(out + (r0 + r) * c.V, s.logits + r * Vp, sizeof(T) * c.V);
            if (Y) {
                crossentropy_forward_backward<T>(0, rows, c.V, (int)Vp, s.logits, Y + r0, T(1), nullptr, s.loss);
                double sum = 0;
                for (int r = 0; r < rows; ++r) sum += s.loss[r];
                chunk_loss[ch] = sum;
            }
        }
    });
}
