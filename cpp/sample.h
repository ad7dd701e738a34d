// sample.h - drawing names from the model.
//
// Name i starts from the context '.' * T followed by the prefix, and draws one character at a time
// from softmax(logits / temperature), restricted to the top_k most likely when top_k > 0, until it
// draws '.' (id 0) or holds max_len characters. The k-th character of name i uses the draw
// u = (seed, SAMPLE, i * 2^20 + k): the character is the first v whose running sum of weights
// w_v = exp((l_v - max l) / temperature) (computed in the model's precision, summed in double)
// exceeds u * sum(w). A name therefore does not depend on how
// many others are drawn, in what batches, or on how many threads.
//
// Two ways to the same draws:
//   - when the contexts are few (V^T of them) next to the characters to draw, the running sums of
//     every context are tabulated once (all contexts through the forward pass of eval.h, in
//     batches) and each character is a lookup and a binary search;
//   - otherwise each thread keeps up to SLOTS names in flight and runs the model on all of them at
//     once, refilling a slot as soon as its name ends.
//
// Included inside an instruction set's namespace (see isa_impl.h), after eval.h.
#pragma once

static constexpr int SLOTS = 64;

// The weights of one row of logits: w[v] (as T; 0 outside the top_k), their running sums cum[v]
// in double, and the most likely character. Returns the sum of the weights (cum[V-1]).
template <class T>
static double char_weights(const T* l, int V, double temperature, int top_k, T* w, double* cum, int* best_out) {
    int best = 0;
    for (int v = 1; v < V; ++v)
        if (l[v] > l[best]) best = v;
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
    // w_v = exp((l_v - max) / temperature), in T's precision (vectors of W lanes).
    constexpr int W = VT<T>::W;
    const ivec<T> lane = viota<T>();
    const T m = l[best], inv = T(1.0 / temperature);
    for (int v = 0; v < V; v += W) {
        vec<T> x;
        if (v + W <= V) {
            x = vload(l + v);
        } else {
            for (int i = 0; i < W; ++i) x[i] = v + i < V ? l[v + i] : m;
        }
        vec<T> e = vexp((x - m) * inv);
        e = vselect<T>((x >= thr) & (lane + v < V), e, vec<T>{});
        if (v + W <= V) {
            vstore(w + v, e);
        } else {
            for (int i = 0; v + i < V; ++i) w[v + i] = e[i];
        }
    }
    double run = 0;
    for (int v = 0; v < V; ++v) {
        run += (double)w[v];
        cum[v] = run;
    }
    return run;
}

// The first character whose running sum exceeds target (cum only grows, and only where a weight
// is positive: the count of sums <= target); the last possible one if rounding left target past
// the end.
static inline int pick_char(const double* cum, int V, double target) {
    if (__builtin_expect(!(cum[V - 1] > target), 0)) {
        int v = V - 1;
        while (v > 0 && cum[v - 1] == cum[v]) --v;  // the last v with a positive weight
        return v;
    }
    // The entries <= target, counted W at a time: no load waits for another (a binary search's
    // loads are a chain, each waiting for the last, from the cache level the table sits in).
    constexpr int W = VT<double>::W;
    const vec<double> t = vset<double>(target);
    ivec<double> n{};
    int v = 0;
    for (; v + W <= V; v += W) n -= vload(cum + v) <= t;  // a true lane is -1
    int pos = 0;
    for (int i = 0; i < W; ++i) pos += (int)n[i];
    for (; v < V; ++v) pos += cum[v] <= target;
    return pos;
}

// Rewrite the (n, max_len + 1) rows of out, each a name ended by 0, in place as the names one after
// another; returns the ids written. Row i starts at i * (max_len + 1) >= w: writes never overtake reads.
static int64_t compact_names(int32_t* out, int64_t n, int max_len) {
    int64_t w = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int32_t* row = out + i * (max_len + 1);
        int len = 0;
        while (row[len] != 0) ++len;
        for (int k = 0; k < len; ++k) out[w + k] = row[k];
        w += len;
        out[w++] = 0;
    }
    return w;
}

template <class T>
static int64_t sample(ParamView<T> pv, const SampleArgs* a) {
    const Config& c = *pv.cfg;
    const Layout& L = *pv.lay;
    const T* p = pv.p;
    const int Tt = c.T, V = c.V;
    const int64_t ld0 = L.ld[0], Vp = padded(V);
    const uint64_t ks = rng::key(a->seed, rng::SAMPLE);
    Mem tables(sizeof(T) * Tt * V * ld0);
    T* P = (T*)tables.p;
    const double per_row = row_macs(c);
    // Tabulate when the contexts are at most an eighth of the characters to draw (about 8 a name)
    // and their running sums fit in 256 MiB.
    const int64_t nctx = context_count(V, Tt, ((int64_t)256 << 20) / (8 * (V + 2)));
    const bool have = a->table && a->table->mem;  // a table from an earlier call (same parameters)
    const bool tabulate = have || (nctx * (V + 2) * 8 <= ((int64_t)256 << 20) && nctx <= a->n);
    int np = parts_for(per_row * (double)(tabulate ? nctx : 8 * a->n));
    if (!have) full_tables<T>(c, L, p, P, np);

    if (tabulate) {
        // cum (nctx, V), sum (nctx), best (nctx): the caller's table when it has one, else ours
        const size_t dist_bytes = sizeof(double) * nctx * (V + 1) + sizeof(int32_t) * nctx;
        Mem own(a->table ? 0 : dist_bytes, !a->table);
        if (a->table && !have) {
            a->table->mem = mm::aligned_malloc(dist_bytes);
            __builtin_memset(a->table->mem, 0, dist_bytes);
            a->table->nctx = nctx;
        }
        double* cum = (double*)(a->table ? a->table->mem : own.p);
        double* sums = cum + nctx * V;
        int32_t* best = (int32_t*)(sums + nctx);
        const size_t bytes = rows_bytes(c, ROWS, sizeof(int32_t) * ROWS * Tt + sizeof(T) * Vp);
        Mem scratch(have ? 0 : bytes * np, false);
        const int64_t nchunks = have ? 0 : (nctx + ROWS - 1) / ROWS;
        if (!have) parallel(np, [&](int part, int n) {
            RowScratch<T> s = rows_carve<T>(c, ROWS, (char*)scratch.p + bytes * part);
            T* w = (T*)s.extra;
            int32_t* ctx = (int32_t*)(w + Vp);
            for (int64_t ch = part; ch < nchunks; ch += n) {
                const int64_t c0 = ch * ROWS;
                const int rows = (int)(nctx - c0 < ROWS ? nctx - c0 : ROWS);
                for (int r = 0; r < rows; ++r) {
                    int64_t k = c0 + r;
                    for (int t = Tt - 1; t >= 0; --t, k /= V) ctx[r * Tt + t] = (int32_t)(k % V);
                }
                rows_forward<T>(c, L, p, P, ctx, rows, s);
                for (int r = 0; r < rows; ++r) {
                    int b;
                    sums[c0 + r] = char_weights<T>(s.logits + r * Vp, V, a->temperature, a->top_k, w, cum + (c0 + r) * V, &b);
                    best[c0 + r] = b;
                }
            }
        });
        // Each part draws names [lo, hi) into the rows lo.. of out: one row each, or, when compact,
        // one after another from row lo's start (touching only the memory it fills). GROUP names
        // are drawn side by side, a character each in turn: each draw waits for a row of the
        // table that the previous draw chose, and independent names hide that wait.
        constexpr int GROUP = 8;
        const int ml = a->max_len;
        const size_t gbytes = sizeof(int32_t) * GROUP * (ml + 1 + Tt);
        Mem groups(gbytes * np);
        int64_t ends[MAX_PARTS];
        int64_t hi_digit = nctx / V;  // V^(T-1): the weight of the oldest id in a context number
        parallel(np, [&](int part, int n) {
            int64_t lo, hi;
            split_range(a->n, part, n, &lo, &hi);
            int32_t* gbuf = (int32_t*)((char*)groups.p + gbytes * part);  // GROUP rows of ml + 1
            int32_t* ring = gbuf + GROUP * (ml + 1);                      // GROUP x T ids
            int64_t w = lo * (ml + 1);
            for (int64_t g0 = lo; g0 < hi; g0 += GROUP) {
                const int gn = (int)(hi - g0 < GROUP ? hi - g0 : GROUP);
                int64_t k[GROUP];
                int len[GROUP], pos[GROUP];
                bool live[GROUP];
                int alive = 0;
                for (int j = 0; j < gn; ++j) {
                    int32_t* out = a->compact ? gbuf + j * (ml + 1) : a->out + (g0 + j) * (ml + 1);
                    k[j] = 0;
                    len[j] = 0;
                    pos[j] = 0;
                    for (int t = 0; t < Tt; ++t) ring[j * Tt + t] = 0;
                    for (; len[j] < a->plen && len[j] < ml; ++len[j]) {
                        const int v = a->prefix[len[j]];
                        out[len[j]] = v;
                        k[j] = (k[j] - ring[j * Tt + pos[j]] * hi_digit) * V + v;
                        ring[j * Tt + pos[j]] = v;
                        pos[j] = pos[j] + 1 == Tt ? 0 : pos[j] + 1;
                    }
                    live[j] = len[j] < ml;
                    if (!live[j]) out[len[j]] = 0;
                    alive += live[j];
                }
                while (alive > 0) {
                    for (int j = 0; j < gn; ++j) {
                        if (!live[j]) continue;
                        int32_t* out = a->compact ? gbuf + j * (ml + 1) : a->out + (g0 + j) * (ml + 1);
                        const uint64_t u = rng::draw(ks, (uint64_t)(a->first + g0 + j) * (1ull << 20) + len[j]);
                        const int v = a->temperature == 0 ? best[k[j]] : pick_char(cum + k[j] * V, V, rng::uniform(u) * sums[k[j]]);
                        if (v != 0) {
                            out[len[j]++] = v;
                            k[j] = (k[j] - ring[j * Tt + pos[j]] * hi_digit) * V + v;
                            ring[j * Tt + pos[j]] = v;
                            pos[j] = pos[j] + 1 == Tt ? 0 : pos[j] + 1;
                        }
                        if (v == 0 || len[j] == ml) {
                            out[len[j]] = 0;
                            live[j] = false;
                            --alive;
                        }
                    }
                }
                if (a->compact)
                    for (int j = 0; j < gn; ++j) {
                        for (int q = 0; q <= len[j]; ++q) a->out[w + q] = gbuf[j * (ml + 1) + q];
                        w += len[j] + 1;
                    }
            }
            ends[part] = w;
        });
        if (!a->compact) return 0;
        int64_t w = 0;
        for (int part = 0; part < np; ++part) {  // close the gaps between the parts' runs
            int64_t lo, hi;
            split_range(a->n, part, np, &lo, &hi);
            const int64_t from = lo * (a->max_len + 1), len = ends[part] - from;
            if (from != w) __builtin_memmove(a->out + w, a->out + from, sizeof(int32_t) * len);
            w += len;
        }
        return w;
    }

    const size_t bytes = rows_bytes(c, SLOTS, sizeof(int32_t) * SLOTS * Tt + (sizeof(T) + sizeof(double)) * Vp + 64);
    Mem scratch(bytes * np);
    parallel(np, [&](int part, int n) {
        int64_t lo, hi;
        split_range(a->n, part, n, &lo, &hi);
        RowScratch<T> s = rows_carve<T>(c, SLOTS, (char*)scratch.p + bytes * part);
        double* cum = (double*)s.extra;
        T* w = (T*)(cum + Vp);
        int32_t* ctx = (int32_t*)(w + Vp);
        int64_t name[SLOTS];
        int len[SLOTS];
        int active = 0;
        int64_t next = lo;
        auto start = [&](int i) {  // begin name `next` in slot i; false if it is done at once
            name[i] = next++;
            int32_t* out = a->out + name[i] * (a->max_len + 1);
            for (int t = 0; t < Tt; ++t) ctx[i * Tt + t] = 0;
            len[i] = 0;
            out[0] = 0;
            for (int k = 0; k < a->plen && len[i] < a->max_len; ++k) {
                out[len[i]++] = a->prefix[k];
                out[len[i]] = 0;
                for (int t = 0; t + 1 < Tt; ++t) ctx[i * Tt + t] = ctx[i * Tt + t + 1];
                ctx[i * Tt + Tt - 1] = a->prefix[k];
            }
            return len[i] < a->max_len;
        };
        auto fill = [&](int i) {  // put a name that still needs characters into slot i
            while (next < hi)
                if (start(i)) return true;
            return false;
        };
        while (active < SLOTS && fill(active)) ++active;
        while (active > 0) {
            rows_forward<T>(c, L, p, P, ctx, active, s);
            for (int i = 0; i < active; ++i) {
                int b;
                double sum = char_weights<T>(s.logits + i * Vp, V, a->temperature, a->top_k, w, cum, &b);
                const uint64_t u = rng::draw(ks, (uint64_t)(a->first + name[i]) * (1ull << 20) + len[i]);
                int v = a->temperature == 0 ? b : pick_char(cum, V, rng::uniform(u) * sum);
                bool done = v == 0;
                if (!done) {
                    a->out[name[i] * (a->max_len + 1) + len[i]++] = v;
                    a->out[name[i] * (a->max_len + 1) + len[i]] = 0;
                    for (int t = 0; t + 1 < Tt; ++t) ctx[i * Tt + t] = ctx[i * Tt + t + 1];
                    ctx[i * Tt + Tt - 1] = v;
                    done = len[i] >= a->max_len;
                }
                if (done && !fill(i)) {
                    // No names left for this slot: move the last active one here (it is drawn
                    // again below if it has not been yet this round).
                    --active;
                    if (i < active) {
                        name[i] = name[active];
                        len[i] = len[active];
                        for (int t = 0; t < Tt; ++t) ctx[i * Tt + t] = ctx[active * Tt + t];
                        __builtin_memcpy(s.logits + i * Vp, s.logits + active * Vp, sizeof(T) * Vp);
                        --i;
                    }
                }
            }
        }
    });
    return a->compact ? compact_names(a->out, a->n, a->max_len) : 0;
}
