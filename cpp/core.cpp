// core.cpp - a model's description (plan, parameter table, layout), storage and initialisation,
// workspaces, and the choice of instruction set. Compiled for the baseline ISA; nothing here is hot.
#include "core.h"

#include <climits>
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

// Buffers carved from one zeroed allocation, each 64-byte aligned: add() each, then commit().
struct Carve {
    std::vector<std::pair<void**, size_t>> req;
    template <class P>
    void add(P** dst, size_t bytes) {
        req.push_back({(void**)dst, bytes});
    }
    void* commit() {
        size_t total = 0;
        for (auto& r : req) total += (r.second + 63) / 64 * 64;
        char* mem = (char*)aligned_malloc(total);
        std::memset(mem, 0, total);
        size_t at = 0;
        for (auto& r : req) {
            *r.first = mem + at;
            at += (r.second + 63) / 64 * 64;
        }
        return mem;
    }
};

// ---------------------------------------------------------------------------------------------
// Describing a model: the plan, its layout and the parameter table.

[[noreturn]] static void refuse(int layer, const std::string& what) {
    throw std::invalid_argument("layer " + std::to_string(layer) + ": " + what);
}

static Layout make_layout(const Config& c) {
    Layout lay;
    std::memset(&lay, 0, sizeof lay);
    int64_t off = 0;
    lay.C = off;
    off += padded((int64_t)c.V * c.E);
    for (int l = 0; l <= c.nh; ++l) {
        if (l == 0) {
            lay.rows[l] = (int64_t)c.T * c.E;
            lay.ld[l] = padded(c.H[0]);
        } else if (l < c.nh) {
            lay.rows[l] = c.H[l - 1];
            lay.ld[l] = padded(c.H[l]);
        } else {
            lay.rows[l] = c.V;
            lay.ld[l] = padded(c.H[c.nh - 1]);
        }
        lay.W[l] = off;
        off += lay.rows[l] * lay.ld[l];
        lay.nb[l] = l < c.nh ? padded(c.H[l]) : padded(c.V);
        lay.b[l] = off;
        off += lay.nb[l];
    }
    lay.total = off;
    return lay;
}

// The MLP plan's pattern: Embedding(V, E), Flatten() or FlattenConsecutive(T), then (Linear with a
// bias, Tanh) 1 to MAX_HIDDEN times, then a Linear with a bias to V. Its Config, or false.
static bool mlp_pattern(const std::vector<LayerSpec>& L, int V, int T, Config* c) {
    const int n = (int)L.size();
    if (n < 5 || (n - 3) % 2 != 0 || (n - 3) / 2 > MAX_HIDDEN) return false;
    if (L[0].kind != LAYER_EMBEDDING) return false;
    if (!(L[1].kind == LAYER_FLATTEN || (L[1].kind == LAYER_FLATTEN_CONSECUTIVE && L[1].a == T)))
        return false;
    std::memset(c, 0, sizeof *c);
    c->V = V;
    c->T = T;
    c->E = (int)L[0].b;
    c->nh = (n - 3) / 2;
    for (int l = 0; l < c->nh; ++l) {
        const LayerSpec &lin = L[2 + 2 * l], &act = L[3 + 2 * l];
        if (lin.kind != LAYER_LINEAR || !lin.bias || act.kind != LAYER_TANH) return false;
        c->H[l] = (int)lin.b;
    }
    const LayerSpec& out = L[n - 1];
    return out.kind == LAYER_LINEAR && out.bias;
}

static ParamInfo param(const std::string& name, int layer, int64_t rows, int64_t cols, int init, double scale,
                       bool trained = true) {
    ParamInfo q;
    q.name = name;
    q.layer = layer;
    q.rows = rows;
    q.cols = cols;
    q.off = 0;
    q.span = 0;
    q.ld = cols ? cols : 1;
    q.seg = rows;
    q.segld = rows;
    q.transposed = false;
    q.trained = trained;
    q.init = init;
    q.scale = scale;
    return q;
}

// The scale of a Linear's weight and bias under a rule (hidden: followed by more layers).
static void linear_init(int rule, int64_t fan_in, bool last, double* w, double* b, int* bkind) {
    *bkind = INIT_NORMAL;
    if (rule == RULE_LECTURE) {
        *w = 1.0, *b = 1.0;
    } else if (rule == RULE_KAIMING) {
        *w = last ? 0.01 : (5.0 / 3.0) / std::sqrt((double)fan_in);
        *b = last ? 0.0 : 0.01;
    } else {
        *w = 1.0 / std::sqrt((double)fan_in);
        *b = 0.0;
        *bkind = INIT_CONSTANT;
    }
}

static std::string pname(bool lecture, int layer, const char* what, const std::string& lecture_name) {
    return lecture ? lecture_name : std::to_string(layer) + "." + what;
}

static void check_layers(const std::vector<LayerSpec>& L, int V, int T) {
    if (V < 1 || T < 1) throw std::invalid_argument("vocabulary and block_size must be positive");
    if (L.empty() || L[0].kind != LAYER_EMBEDDING) refuse(0, "the first layer must be an Embedding");
    if (L.size() > (size_t)MAX_OPS - 4) throw std::invalid_argument("too many layers");
    for (size_t i = 0; i < L.size(); ++i) {
        const LayerSpec& s = L[i];
        if (s.a > INT32_MAX || s.b > INT32_MAX || s.a < 0 || s.b < 0)
            refuse((int)i, "sizes must be below 2^31");
        switch (s.kind) {
            case LAYER_EMBEDDING:
                if (i != 0) refuse((int)i, "an Embedding can only be the first layer");
                if (s.a != V) refuse((int)i, "the Embedding's rows must be the vocabulary size");
                if (s.b < 1) refuse((int)i, "embedding_dim must be positive");
                break;
            case LAYER_FLATTEN_CONSECUTIVE:
                if (s.a < 1) refuse((int)i, "n must be positive");
                break;
            case LAYER_LINEAR:
                if (s.a < 1 || s.b < 1) refuse((int)i, "fan_in and fan_out must be positive");
                break;
            case LAYER_BATCHNORM:
                if (s.a < 1) refuse((int)i, "dim must be positive");
                if (!(s.eps > 0) || !(s.momentum >= 0 && s.momentum <= 1))
                    refuse((int)i, "bad eps or momentum");
                break;
            case LAYER_FLATTEN:
            case LAYER_TANH:
                break;
            default:
                refuse((int)i, "unknown layer kind");
        }
    }
}

// The MLP plan: the arena of make_layout, the output layer's weight stored transposed.
static void describe_mlp(ModelDesc& d, bool lecture, int rule) {
    const Config& c = d.cfg;
    d.lay = make_layout(c);
    const Layout& lay = d.lay;
    ParamInfo C = param(pname(lecture, 0, "weight", "C"), 0, c.V, c.E, INIT_NORMAL, 1.0);
    C.off = lay.C;
    C.span = lay.W[0] - lay.C;
    d.params.push_back(C);
    for (int l = 0; l <= c.nh; ++l) {
        const int layer = 2 + 2 * l;
        const int64_t in = l == 0 ? (int64_t)c.T * c.E : c.H[l - 1];
        const int64_t out = l < c.nh ? c.H[l] : c.V;
        double ws, bs;
        int bkind;
        linear_init(rule, in, l == c.nh, &ws, &bs, &bkind);
        const std::string k = std::to_string(l + 1);
        ParamInfo W = param(pname(lecture, layer, "weight", "W" + k), layer, in, out, INIT_NORMAL, ws);
        W.off = lay.W[l];
        W.ld = lay.ld[l];
        W.span = lay.rows[l] * lay.ld[l];
        W.transposed = l == c.nh;
        ParamInfo b = param(pname(lecture, layer, "bias", "b" + k), layer, out, 0, bkind, bs);
        b.off = lay.b[l];
        b.span = lay.nb[l];
        d.params.push_back(W);
        d.params.push_back(b);
    }
    d.trained = d.total = lay.total;
}

// The layer plan: the ops (common.h: Op) and the parameter table, trained parameters first.
static void describe_layers(ModelDesc& d, int rule) {
    const std::vector<LayerSpec>& L = d.layers;
    Net& net = d.net;
    std::memset(&net, 0, sizeof net);
    net.V = d.V;
    net.T = d.T;
    net.E = (int)L[0].b;
    // The current activation: ndim, positions per example, channels in nseg segments of seg
    // channels, segld apart.
    int ndim = 3, t = d.T;
    int64_t C = net.E, nseg = 1, seg = net.E, segld = padded(net.E);
    auto add_op = [&](int kind, int layer) -> Op& {
        if (net.nops >= MAX_OPS) throw std::invalid_argument("too many layers");
        Op& op = net.ops[net.nops++];
        std::memset(&op, 0, sizeof op);
        op.kind = kind;
        op.layer = layer;
        op.b = -1;
        return op;
    };
    auto pack = [&](int layer) {  // segments made one padded row
        Op& op = add_op(OP_PACK, layer);
        op.t = t;
        op.cin = op.cout = (int)C;
        op.ldin = nseg * segld;
        op.seg = (int)seg;
        op.segld = (int)segld;
        op.ldout = padded(C);
        nseg = 1, seg = C, segld = padded(C);
    };
    std::vector<ParamInfo>& P = d.params;
    size_t i = 0;
    // The Embedding, alone or with the Linear that follows as per-position tables.
    {
        size_t j = 1;
        int npos = 1;  // positions one row of the flattening holds (1: no flattening)
        if (j < L.size() && L[j].kind == LAYER_FLATTEN)
            npos = d.T, ++j;
        else if (j < L.size() && L[j].kind == LAYER_FLATTEN_CONSECUTIVE) {
            if (d.T % L[j].a)
                refuse((int)j,
                       "the context (block_size " + std::to_string(d.T) +
                           ") is not divisible by FlattenConsecutive's n = " + std::to_string(L[j].a));
            npos = (int)L[j].a;
            ++j;
        }
        P.push_back(param("0.weight", 0, d.V, net.E, INIT_NORMAL, 1.0));
        if (j < L.size() && L[j].kind == LAYER_LINEAR) {
            const LayerSpec& lin = L[j];
            if (lin.a != (int64_t)npos * net.E)
                refuse((int)j, "Linear's fan_in is " + std::to_string(lin.a) + " but its input has " +
                                   std::to_string((int64_t)npos * net.E) + " channels");
            Op& op = add_op(OP_EMBED_LINEAR, (int)j);
            t = d.T / npos;
            op.t = t;
            op.npos = npos;
            op.cin = (int)lin.a;
            op.cout = (int)lin.b;
            op.ldout = padded(lin.b);
            op.K = lin.a;
            double ws, bs;
            int bkind;
            linear_init(rule, lin.a, j + 1 == L.size(), &ws, &bs, &bkind);
            ParamInfo W = param(std::to_string(j) + ".weight", (int)j, lin.a, lin.b, INIT_NORMAL, ws);
            W.ld = op.ldout;
            P.push_back(W);
            if (lin.bias) P.push_back(param(std::to_string(j) + ".bias", (int)j, lin.b, 0, bkind, bs));
            ndim = t == 1 && j > 1 ? 2 : 3;  // a flattening (L[1]) to one position squeezes it out
            C = lin.b, nseg = 1, seg = C, segld = padded(C);
            i = j + 1;
        } else {
            Op& op = add_op(OP_EMBED, 0);
            op.t = d.T;
            op.cin = op.cout = net.E;
            op.ldout = padded(net.E);
            if (j > 1) {  // the flattening that followed, as a view
                t = d.T / npos;
                C = (int64_t)net.E * npos;
                nseg = npos;
                ndim = t == 1 ? 2 : 3;
            }
            i = j;
        }
    }
    for (; i < L.size(); ++i) {
        const LayerSpec& s = L[i];
        const int li = (int)i;
        switch (s.kind) {
            case LAYER_FLATTEN:
                if (ndim != 3) refuse(li, "Flatten needs a 3-D input (batch, positions, channels)");
                C *= t, nseg *= t, t = 1, ndim = 2;
                break;
            case LAYER_FLATTEN_CONSECUTIVE:
                if (ndim != 3)
                    refuse(li, "FlattenConsecutive needs a 3-D input (batch, positions, channels)");
                if (t % s.a)
                    refuse(li, "its input has " + std::to_string(t) +
                                   " positions, not divisible by n = " + std::to_string(s.a));
                C *= s.a, nseg *= s.a, t /= (int)s.a;
                if (t == 1) ndim = 2;
                break;
            case LAYER_LINEAR: {
                if (s.a != C)
                    refuse(li, "Linear's fan_in is " + std::to_string(s.a) + " but its input has " +
                                   std::to_string(C) + " channels");
                Op& op = add_op(OP_LINEAR, li);
                op.t = t;
                op.cin = (int)C;
                op.ldin = nseg * segld;
                op.seg = (int)seg;
                op.segld = (int)segld;
                op.K = op.ldin;
                op.cout = (int)s.b;
                op.ldout = padded(s.b);
                double ws, bs;
                int bkind;
                linear_init(rule, s.a, i + 1 == L.size(), &ws, &bs, &bkind);
                ParamInfo W = param(std::to_string(i) + ".weight", li, s.a, s.b, INIT_NORMAL, ws);
                W.ld = op.ldout;
                W.seg = seg;
                W.segld = segld;
                P.push_back(W);
                if (s.bias) P.push_back(param(std::to_string(i) + ".bias", li, s.b, 0, bkind, bs));
                C = s.b, nseg = 1, seg = C, segld = padded(C);
                break;
            }
            case LAYER_BATCHNORM: {
                if (s.a != C)
                    refuse(li, "BatchNorm1d's dim is " + std::to_string(s.a) + " but its input has " +
                                   std::to_string(C) + " channels");
                if (nseg > 1) pack(li);
                Op& op = add_op(OP_BATCHNORM, li);
                op.t = t;
                op.cin = op.cout = (int)C;
                op.ldin = op.ldout = padded(C);
                op.eps = s.eps;
                op.momentum = s.momentum;
                const std::string k = std::to_string(i);
                P.push_back(param(k + ".gamma", li, C, 0, INIT_CONSTANT, 1.0));
                P.push_back(param(k + ".beta", li, C, 0, INIT_CONSTANT, 0.0));
                P.push_back(param(k + ".running_mean", li, C, 0, INIT_CONSTANT, 0.0, false));
                P.push_back(param(k + ".running_var", li, C, 0, INIT_CONSTANT, 1.0, false));
                break;
            }
            case LAYER_TANH: {
                Op& op = add_op(OP_TANH, li);
                op.t = t;
                op.cin = op.cout = (int)C;
                op.ldin = op.ldout = nseg * segld;
                op.seg = (int)seg;
                op.segld = (int)segld;
                op.tanh_index = net.ntanh++;
                break;
            }
            default:
                refuse(li, "an Embedding can only be the first layer");
        }
    }
    if (ndim != 2) refuse((int)L.size() - 1, "the model must end with 2-D logits (batch, vocabulary)");
    if (C != d.V)
        refuse((int)L.size() - 1, "the model's output has " + std::to_string(C) +
                                      " channels; it must be the vocabulary size " + std::to_string(d.V));
    if (nseg > 1) pack((int)L.size() - 1);
    // The arena: trained parameters in table order, then the running statistics.
    int64_t off = 0;
    for (int pass = 0; pass < 2; ++pass)
        for (ParamInfo& q : P) {
            if (q.trained != (pass == 0)) continue;
            q.off = off;
            const int64_t rows = q.cols ? (q.rows / q.seg) * q.segld + q.rows % q.seg : q.rows;
            q.span = padded(q.cols ? rows * q.ld : q.rows);
            off += q.span;
            if (pass == 0) d.trained = off;
        }
    d.total = off;
    // Each op's parameters.
    for (int k = 0; k < net.nops; ++k) {
        Op& op = net.ops[k];
        auto find = [&](int layer, const char* what) -> int64_t {
            const std::string name = std::to_string(layer) + "." + what;
            for (const ParamInfo& q : P)
                if (q.name == name) return q.off;
            return -1;
        };
        if (op.kind == OP_EMBED || op.kind == OP_EMBED_LINEAR) op.C = find(0, "weight");
        if (op.kind == OP_EMBED_LINEAR || op.kind == OP_LINEAR) {
            op.W = find(op.layer, "weight");
            op.b = find(op.layer, "bias");
        }
        if (op.kind == OP_BATCHNORM) {
            op.gamma = find(op.layer, "gamma");
            op.beta = find(op.layer, "beta");
            op.mean = find(op.layer, "running_mean");
            op.var = find(op.layer, "running_var");
        }
    }
    net.trained = d.trained;
    net.total = d.total;
}

ModelDesc describe_model(const std::vector<LayerSpec>& layers, int V, int T, bool lecture_names, int rule,
                         bool force_layers) {
    check_layers(layers, V, T);
    ModelDesc d;
    d.layers = layers;
    d.V = V;
    d.T = T;
    d.lecture_names = lecture_names;
    d.rule = rule;
    std::memset(&d.cfg, 0, sizeof d.cfg);
    std::memset(&d.lay, 0, sizeof d.lay);
    std::memset(&d.net, 0, sizeof d.net);
    d.trained = d.total = 0;
    if (!force_layers && mlp_pattern(layers, V, T, &d.cfg)) {
        // Widths must fit together as for any list.
        int64_t C = (int64_t)d.cfg.T * d.cfg.E;
        for (size_t i = 2; i < layers.size(); i += 2) {
            if (layers[i].a != C)
                refuse((int)i, "Linear's fan_in is " + std::to_string(layers[i].a) + " but its input has " +
                                   std::to_string(C) + " channels");
            C = layers[i].b;
        }
        if (C != V)
            refuse((int)layers.size() - 1, "the model's output has " + std::to_string(C) +
                                               " channels; it must be the vocabulary size " +
                                               std::to_string(V));
        d.plan = PLAN_MLP;
        describe_mlp(d, lecture_names, rule);
    } else {
        if (lecture_names && !force_layers)
            throw std::invalid_argument("lecture names are for the MLP's layers only");
        d.plan = PLAN_LAYERS;
        describe_layers(d, rule);
    }
    return d;
}

// ---------------------------------------------------------------------------------------------
// Model.

Model::Model(ModelDesc desc, int elem_size) : d(std::move(desc)), elem(elem_size) {
    p = aligned_malloc((size_t)d.total * elem);
    std::memset(p, 0, (size_t)d.total * elem);
}
Model::~Model() { aligned_free(p); }

// Arena index of element (r, k) of parameter q in the user's layout.
static inline int64_t arena_index(const ParamInfo& q, int64_t r, int64_t k) {
    if (q.transposed) return q.off + k * q.ld + r;
    return q.off + ((r / q.seg) * q.segld + r % q.seg) * q.ld + k;
}

// A row of the user's array is a run of the arena's (or, transposed, a column ld apart).
template <class T>
static void arena_copy(const ParamInfo& q, T* arena, T* user, bool to_user) {
    const int64_t nc = q.cols ? q.cols : 1, step = q.transposed ? q.ld : 1;
    for (int64_t r = 0; r < q.rows; ++r) {
        T* a = arena + arena_index(q, r, 0);
        T* u = user + r * nc;
        if (to_user)
            for (int64_t k = 0; k < nc; ++k) u[k] = a[k * step];
        else
            for (int64_t k = 0; k < nc; ++k) a[k * step] = u[k];
    }
}

void Model::read(int q, const void* arena, void* out) const {
    if (elem == 4)
        arena_copy<float>(d.params[q], (float*)arena, (float*)out, true);
    else
        arena_copy<double>(d.params[q], (double*)arena, (double*)out, true);
}
void Model::write(int q, void* arena, const void* in) const {
    if (elem == 4)
        arena_copy<float>(d.params[q], (float*)arena, (float*)in, false);
    else
        arena_copy<double>(d.params[q], (double*)arena, (double*)in, false);
}

template <class T>
static void init_params(const ModelDesc& d, T* arena, uint64_t seed) {
    const uint64_t key = rng::key(seed, rng::INIT);
    for (size_t q = 0; q < d.params.size(); ++q) {
        const ParamInfo& pi = d.params[q];
        const int64_t nc = pi.cols ? pi.cols : 1;
        const uint64_t base = (uint64_t)q << 40;
        for (int64_t e = 0; e < pi.rows * nc; ++e) {
            double z = pi.scale;
            if (pi.init == INIT_NORMAL) {
                const uint64_t d1 = rng::draw(key, base + 2 * (uint64_t)e),
                               d2 = rng::draw(key, base + 2 * (uint64_t)e + 1);
                const double u1 = (double)((d1 >> 11) + 1) * 0x1.0p-53, u2 = (double)(d2 >> 11) * 0x1.0p-53;
                z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2) * pi.scale;
            }
            arena[arena_index(pi, e / nc, e % nc)] = (T)z;
        }
    }
}

void Model::init(uint64_t seed, int rule) {
    // Another rule than the model's own (mm.MLP's init argument) changes the table's scales only.
    if (rule != d.rule) {
        const ModelDesc other = describe_model(d.layers, d.V, d.T, d.lecture_names, rule);
        for (size_t q = 0; q < d.params.size(); ++q) {
            d.params[q].init = other.params[q].init;
            d.params[q].scale = other.params[q].scale;
        }
        d.rule = rule;
    }
    std::memset(p, 0, (size_t)d.total * elem);
    if (elem == 4)
        init_params<float>(d, (float*)p, seed);
    else
        init_params<double>(d, (double*)p, seed);
}

// ---------------------------------------------------------------------------------------------
// Workspaces.

// The batch and the per-position tables of R rows of npos ids (the MLP's first layer, or a layer
// plan's OP_EMBED_LINEAR); Np the tables' padded width, kb the column blocks; B and T the batch's
// examples and context.
static void embed_scratch(Carve& cv, EmbedScratch& es, int B, int T, int V, int E, int R, int npos,
                          int64_t Np, int kb, int elem) {
    const int nP = R < V ? R : V;
    es.R = R;
    es.npos = npos;
    es.nP = nP;
    for (Batch* bt : {&es.cur, &es.next}) {
        cv.add(&bt->xb, 4ull * B * T);
        cv.add(&bt->yb, 4ull * B);
        cv.add(&bt->rows, 8ull * B);
        cv.add(&bt->slot, 4ull * R * npos);
        cv.add(&bt->ids, 4ull * (npos * nP + 1));
        cv.add(&bt->nids, 4ull * npos);
        cv.add(&bt->seen, 4ull * V);
    }
    int64_t hsize = 1;
    while (hsize < 2 * (int64_t)R) hsize *= 2;
    es.hsize = hsize;
    cv.add(&es.uslot, 4ull * R * npos);
    cv.add(&es.ustart, 4ull * (R + 1));
    cv.add(&es.ulist, 4ull * R);
    cv.add(&es.urow, 4ull * R);
    cv.add(&es.htab, 4ull * hsize);
    cv.add(&es.ckey, 8ull * R);
    cv.add(&es.pstart, 4ull * npos * (nP + 1));
    cv.add(&es.plist, 4ull * npos * R);
    cv.add(&es.Csub, (size_t)elem * npos * nP * E);
    cv.add(&es.P, (size_t)elem * npos * nP * Np);
    cv.add(&es.G, (size_t)elem * npos * nP * Np);
    cv.add(&es.dCsub, (size_t)elem * npos * nP * E);
    if (kb > 1) cv.add(&es.pdCsub, (size_t)elem * kb * npos * nP * E);
}
static void embed_scratch_ready(EmbedScratch& es, int V) {
    for (Batch* bt : {&es.cur, &es.next})
        for (int v = 0; v < V; ++v) bt->seen[v] = -1;
}

Workspace* workspace_create(const Config& c, const Layout& lay, int B, int elem, bool dropout, bool moments) {
    const int64_t Vp = padded(c.V);
    const int kb = kblocks(c);
    Workspace* ws = new Workspace;
    std::memset(ws, 0, sizeof *ws);
    ws->B = B;
    Carve cv;
    embed_scratch(cv, ws->emb, B, c.T, c.V, c.E, B, c.T, lay.ld[0], kb, elem);
    for (int l = 0; l < c.nh; ++l) {
        const size_t n = (size_t)elem * B * padded(c.H[l]);
        cv.add(&ws->h[l], n);
        if (dropout) {
            cv.add(&ws->hd[l], n);
            cv.add(&ws->mask[l], n);
        }
        cv.add(&ws->dh[l], n);
    }
    cv.add(&ws->logits, (size_t)elem * B * Vp);
    cv.add(&ws->dlogits, (size_t)elem * B * Vp);
    if (kb > 1) cv.add(&ws->plogits, (size_t)elem * kb * B * Vp);
    cv.add(&ws->row_loss, 8ull * B);
    cv.add(&ws->grad, (size_t)elem * lay.total);
    cv.add(&ws->snap, (size_t)elem * lay.total);
    if (moments) {
        cv.add(&ws->snap_m, (size_t)elem * lay.total);
        cv.add(&ws->snap_v, (size_t)elem * lay.total);
    }
    try {
        ws->mem = cv.commit();
    } catch (...) {
        delete ws;
        throw;
    }
    if (!dropout)
        for (int l = 0; l < c.nh; ++l) ws->hd[l] = ws->h[l];
    embed_scratch_ready(ws->emb, c.V);
    return ws;
}

void workspace_destroy(Workspace* ws) {
    if (!ws) return;
    aligned_free(ws->mem);
    delete ws;
}

NetWorkspace* net_workspace_create(const Net& net, int B, int elem, bool dropout, bool moments) {
    NetWorkspace* ws = new NetWorkspace;
    std::memset(ws, 0, sizeof *ws);
    ws->B = B;
    const Op& first = net.ops[0];
    const int npos = first.kind == OP_EMBED_LINEAR ? first.npos : 1;
    const int R = first.kind == OP_EMBED_LINEAR ? B * first.t : B * net.T;
    Carve cv;
    embed_scratch(cv, ws->emb, B, net.T, net.V, net.E, R, npos, first.ldout, 1, elem);
    for (int i = 0; i < net.nops; ++i) {
        const Op& op = net.ops[i];
        const size_t n = (size_t)elem * B * op.t * op.ldout;
        cv.add(&ws->act[i], n);
        cv.add(&ws->dact[i], n);
        if (op.kind == OP_TANH && dropout) {
            cv.add(&ws->mask[i], n);
            cv.add(&ws->hd[i], n);
        }
        if (op.kind == OP_BATCHNORM) {
            cv.add(&ws->bmean[i], (size_t)elem * op.ldout);
            cv.add(&ws->bvar[i], (size_t)elem * op.ldout);
            cv.add(&ws->bistd[i], (size_t)elem * op.ldout);
        }
    }
    cv.add(&ws->dlogits, (size_t)elem * B * padded(net.V));
    cv.add(&ws->row_loss, 8ull * B);
    cv.add(&ws->iota, 4ull * (B + 1));
    cv.add(&ws->grad, (size_t)elem * net.trained);
    cv.add(&ws->snap, (size_t)elem * net.total);
    if (moments) {
        cv.add(&ws->snap_m, (size_t)elem * net.trained);
        cv.add(&ws->snap_v, (size_t)elem * net.trained);
    }
    try {
        ws->mem = cv.commit();
    } catch (...) {
        delete ws;
        throw;
    }
    for (int b = 0; b <= B; ++b) ws->iota[b] = b;
    embed_scratch_ready(ws->emb, net.V);
    return ws;
}

void net_workspace_destroy(NetWorkspace* ws) {
    if (!ws) return;
    aligned_free(ws->mem);
    delete ws;
}

// ---------------------------------------------------------------------------------------------
// Trainer.

Trainer::Trainer(std::shared_ptr<Model> mdl, int batch, const OptConfig& o)
    : model(std::move(mdl)), opt(o), B(batch) {
    const size_t bytes = (size_t)model->elem * model->d.trained;
    const bool need_m = o.kind == OPT_ADAMW || o.momentum != 0, need_v = o.kind == OPT_ADAMW;
    try {
        if (model->d.plan == PLAN_MLP)
            ws =
                workspace_create(model->d.cfg, model->d.lay, B, model->elem, o.dropout > 0, need_m || need_v);
        else
            nws = net_workspace_create(model->d.net, B, model->elem, o.dropout > 0, need_m || need_v);
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
        net_workspace_destroy(nws);
        aligned_free(m);
        throw;
    }
}
Trainer::~Trainer() {
    workspace_destroy(ws);
    net_workspace_destroy(nws);
    aligned_free(m);
    aligned_free(v);
}

// ---------------------------------------------------------------------------------------------

bool isa_supported(const char* name) {
    std::string n(name);
    if (n == "generic") return true;
#if defined(MM_HAVE_AVX2) || defined(MM_HAVE_AVX512)
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#if defined(MM_HAVE_AVX2)
    if (n == "avx2") return avx2;
#endif
#if defined(MM_HAVE_AVX512)
    if (n == "avx512")
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#endif
    return false;
}

const Isa* isa_by_name(const char* name) {
    if (!isa_supported(name)) return nullptr;
    std::string n(name);
#if defined(MM_HAVE_AVX512)
    if (n == "avx512") return &isa_avx512;
#endif
#if defined(MM_HAVE_AVX2)
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
