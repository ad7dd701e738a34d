// core.cpp - layouts, parameter storage and initialisation, workspaces, and the choice of
// instruction set. Compiled for the baseline ISA; nothing here is hot.
#include "core.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

#include "rng.h"

namespace mm {

// ---------------------------------------------------------------------------------------------
// Memory.

void* aligned_malloc(size_t bytes) {
    void* p = nullptr;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) throw std::bad_alloc();
    return p;
}
void aligned_free(void* p) { free(p); }

// ---------------------------------------------------------------------------------------------
// Layout.

Layout make_layout(const Config& c) {
    Layout L;
    std::memset(&L, 0, sizeof L);
    int64_t off = 0;
    L.C = off;
    off += padded((int64_t)c.V * c.E);
    for (int l = 0; l <= c.L; ++l) {
        if (l == 0) {
            L.rows[l] = (int64_t)c.T * c.E;
            L.ld[l] = padded(c.H[0]);
        } else if (l < c.L) {
            L.rows[l] = c.H[l - 1];
            L.ld[l] = padded(c.H[l]);
        } else {
            L.rows[l] = c.V;
            L.ld[l] = padded(c.H[c.L - 1]);
        }
        L.W[l] = off;
        off += L.rows[l] * L.ld[l];
        L.nb[l] = l < c.L ? padded(c.H[l]) : padded(c.V);
        L.b[l] = off;
        off += L.nb[l];
    }
    L.total = off;
    return L;
}

void param_shape(const Config& c, int q, int64_t* rows, int64_t* cols) {
    if (q == 0) {
        *rows = c.V;
        *cols = c.E;
        return;
    }
    const int l = (q - 1) / 2;
    const int64_t in = l == 0 ? (int64_t)c.T * c.E : c.H[l - 1];
    const int64_t out = l < c.L ? c.H[l] : c.V;
    if ((q - 1) % 2 == 0) {
        *rows = in;
        *cols = out;
    } else {
        *rows = out;
        *cols = 0;
    }
}

// Arena offset of element (r, k) of parameter q in the user's layout.
static inline int64_t arena_index(const Config& c, const Layout& L, int q, int64_t r, int64_t k) {
    if (q == 0) return L.C + r * c.E + k;
    const int l = (q - 1) / 2;
    if ((q - 1) % 2 == 1) return L.b[l] + r;
    if (l < c.L) return L.W[l] + r * L.ld[l] + k;
    return L.W[l] + k * L.ld[l] + r;  // the output layer is stored transposed
}

template <class T>
static void arena_copy(const Config& c, const Layout& L, T* arena, int q, T* user, bool to_user) {
    int64_t rows, cols;
    param_shape(c, q, &rows, &cols);
    const int64_t nc = cols ? cols : 1;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < nc; ++k) {
            T& a = arena[arena_index(c, L, q, r, k)];
            T& u = user[r * nc + k];
            if (to_user)
                u = a;
            else
                a = u;
        }
}

void arena_read(const Config& c, const Layout& L, int elem, const void* arena, int q, void* out) {
    if (elem == 4)
        arena_copy<float>(c, L, (float*)arena, q, (float*)out, true);
    else
        arena_copy<double>(c, L, (double*)arena, q, (double*)out, true);
}
void arena_write(const Config& c, const Layout& L, int elem, void* arena, int q, const void* in) {
    if (elem == 4)
        arena_copy<float>(c, L, (float*)arena, q, (float*)in, false);
    else
        arena_copy<double>(c, L, (double*)arena, q, (double*)in, false);
}

// ---------------------------------------------------------------------------------------------
// Model.

Model::Model(const Config& c, int elem_size) : cfg(c), lay(make_layout(c)), elem(elem_size) {
    p = aligned_malloc((size_t)lay.total * elem);
    std::memset(p, 0, (size_t)lay.total * elem);
}
Model::~Model() { aligned_free(p); }

template <class T>
static void init_params(const Config& c, const Layout& L, T* arena, uint64_t seed, int kind) {
    const uint64_t key = rng::key(seed, rng::INIT);
    for (int q = 0; q < param_count(c); ++q) {
        int64_t rows, cols;
        param_shape(c, q, &rows, &cols);
        const int64_t nc = cols ? cols : 1;
        double scale = 1.0;
        if (kind == INIT_KAIMING && q > 0) {
            const int l = (q - 1) / 2;
            const bool weight = (q - 1) % 2 == 0, out = l == c.L;
            if (weight)
                scale = out ? 0.01 : (5.0 / 3.0) / std::sqrt((double)rows);
            else
                scale = out ? 0.0 : 0.01;
        }
        const uint64_t base = (uint64_t)q << 40;
        for (int64_t e = 0; e < rows * nc; ++e) {
            const uint64_t d1 = rng::draw(key, base + 2 * (uint64_t)e),
                           d2 = rng::draw(key, base + 2 * (uint64_t)e + 1);
            const double u1 = (double)((d1 >> 11) + 1) * 0x1.0p-53, u2 = (double)(d2 >> 11) * 0x1.0p-53;
            const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
            arena[arena_index(c, L, q, e / nc, e % nc)] = (T)(z * scale);
        }
    }
}

void Model::init(uint64_t seed, int kind) {
    if (elem == 4)
        init_params<float>(cfg, lay, (float*)p, seed, kind);
    else
        init_params<double>(cfg, lay, (double*)p, seed, kind);
}

// ---------------------------------------------------------------------------------------------
// Workspace: every buffer 64-byte aligned, carved from one zeroed allocation.

Workspace* workspace_create(const Config& c, const Layout& L, int B, int elem, bool dropout, bool moments) {
    const int nP = B < c.V ? B : c.V;
    const int64_t Vp = padded(c.V);
    size_t total = 0;
    auto take = [&](size_t bytes) {
        size_t at = total;
        total += (bytes + 63) / 64 * 64;
        return at;
    };
    size_t o_xb = take(4ull * B * c.T), o_yb = take(4ull * B), o_rows = take(8ull * B),
           o_slot = take(4ull * B * c.T);
    size_t o_ids = take(4ull * (c.T * nP + 1)), o_nids = take(4ull * c.T), o_seen = take(4ull * c.V);
    size_t n_xb = take(4ull * B * c.T), n_yb = take(4ull * B), n_rows = take(8ull * B),
           n_slot = take(4ull * B * c.T);
    size_t n_ids = take(4ull * (c.T * nP + 1)), n_nids = take(4ull * c.T), n_seen = take(4ull * c.V);
    int64_t hsize = 1;
    while (hsize < 2 * (int64_t)B) hsize *= 2;
    size_t o_uslot = take(4ull * B * c.T), o_ustart = take(4ull * (B + 1)), o_ulist = take(4ull * B);
    size_t o_urow = take(4ull * B), o_htab = take(4ull * hsize), o_ckey = take(8ull * B);
    size_t o_pstart = take(4ull * c.T * (nP + 1)), o_plist = take(4ull * c.T * B);
    size_t o_Csub = take((size_t)elem * c.T * nP * c.E), o_P = take((size_t)elem * c.T * nP * L.ld[0]);
    size_t o_G = take((size_t)elem * c.T * nP * L.ld[0]), o_dC = take((size_t)elem * c.T * nP * c.E);
    size_t o_h[MAX_HIDDEN], o_hd[MAX_HIDDEN], o_mask[MAX_HIDDEN], o_dh[MAX_HIDDEN];
    for (int l = 0; l < c.L; ++l) {
        const size_t n = (size_t)elem * B * padded(c.H[l]);
        o_h[l] = take(n);
        o_hd[l] = dropout ? take(n) : o_h[l];
        o_mask[l] = dropout ? take(n) : 0;
        o_dh[l] = take(n);
    }
    size_t o_logits = take((size_t)elem * B * Vp), o_dlogits = take((size_t)elem * B * Vp);
    const int kb = kblocks(c);
    size_t o_pl = kb > 1 ? take((size_t)elem * kb * B * Vp) : 0,
           o_pdC = kb > 1 ? take((size_t)elem * kb * c.T * nP * c.E) : 0;
    size_t o_loss = take(8ull * B);
    size_t o_grad = take((size_t)elem * L.total), o_snap = take((size_t)elem * L.total);
    size_t o_sm = moments ? take((size_t)elem * L.total) : 0,
           o_sv = moments ? take((size_t)elem * L.total) : 0;

    char* mem = (char*)aligned_malloc(total);
    std::memset(mem, 0, total);
    Workspace* ws = new Workspace;
    std::memset(ws, 0, sizeof *ws);
    ws->B = B;
    ws->nP = nP;
    ws->mem = mem;
    ws->cur.xb = (int32_t*)(mem + o_xb);
    ws->cur.yb = (int32_t*)(mem + o_yb);
    ws->cur.rows = (int64_t*)(mem + o_rows);
    ws->cur.slot = (int32_t*)(mem + o_slot);
    ws->cur.ids = (int32_t*)(mem + o_ids);
    ws->cur.nids = (int32_t*)(mem + o_nids);
    ws->next = Batch{(int32_t*)(mem + n_xb),   (int32_t*)(mem + n_yb),  (int64_t*)(mem + n_rows),
                     (int32_t*)(mem + n_slot), (int32_t*)(mem + n_ids), (int32_t*)(mem + n_nids),
                     (int32_t*)(mem + n_seen)};
    for (int v = 0; v < c.V; ++v) ws->next.seen[v] = -1;
    ws->cur.seen = (int32_t*)(mem + o_seen);
    for (int v = 0; v < c.V; ++v) ws->cur.seen[v] = -1;
    ws->uslot = (int32_t*)(mem + o_uslot);
    ws->ustart = (int32_t*)(mem + o_ustart);
    ws->ulist = (int32_t*)(mem + o_ulist);
    ws->urow = (int32_t*)(mem + o_urow);
    ws->htab = (int32_t*)(mem + o_htab);
    ws->ckey = (uint64_t*)(mem + o_ckey);
    ws->pstart = (int32_t*)(mem + o_pstart);
    ws->plist = (int32_t*)(mem + o_plist);
    ws->hsize = hsize;
    ws->Csub = mem + o_Csub;
    ws->P = mem + o_P;
    ws->G = mem + o_G;
    ws->dCsub = mem + o_dC;
    for (int l = 0; l < c.L; ++l) {
        ws->h[l] = mem + o_h[l];
        ws->hd[l] = mem + o_hd[l];
        ws->mask[l] = dropout ? mem + o_mask[l] : nullptr;
        ws->dh[l] = mem + o_dh[l];
    }
    ws->logits = mem + o_logits;
    ws->dlogits = mem + o_dlogits;
    ws->plogits = kb > 1 ? mem + o_pl : nullptr;
    ws->pdCsub = kb > 1 ? mem + o_pdC : nullptr;
    ws->row_loss = (double*)(mem + o_loss);
    ws->grad = mem + o_grad;
    ws->snap = mem + o_snap;
    ws->snap_m = moments ? mem + o_sm : nullptr;
    ws->snap_v = moments ? mem + o_sv : nullptr;
    return ws;
}

void workspace_destroy(Workspace* ws) {
    if (!ws) return;
    aligned_free(ws->mem);
    delete ws;
}

// ---------------------------------------------------------------------------------------------
// Trainer.

Trainer::Trainer(std::shared_ptr<Model> mdl, int batch, const OptConfig& o)
    : model(std::move(mdl)), opt(o), B(batch) {
    const size_t bytes = (size_t)model->elem * model->lay.total;
    const bool need_m = o.kind == OPT_ADAMW || o.momentum != 0, need_v = o.kind == OPT_ADAMW;
    try {
        ws = workspace_create(model->cfg, model->lay, B, model->elem, o.dropout > 0, need_m || need_v);
        if (need_m) {
            m = aligned_malloc(bytes);
            std::memset(m, 0, bytes);
        }
        if (need_v) {
            v = aligned_malloc(bytes);
            std::memset(v, 0, bytes);
        }
    } catch (...) {
        workspace_destroy(ws);
        aligned_free(m);
        throw;
    }
}
Trainer::~Trainer() {
    workspace_destroy(ws);
    aligned_free(m);
    aligned_free(v);
}

// ---------------------------------------------------------------------------------------------
// Instruction sets.

bool isa_supported(const char* name) {
    std::string n(name);
    if (n == "generic") return true;
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (n == "avx2") return avx2;
    if (n == "avx512")
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#endif
    return false;
}

const Isa* isa_by_name(const char* name) {
    if (!isa_supported(name)) return nullptr;
    std::string n(name);
#if defined(__x86_64__) || defined(_M_X64)
    if (n == "avx512") return &isa_avx512;
    if (n == "avx2") return &isa_avx2;
#endif
    if (n == "generic") return &isa_generic;
    return nullptr;
}

static std::atomic<const Isa*> g_isa{nullptr};

const Isa* isa_current() {
    const Isa* isa = g_isa.load();
    if (isa) return isa;
    for (const char* n : {"avx512", "avx2", "generic"})
        if ((isa = isa_by_name(n))) break;
    g_isa.store(isa);
    return isa;
}

void isa_set(const Isa* isa) { g_isa.store(isa); }

}  // namespace mm
