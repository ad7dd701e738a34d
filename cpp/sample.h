// sample.h - drawing names from the model.
//
// Name i starts from the context '.' * T followed by the prefix, and draws one character at a time
// from softmax(logits / temperature), restricted to the top_k most likely when top_k > 0, until it
// draws '.' (id 0) or holds max_len characters. The k-th character of name i uses the draw
// (seed, SAMPLE, i * 2^20 + k), so a name does not depend on how many others are drawn, in what
// batches, or on how many threads.
//
// Each thread keeps up to SLOTS names in flight and runs the model on all of them at once (the
// forward pass of eval.h), refilling a slot as soon as its name ends.
//
// Included inside an instruction set's namespace (see isa_impl.h), after eval.h.
#pragma once

static constexpr int SLOTS = 64;

// The index of the character drawn from one row of logits.
template <class T>
static int draw_char(const T* l, int V, double temperature, int top_k, T* tmp, uint64_t u) {
    int best = 0;
    for (int v = 1; v < V; ++v)
        if (l[v] > l[best]) best = v;
    if (temperature == 0) return best;
    T thr = -__builtin_inf();
    if (top_k > 0 && top_k < V) {
        // The top_k-th largest logit (quickselect on a copy); ties with it are kept.
        for (int v = 0; v < V; ++v) tmp[v] = l[v];
        int lo = 0, hi = V - 1, k = top_k - 1;  // position k of the descending order
        while (lo < hi) {
            T pivot = tmp[(lo + hi) / 2];
            int i = lo, j = hi;
            while (i <= j) {
                while (tmp[i] > pivot) ++i;
                while (tmp[j] < pivot) --j;
                if (i <= j) {
                    T x = tmp[i];
                    tmp[i] = tmp[j];
                    tmp[j] = x;
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
        thr = tmp[k];
    }
    const double m = (double)l[best], inv = 1.0 / temperature;
    double sum = 0;
    for (int v = 0; v < V; ++v) {
        double e = l[v] >= thr ? __builtin_exp(((double)l[v] - m) * inv) : 0.0;
        tmp[v] = (T)e;
        sum += e;
    }
    double target = rng::uniform(u) * sum, cum = 0;
    int last = best;
    for (int v = 0; v < V; ++v) {
        if (tmp[v] <= 0) continue;
        cum += tmp[v];
        last = v;
        if (cum > target) return v;
    }
    return last;  // rounding left the target past the end: the last possible character
}

template <class T>
static void sample(ParamView<T> pv, const SampleArgs* a) {
    const Config& c = *pv.cfg;
    const Layout& L = *pv.lay;
    const T* p = pv.p;
    const int Tt = c.T, V = c.V;
    const int64_t ld0 = L.ld[0], Vp = padded(V);
    const uint64_t ks = rng::key(a->seed, rng::SAMPLE);
    Mem tables(sizeof(T) * Tt * V * ld0);
    T* P = (T*)tables.p;
    double per_name = 8.0 * ((double)c.H[c.L - 1] * V + (double)Tt * c.H[0]);
    int np = parts_for(per_name * (double)a->n);
    if (np > a->n) np = (int)(a->n > 0 ? a->n : 1);
    parallel(np, [&](int part, int n) {
        int64_t v0, v1;
        split_range(ld0 / VT<T>::W, part, n, &v0, &v1);
        full_tables<T>(c, L, p, P, (int)v0, (int)v1);
    });
    const size_t bytes = rows_bytes(c, SLOTS, sizeof(int32_t) * SLOTS * Tt + sizeof(T) * Vp + 64);
    Mem scratch(bytes * np);
    parallel(np, [&](int part, int n) {
        int64_t lo, hi;
        split_range(a->n, part, n, &lo, &hi);
        RowScratch<T> s = rows_carve<T>(c, SLOTS, (char*)scratch.p + bytes * part);
        T* tmp = (T*)s.extra;
        int32_t* ctx = (int32_t*)(tmp + Vp);
        int64_t name[SLOTS];
        int len[SLOTS];
        int active = 0;
        int64_t next = lo;
        auto start = [&](int i) {  // begin name `next` in slot i; false if it is done at once
            name[i] = next++;
            int32_t* out = a->out + name[i] * a->max_len;
            for (int t = 0; t < Tt; ++t) ctx[i * Tt + t] = 0;
            len[i] = 0;
            for (int k = 0; k < a->plen && len[i] < a->max_len; ++k) {
                out[len[i]++] = a->prefix[k];
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
                const uint64_t u = rng::draw(ks, (uint64_t)(a->first + name[i]) * (1ull << 20) + len[i]);
                int v = draw_char<T>(s.logits + i * Vp, V, a->temperature, a->top_k, tmp, u);
                bool done = v == 0;
                if (!done) {
                    a->out[name[i] * a->max_len + len[i]++] = v;
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
}
