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
//     batches) and each character is a lookup and a count of the sums <= the draw;
//   - otherwise each thread keeps up to SLOTS names in flight and runs the model on all of them at
//     once, refilling a slot as soon as its name ends.
//
// Included inside an instruction set's namespace (see isa_impl.h), after eval.h.
#pragma once

static constexpr int SLOTS = 64;

// Running sums are stored in rows of cum_stride(V) doubles, whole cache lines: cum[0..V) and then
// +inf, which no draw reaches (pick_char counts the sums <= the draw).
static inline int cum_stride(int V) { return (V + 7) / 8 * 8; }

// The weights of one row of logits: w[v] (as T; 0 outside the top_k), their running sums cum[v]
// in double (a row of cum_stride(V)), and the most likely character. Returns the sum of the
// weights (cum[V-1]).
template <class T>
static double char_weights(const T* l, int V, double temperature, int top_k, T* w, double* cum,
                           int* best_out) {
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

// Names [lo, hi) from the table of running sums cum (rows of cum_stride(V), LINES lines each, or
// any number when LINES is 0) and most likely characters best, into the rows lo.. of a->out: one row
// each, or, when compact, one after another from row lo's start (touching only the memory it fills).
// Returns the end of what it wrote when compact.
//
// LANES names are drawn side by side, a character each in turn: each draw waits for the row of the
// table that the name's last draw chose, and independent names hide that wait. A lane whose name
// ends takes the next name at once. The names of a window of `win` are drawn into the rows of
// stage, each after T zeros (the context of its first character), and then copied out in order.
static constexpr int LANES = 8;
template <int LINES>
static int64_t draw_tabulated(const double* cum, const int32_t* best, int V, int Tt, int64_t hi_digit,
                              uint64_t ks, const SampleArgs& a, int64_t lo, int64_t hi, int32_t* stage,
                              int64_t win) {
    const int Vs = cum_stride(V), lines = LINES ? LINES : Vs / 8, ml = a.max_len, plen = a.plen;
    const int64_t rs = Tt + ml + 1;  // a staged row: T zeros, the name, its 0
    const int32_t* const prefix = a.prefix;
    int32_t* const out = a.out;
    const bool compact = a.compact, greedy = a.temperature == 0;
    int64_t w = lo * (ml + 1);
    for (int64_t w0 = lo; w0 < hi; w0 += win) {
        const int wn = (int)(hi - w0 < win ? hi - w0 : win);
        int lens[256];  // each name's length (win <= 256)
        int32_t* row[LANES];
        int q_of[LANES], len[LANES];
        int64_t k[LANES];   // the context of the next character, as a number (eval.h: context_count)
        uint64_t z[LANES];  // the next draw's key + counter * GOLDEN (rng.h), a character's step apart
        int next = 0, active = 0;
        // Put the window's next name that still needs characters into lane j (a name the prefix
        // fills to max_len is done at once); false when the window has none left.
        auto start = [&](int j) {
            while (next < wn) {
                const int q = next++;
                int32_t* r = stage + q * rs + Tt;
                int64_t kk = 0;
                int l = 0;
                for (; l < plen && l < ml; ++l) {
                    r[l] = prefix[l];
                    kk = (kk - r[l - Tt] * hi_digit) * V + r[l];
                }
                if (l < ml) {
                    row[j] = r, q_of[j] = q, len[j] = l, k[j] = kk;
                    z[j] = ks + ((uint64_t)(a.first + w0 + q) * (1ull << 20) + l) * rng::GOLDEN;
                    return true;
                }
                r[l] = 0;
                lens[q] = l;
            }
            return false;
        };
        while (active < LANES && start(active)) ++active;
        while (active > 0) {
            for (int j = 0; j < active; ++j) {
                const int l = len[j];
                const double* crow = cum + k[j] * Vs;
                int v;
                if (greedy) {
                    v = best[k[j]];
                } else {
                    v = pick_char(crow, V, lines, rng::uniform(rng::mix64(z[j])) * crow[V - 1]);
                    z[j] += rng::GOLDEN;  // rng::draw(ks, counter + 1)
                }
                int32_t* r = row[j];
                if (v != 0) {
                    r[l] = v;
                    k[j] = (k[j] - r[l - Tt] * hi_digit) * V + v;
                    len[j] = l + 1;
                    if (l + 1 < ml) continue;
                }
                r[len[j]] = 0;  // the name ends: '.' drawn, or max_len reached
                lens[q_of[j]] = len[j];
                if (!start(j)) {  // no names left for this lane: the last active one moves here
                    --active;
                    row[j] = row[active], q_of[j] = q_of[active], len[j] = len[active], k[j] = k[active],
                    z[j] = z[active];
                    --j;  // and draws now
                }
            }
        }
        for (int q = 0; q < wn; ++q) {
            const int32_t* r = stage + q * rs + Tt;
            int32_t* o = compact ? out + w : out + (w0 + q) * (ml + 1);
            for (int i = 0; i <= lens[q]; ++i) o[i] = r[i];
            w += lens[q] + 1;
        }
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
    // and their running sums fit in SAMPLE_TABLE_BYTES (makemore_cpp/model.py: _sample_chunks).
    const int Vs = cum_stride(V);
    const int64_t nctx = context_count(V, Tt, SAMPLE_TABLE_BYTES / (8 * (Vs + 1)));
    const bool have = a->table && a->table->mem;  // a table from an earlier call (same parameters)
    const bool tabulate = have || (nctx * (Vs + 1) * 8 <= SAMPLE_TABLE_BYTES && nctx <= a->n);
    int np = parts_for(per_row * (double)(tabulate ? nctx : 8 * a->n));
    if (!have) full_tables<T>(c, L, p, P, np);

    if (tabulate) {
        // cum (nctx, Vs), best (nctx): the caller's table when it has one, else ours. A context's
        // row is whole cache lines; its last sum, cum[V-1], is the sum of its weights.
        const size_t dist_bytes = sizeof(double) * nctx * Vs + sizeof(int32_t) * nctx;
        Mem own(a->table ? 0 : dist_bytes, !a->table);
        if (a->table && !have) {
            a->table->mem = mm::aligned_malloc(dist_bytes);
            __builtin_memset(a->table->mem, 0, dist_bytes);
            a->table->nctx = nctx;
        }
        double* cum = (double*)(a->table ? a->table->mem : own.p);
        int32_t* best = (int32_t*)(cum + nctx * Vs);
        const size_t bytes = rows_bytes(c, ROWS, sizeof(int32_t) * ROWS * Tt + sizeof(T) * Vp);
        Mem scratch(have ? 0 : bytes * np, false);
        const int64_t nchunks = have ? 0 : (nctx + ROWS - 1) / ROWS;
        if (!have)
            parallel(np, [&](int part, int n) {
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
                        char_weights<T>(s.logits + r * Vp, V, a->temperature, a->top_k, w,
                                        cum + (c0 + r) * Vs, &b);
                        best[c0 + r] = b;
                    }
                }
            });
        // Each part draws names [lo, hi) into the rows lo.. of out (draw_tabulated).
        const int ml = a->max_len;
        const int64_t fit = (1 << 18) / (ml + 1);  // names of a window: 1 MiB of staging, 8 to 256 of them
        const int64_t win = fit < LANES ? LANES : fit > 256 ? 256 : fit;
        const size_t sbytes = sizeof(int32_t) * win * (Tt + ml + 1);
        Mem stage(sbytes * np);  // zeros: the T ids before each staged name
        int64_t ends[MAX_PARTS];
        parallel(np, [&](int part, int n) {
            int64_t lo, hi;
            split_range(a->n, part, n, &lo, &hi);
            int32_t* sbuf = (int32_t*)((char*)stage.p + sbytes * part);
            switch (Vs / 8) {  // the lines of a row known when compiled, for the vocabularies that fit 4
                case 1:
                    ends[part] = draw_tabulated<1>(cum, best, V, Tt, nctx / V, ks, *a, lo, hi, sbuf, win);
                    break;
                case 2:
                    ends[part] = draw_tabulated<2>(cum, best, V, Tt, nctx / V, ks, *a, lo, hi, sbuf, win);
                    break;
                case 3:
                    ends[part] = draw_tabulated<3>(cum, best, V, Tt, nctx / V, ks, *a, lo, hi, sbuf, win);
                    break;
                case 4:
                    ends[part] = draw_tabulated<4>(cum, best, V, Tt, nctx / V, ks, *a, lo, hi, sbuf, win);
                    break;
                default:
                    ends[part] = draw_tabulated<0>(cum, best, V, Tt, nctx / V, ks, *a, lo, hi, sbuf, win);
            }
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

    const size_t bytes =
        rows_bytes(c, SLOTS, sizeof(int32_t) * SLOTS * Tt + (sizeof(T) + sizeof(double)) * Vp + 64);
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
                int v = a->temperature == 0 ? b : pick_char(cum, V, cum_stride(V) / 8, rng::uniform(u) * sum);
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
