// sample.h - drawing names from the model.
//
// Name i starts from the context '.' * T followed by the prefix, and draws one character at a time
// from softmax(logits / temperature), restricted to the top_k most likely when top_k > 0, until it
// draws '.' (id 0) or holds max_len characters. The k-th character of name i uses the draw
// u = (seed, SAMPLE, i * 2^20 + k): the character is the first v whose running sum of weights
// w_v = exp((l_v - max l) / temperature) (computed in the model's precision, summed in double; the
// exponent is 0 where l_v is the largest, whatever the temperature) exceeds u * sum(w). A name
// therefore does not depend on how many others are drawn, in what batches, or on how many threads.
//
// Each distinct context's distribution is computed once. A part of the work keeps the contexts its
// names have reached (Reached: each context's running sums and most likely character). Its names go
// a window at a time, every name of the window a character a round: a round looks up each name's
// context, computes the contexts not reached before through the forward pass of eval.h (ROWS at a
// time), and then draws each name's next character by a count of the running sums <= its draw.
// Every name's first context is the same and early characters' contexts repeat, so a draw computes
// far fewer rows than it draws characters (the lecture's model: 115 for the 154 characters of 20
// names, 1,798 for the 6,966 of 1,000, 10,493 of the 19,683 contexts for 200,000 names). The
// contexts are kept between the calls of one sample() (SampleTable), so later calls mostly look up.
//
// Included inside an instruction set's namespace (see isa_impl.h), after eval.h.
#pragma once

// Running sums are stored in rows of cum_stride(V) doubles, whole cache lines: cum[0..V) and then
// +inf, which no draw reaches (pick_char counts the sums <= the draw).
static inline int cum_stride(int V) { return (V + 7) / 8 * 8; }

// The weights of one row of logits l (padded(V) of them readable; w has as many): w[v] (as T; 0
// outside the top_k), their running sums cum[v] in double (a row of cum_stride(V)), and the most
// likely character, the first v of the largest l[v] (as a scan that keeps v when l[v] > l[best]:
// a NaN is never taken, unless it is l[0]). Returns the sum of the weights (cum[V-1]).
template <class T>
static double char_weights(const T* l, int V, double temperature, int top_k, T* w, double* cum,
                           int* best_out) {
    constexpr int W = VT<T>::W;
    const int Vp = (int)padded(V);
    const ivec<T> lane = viota<T>();
    vec<T> mx = vset<T>(-__builtin_inf());
    for (int v = 0; v < Vp; v += W) {
        const vec<T> x = vload(l + v);
        mx = vselect<T>((x > mx) & (lane + v < V), x, mx);
    }
    const T top = hmax<T>(mx);
    int best = 0;
    if (l[0] == l[0])
        while (l[best] != top) ++best;
    *best_out = best;
    if (temperature == 0) return 0;
    T thr = -__builtin_inf();
    if (top_k > 0 && top_k < V) {
        // The top_k-th largest logit (quickselect on a copy); ties with it are kept.
        for (int v = 0; v < V; ++v) w[v] = l[v];
        int lo = 0, hi = V - 1, k = top_k - 1;  // position k of the descending order
        while (lo < hi) {
            T pivot = w[(lo + hi) / 2];
            int i = lo, j = hi;
            while (i <= j) {
                while (w[i] > pivot) ++i;
                while (w[j] < pivot) --j;
                if (i <= j) {
                    T x = w[i];
                    w[i] = w[j];
                    w[j] = x;
                    ++i;
                    --j;
                }
            }
            if (k <= j)
                hi = j;
            else if (k >= i)
                lo = i;
            else
                break;
        }
        thr = w[k];
    }
    // w_v = exp((l_v - max) / temperature), in T's precision; the exponent is 0 at the max, where
    // 1 / temperature may be +inf (a temperature below 1 / the largest T): then w is 1 there, 0 elsewhere.
    const T m = l[best], inv = T(1.0 / temperature);
    for (int v = 0; v < Vp; v += W) {
        const vec<T> x = vload(l + v);
        const vec<T> e = vexp(vselect<T>(x == m, vec<T>{}, (x - m) * inv));
        vstore(w + v, vselect<T>((x >= thr) & (lane + v < V), e, vec<T>{}));
    }
    double run = 0;
    for (int v = 0; v < V; ++v) {
        run += (double)w[v];
        cum[v] = run;
    }
    for (int v = V; v < cum_stride(V); ++v) cum[v] = __builtin_inf();
    return run;
}

// The first character whose running sum exceeds target, in a row of `lines` lines of 8 sums (cum only
// grows, and only where a weight is positive: it is the count of sums <= target); the last possible
// one if rounding left target past the end.
static inline int pick_char(const double* cum, int V, int lines, double target) {
    if (__builtin_expect(!(cum[V - 1] > target), 0)) {
        int v = V - 1;
        while (v > 0 && cum[v - 1] == cum[v]) --v;  // the last v with a positive weight
        return v;
    }
    // Counted a line (8 sums) at a time, no load waiting for another (a binary search's loads are
    // a chain, each waiting for the last, from the cache level the table sits in).
    return count_le(cum, lines, target);
}

// ---------------------------------------------------------------------------------------------
// The contexts a part's names have reached, in one allocation: this header, then
//     idx  (slots)   int32   each slot's row, -1 while empty
//     key  (slots)   uint64  the context number in each slot (hashed maps only)
//     best (cap)     int32   each row's most likely character
//     cum  (cap, Vs) double  its running sums, from a 64-byte boundary
// A context is found by its number k (eval.h: context_count): in slot k when there are at most
// DIRECT contexts, else by open addressing from the top bits of k * GOLDEN, in a power of two >= 2 cap
// slots. When the numbers may not fit 63 bits (wide: no slots) nothing is shared: every lookup makes
// a row, and the rows start again each round. A part that has no room for a round's lookups empties
// its map first (only when its rows were capped by SAMPLE_TABLE_BYTES).
static constexpr int64_t DIRECT = 65536;
struct Reached {
    int64_t cap, n, slots;
    int shift;  // hashed: 64 - log2(slots); 0: direct or wide
    int32_t* idx;
    uint64_t* key;
    int32_t* best;
    double* cum;
};

static inline void reached_clear(Reached* r) {
    r->n = 0;
    __builtin_memset(r->idx, 0xff, sizeof(int32_t) * r->slots);
}

// The slot of context k: its own, or the empty one where it goes.
static inline int64_t reached_slot(const Reached* r, uint64_t k) {
    if (r->shift == 0) return (int64_t)k;
    const uint64_t mask = (uint64_t)r->slots - 1;
    uint64_t s = (k * rng::GOLDEN) >> r->shift;
    while (r->idx[s] >= 0 && r->key[s] != k) s = (s + 1) & mask;
    return (int64_t)s;
}

// A map of `cap` rows for nctx contexts (wide: numbers that may not fit), holding old's rows (then
// freed) if given. Called before any parallel region: a failed allocation raises MemoryError.
static Reached* reached_new(int64_t cap, int64_t nctx, bool wide, int Vs, Reached* old) {
    int64_t slots = 0;
    int shift = 0;
    if (!wide && nctx <= DIRECT) {
        slots = nctx;
    } else if (!wide) {
        int b = 1;
        while (((int64_t)1 << b) < 2 * cap) ++b;
        slots = (int64_t)1 << b;
        shift = 64 - b;
    }
    const size_t head = (sizeof(Reached) + 63) / 64 * 64;
    const size_t maps = sizeof(int32_t) * slots + (shift ? sizeof(uint64_t) * slots : 0);
    const size_t lists = (maps + sizeof(int32_t) * cap + 63) / 64 * 64;
    char* mem = (char*)mm::aligned_malloc(head + lists + sizeof(double) * cap * Vs);
    Reached* r = (Reached*)mem;
    r->cap = cap;
    r->slots = slots;
    r->shift = shift;
    r->idx = (int32_t*)(mem + head);
    r->key = (uint64_t*)(r->idx + slots);
    r->best = (int32_t*)(mem + head + maps);
    r->cum = (double*)(mem + head + lists);
    reached_clear(r);
    if (old) {
        r->n = old->n;
        __builtin_memcpy(r->best, old->best, sizeof(int32_t) * old->n);
        __builtin_memcpy(r->cum, old->cum, sizeof(double) * old->n * Vs);
        if (!shift) {
            __builtin_memcpy(r->idx, old->idx, sizeof(int32_t) * slots);
        } else {
            for (int64_t s = 0; s < old->slots; ++s)
                if (old->idx[s] >= 0) {
                    const int64_t t = reached_slot(r, old->key[s]);
                    r->idx[t] = old->idx[s];
                    r->key[t] = old->key[s];
                }
        }
        mm::aligned_free(old);
    }
    return r;
}

// A part's scratch for windows of up to `win` names: each name's staged row, state and row of the
// map, the window's active names and the names whose contexts a round adds, then the forward pass's
// chunk (eval.h: chunk_bytes) with the contexts and weights of ROWS rows.
struct DrawScratch {
    int32_t* stage;  // (win, T + max_len + 1): T zeros, the name, its 0
    uint64_t* k;     // (win) the context of the name's next character, as a number
    uint64_t* z;     // (win) its next draw's key + counter * GOLDEN (rng.h), a character's step apart
    int32_t* len;    // (win) its length
    int32_t* row;    // (win) the row of its context
    int32_t* act;    // (win) the window's names still drawing
    int32_t* add;    // (win) the names whose context a round adds
    char* chunk;
};
template <class M>
static size_t draw_scratch_bytes(const M& m, int win, int max_len) {
    const size_t names = (size_t)win * (sizeof(int32_t) * (m.block() + max_len + 1) + 2 * sizeof(uint64_t) +
                                        4 * sizeof(int32_t));
    return (names + 63) / 64 * 64 +
           chunk_bytes(m, ROWS, sizeof(int32_t) * ROWS * m.block() + sizeof(double) * padded(m.V()));
}
template <class M>
static DrawScratch draw_scratch(const M& m, int win, int max_len, char* mem) {
    DrawScratch s;
    s.k = (uint64_t*)mem;
    s.z = s.k + win;
    s.stage = (int32_t*)(s.z + win);
    s.len = s.stage + (int64_t)win * (m.block() + max_len + 1);
    s.row = s.len + win;
    s.act = s.row + win;
    s.add = s.act + win;
    s.chunk = mem + ((char*)(s.add + win) - mem + 63) / 64 * 64;
    return s;
}

// Names [lo, hi) into the rows lo.. of a->out: one row each, or, when compact, one after another
// from row lo's start (touching only the memory it fills); returns the end of what it wrote when
// compact. LINES: the lines of 8 sums in a row of cum, or 0 for any number.
template <class T, class M, int LINES>
static int64_t draw_names(const M& m, const T* P, Reached* r, int64_t nctx, const SampleArgs& a, uint64_t ks,
                          int64_t lo, int64_t hi, int win, DrawScratch s) {
    const int Tt = m.block(), V = m.V(), Vs = cum_stride(V), lines = LINES ? LINES : Vs / 8;
    const int64_t Vp = padded(V), rs = Tt + a.max_len + 1;  // a staged row: T zeros, the name, its 0
    const int ml = a.max_len;
    const bool greedy = a.temperature == 0, wide = r->slots == 0;
    uint64_t hi_digit = 1;  // V^(T-1): the oldest id's place in a context number (wrapping when wide)
    for (int t = 1; t < Tt; ++t) hi_digit *= (uint64_t)V;
    T* const wts = (T*)chunk_extra(m, ROWS, s.chunk);  // weights of one row
    int32_t* const ctx = (int32_t*)(wts + Vp);
    int64_t w = lo * (ml + 1);
    for (int64_t w0 = lo; w0 < hi; w0 += win) {
        const int wn = (int)(hi - w0 < win ? hi - w0 : win);
        int na = 0;
        for (int q = 0; q < wn; ++q) {  // the prefix, up to max_len (a name it fills is done at once)
            int32_t* row = s.stage + q * rs;
            for (int t = 0; t < Tt; ++t) row[t] = 0;
            row += Tt;
            uint64_t k = 0;
            int l = 0;
            for (; l < a.plen && l < ml; ++l) {
                row[l] = a.prefix[l];
                k = (k - (uint64_t)row[l - Tt] * hi_digit) * (uint64_t)V + (uint64_t)row[l];
            }
            row[l] = 0;
            s.len[q] = l;
            s.k[q] = k;
            s.z[q] = ks + ((uint64_t)(a.first + w0 + q) * (1ull << 20) + l) * rng::GOLDEN;
            if (l < ml) s.act[na++] = q;
        }
        while (na > 0) {
            // Each name's row; the contexts not reached before get a row each, once.
            if (wide || (r->cap < nctx && r->n + na > r->cap)) reached_clear(r);
            int nadd = 0;
            for (int j = 0; j < na; ++j) {
                const int q = s.act[j];
                int32_t e;
                if (wide) {
                    e = (int32_t)r->n++;
                    s.add[nadd++] = q;
                } else {
                    const int64_t slot = reached_slot(r, s.k[q]);
                    e = r->idx[slot];
                    if (e < 0) {
                        e = r->idx[slot] = (int32_t)r->n++;
                        if (r->shift) r->key[slot] = s.k[q];
                        s.add[nadd++] = q;
                    }
                }
                s.row[q] = e;
            }
            for (int c0 = 0; c0 < nadd; c0 += ROWS) {  // their distributions, ROWS at a time
                const int rows = nadd - c0 < ROWS ? nadd - c0 : ROWS;
                for (int i = 0; i < rows; ++i) {
                    const int q = s.add[c0 + i];
                    const int32_t* c = s.stage + q * rs + s.len[q];  // the T ids before the next character
                    for (int t = 0; t < Tt; ++t) ctx[i * Tt + t] = c[t];
                }
                const T* lg = m.forward(P, ctx, rows, s.chunk);
                for (int i = 0; i < rows; ++i) {
                    const int e = s.row[s.add[c0 + i]];
                    int b;
                    char_weights<T>(lg + i * Vp, V, a.temperature, a.top_k, wts, r->cum + (int64_t)e * Vs,
                                    &b);
                    r->best[e] = b;
                }
            }
            // Each name's next character.
            int keep = 0;
            for (int j = 0; j < na; ++j) {
                const int q = s.act[j];
                const int e = s.row[q];
                int v;
                if (greedy) {
                    v = r->best[e];
                } else {
                    const double* crow = r->cum + (int64_t)e * Vs;
                    v = pick_char(crow, V, lines, rng::uniform(rng::mix64(s.z[q])) * crow[V - 1]);
                    s.z[q] += rng::GOLDEN;  // rng::draw(ks, counter + 1)
                }
                int32_t* row = s.stage + q * rs + Tt;
                const int l = s.len[q];
                row[l] = v;  // or the 0 that ends it
                if (v == 0) continue;
                s.k[q] = (s.k[q] - (uint64_t)row[l - Tt] * hi_digit) * (uint64_t)V + (uint64_t)v;
                s.len[q] = l + 1;
                if (l + 1 < ml)
                    s.act[keep++] = q;
                else
                    row[l + 1] = 0;
            }
            na = keep;
        }
        for (int q = 0; q < wn; ++q) {
            const int32_t* row = s.stage + q * rs + Tt;
            int32_t* o = a.compact ? a.out + w : a.out + (w0 + q) * (ml + 1);
            for (int i = 0; i <= s.len[q]; ++i) o[i] = row[i];
            w += s.len[q] + 1;
        }
    }
    return w;
}

template <class T, class M>
static int64_t sample_rows(const M& m, const SampleArgs* a) {
    const int Tt = m.block(), V = m.V(), Vs = cum_stride(V), ml = a->max_len;
    const uint64_t ks = rng::key(a->seed, rng::SAMPLE);
    const int64_t draws = ml - (a->plen < ml ? a->plen : ml);  // characters a name draws at most
    const int64_t nctx = context_count(V, Tt, (int64_t)1 << 62);
    const bool wide = nctx > ((int64_t)1 << 62);
    // Parts by the rows the draw computes at most (its contexts, or about 8 characters a name).
    const double rows = (double)a->n * 8 < (double)nctx ? (double)a->n * 8 : (double)nctx;
    int np = parts_for(m.macs() * rows);
    if (np > a->n) np = a->n > 0 ? (int)a->n : 1;

    // The caller's table, or one of this call's own (freed on the way out).
    struct Own {
        SampleTable t;
        bool own;
        ~Own() {
            if (!own) return;
            mm::aligned_free(t.P);
            for (void* p : t.part) mm::aligned_free(p);
        }
    } own{SampleTable{}, a->table == nullptr};
    SampleTable* tab = a->table ? a->table : &own.t;
    if (!tab->P) {
        tab->P = mm::aligned_malloc(sizeof(T) * m.tables_size());
        m.tables((T*)tab->P, np);
    }
    // Each part's map, with room for every row its names can add (up to SAMPLE_TABLE_BYTES in all):
    // a direct map's for all its contexts at once (memory is only touched as rows are added), a
    // hashed one's growing at least twofold.
    const int64_t fit = (1 << 18) / (ml + 1);  // names of a window: 1 MiB of staging, 8 to 1024 of them
    const int win = (int)(fit < 8 ? 8 : fit > 1024 ? 1024 : fit);
    const int64_t budget = SAMPLE_TABLE_BYTES / np / (sizeof(double) * Vs + 3 * sizeof(int32_t) + 16);
    int wmax = 1;
    for (int part = 0; part < np; ++part) {
        int64_t lo, hi;
        split_range(a->n, part, np, &lo, &hi);
        if (hi - lo > wmax) wmax = (int)(hi - lo < win ? hi - lo : win);
        Reached* r = (Reached*)tab->part[part];
        int64_t cap = (r ? r->n : 0) + (hi - lo) * draws;
        if (wide) {
            cap = cap < win ? cap : win;
        } else {
            if (nctx <= DIRECT || cap > nctx) cap = nctx;
            if (r && cap > r->cap && cap < 2 * r->cap) cap = 2 * r->cap;
            if (cap > budget) cap = budget > win ? budget : win;
        }
        if (!r || r->cap < cap) tab->part[part] = reached_new(cap, nctx, wide, Vs, r);
    }
    // The names' part of each scratch is written before it is read (draw_names); only the forward
    // pass's chunk is zeroed, by its part: zeroing the staging rows of up to 1024 names took a tenth
    // of the instructions of sample(1000).
    const size_t bytes = (draw_scratch_bytes(m, wmax, ml) + 63) / 64 * 64;
    Mem scratch(bytes * np, false);
    int64_t ends[MAX_PARTS];
    parallel(np, [&](int part, int n) {
        int64_t lo, hi;
        split_range(a->n, part, n, &lo, &hi);
        const T* P = (const T*)tab->P;
        Reached* r = (Reached*)tab->part[part];
        char* const base = (char*)scratch.p + bytes * part;
        const DrawScratch s = draw_scratch(m, wmax, ml, base);
        __builtin_memset(s.chunk, 0, bytes - (size_t)(s.chunk - base));
        switch (Vs / 8) {  // the lines of a row known when compiled, for the vocabularies that fit 4
            case 1:
                ends[part] = draw_names<T, M, 1>(m, P, r, nctx, *a, ks, lo, hi, wmax, s);
                break;
            case 2:
                ends[part] = draw_names<T, M, 2>(m, P, r, nctx, *a, ks, lo, hi, wmax, s);
                break;
            case 3:
                ends[part] = draw_names<T, M, 3>(m, P, r, nctx, *a, ks, lo, hi, wmax, s);
                break;
            case 4:
                ends[part] = draw_names<T, M, 4>(m, P, r, nctx, *a, ks, lo, hi, wmax, s);
                break;
            default:
                ends[part] = draw_names<T, M, 0>(m, P, r, nctx, *a, ks, lo, hi, wmax, s);
        }
    });
    if (!a->compact) return 0;
    int64_t w = 0;
    for (int part = 0; part < np; ++part) {  // close the gaps between the parts' runs
        int64_t lo, hi;
        split_range(a->n, part, np, &lo, &hi);
        const int64_t from = lo * (ml + 1), len = ends[part] - from;
        if (from != w) __builtin_memmove(a->out + w, a->out + from, sizeof(int32_t) * len);
        w += len;
    }
    return w;
}

template <class T>
static int64_t sample(ParamView<T> pv, const SampleArgs* a) {
    return sample_rows<T>(MlpRows<T>{*pv.cfg, *pv.lay, pv.p}, a);
}
template <class T>
static int64_t net_sample(NetView<T> nv, const SampleArgs* a) {
    return sample_rows<T>(NetRows<T>{*nv.net, nv.p}, a);
}
