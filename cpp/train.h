// train.h - the optimizer and the training loop.
//
// Included inside an instruction set's namespace (see isa_impl.h), after model.h.
#pragma once

// One update of the whole arena (n elements, a multiple of PAD) from the gradient g, torch.optim's
// rules:
//   SGD:   d = g + wd p;  m = mu m + d;  d = nesterov ? d + mu m : (mu ? m : d);  p -= lr d
//   AdamW: p *= 1 - lr wd;  m += (1-b1)(g - m);  v = b2 v + (1-b2) g^2;
//          p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Elements [i0, i1), multiples of PAD. Returns false if any updated parameter is not finite.
template <class T>
static bool optimizer_update(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v,
                             int64_t i0, int64_t i1, const OptConfig& o, double lr, int64_t t) {
    int bad = 0;
    if (o.kind == OPT_SGD) {
        const T wd = T(o.weight_decay), mu = T(o.momentum), lrt = T(lr);
        if (o.momentum == 0 && o.weight_decay == 0) {
            bad = !sgd_update<T>(p + i0, g + i0, i1 - i0, lrt);  // as the step's fused update (model.h)
        } else {
            const bool nest = o.nesterov != 0, mom = o.momentum != 0;
            for (int64_t i = i0; i < i1; ++i) {
                T d = g[i] + wd * p[i];
                if (mom) {
                    T b = mu * m[i] + d;
                    m[i] = b;
                    d = nest ? d + mu * b : b;
                }
                T x = p[i] - lrt * d;
                p[i] = x;
                bad |= (x * T(0) != T(0));
            }
        }
    } else {
        const double bc1 = 1.0 - __builtin_pow(o.beta1, (double)t),
                     bc2 = 1.0 - __builtin_pow(o.beta2, (double)t);
        const T decay = T(1.0 - lr * o.weight_decay), a1 = T(1.0 - o.beta1), b2 = T(o.beta2),
                a2 = T(1.0 - o.beta2);
        const T step = T(lr / bc1), rs = T(1.0 / __builtin_sqrt(bc2)), eps = T(o.eps);
        for (int64_t i = i0; i < i1; ++i) {
            T gi = g[i];
            T mi = m[i] + a1 * (gi - m[i]);
            T vi = b2 * v[i] + a2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            T x = p[i] * decay - step * mi / (__builtin_sqrt(vi) * rs + eps);
            p[i] = x;
            bad |= (x * T(0) != T(0));
        }
    }
    return bad == 0;
}

// Chunk i of n of the update (the arena split in multiples of PAD), os->t already advanced.
template <class T>
static bool optimizer_chunk(ParamView<T> pv, OptState<T>* os, const OptConfig& o, const T* g, double lr,
                            int i, int n) {
    int64_t lo, hi;
    split_range(pv.lay->total / PAD, i, n, &lo, &hi);
    return optimizer_update<T>(pv.p, g, os->m, os->v, lo * PAD, hi * PAD, o, lr, os->t);
}

// With column blocks (KB > 1, one hidden layer), part k of npc of the update, os->t already
// advanced: the columns of W1, b1 and W_out of the blocks split_range(KB, k, npc), which part k of
// the step's column-split phases read and wrote the gradient of (model.h), and C and b_out with
// part 0. The thread pool gives part k to thread k, so each thread updates what is in its cache.
template <class T>
static bool optimizer_blocks(ParamView<T> pv, OptState<T>* os, const OptConfig& o, const T* g, double lr,
                             int k, int npc, int kb) {
    const Config& c = *pv.cfg;
    const Layout& L = *pv.lay;
    bool ok = true;
    auto seg = [&](int64_t i0, int64_t i1) {
        ok &= optimizer_update<T>(pv.p, g, os->m, os->v, i0, i1, o, lr, os->t);
    };
    int64_t j0, j1, g0, g1, unused;
    split_range(kb, k, npc, &j0, &j1);
    split_range(padded(c.H[0]) / PAD, (int)j0, kb, &g0, &unused);
    split_range(padded(c.H[0]) / PAD, (int)j1 - 1, kb, &unused, &g1);
    const int64_t c0 = g0 * PAD, c1 = g1 * PAD;
    if (k == 0) {
        seg(L.C, L.W[0]);
        seg(L.b[1], L.b[1] + L.nb[1]);
    }
    for (int l = 0; l <= 1; ++l)
        for (int64_t r = 0; r < L.rows[l]; ++r) seg(L.W[l] + r * L.ld[l] + c0, L.W[l] + r * L.ld[l] + c1);
    seg(L.b[0] + c0, L.b[0] + c1);
    return ok;
}

template <class T>
static bool optimizer_step(ParamView<T> pv, OptState<T>* os, const OptConfig& o, const T* g, double lr) {
    os->t += 1;
    const int np = parts_for((double)pv.lay->total * 16);
    int bad[MAX_PARTS] = {0};
    parallel(np,
             [&](int part, int nparts) { bad[part] = !optimizer_chunk<T>(pv, os, o, g, lr, part, nparts); });
    for (int i = 0; i < np; ++i)
        if (bad[i]) return false;
    return true;
}

// The training rows of step s's minibatch: batch_idx[s] if given, else B draws from the seeded stream.
static inline void draw_rows(const TrainArgs* a, int B, int64_t s, uint64_t kb, int64_t* rows) {
    const uint64_t gstep = (uint64_t)(a->step0 + s);
    for (int i = 0; i < B; ++i)
        rows[i] =
            a->batch_idx ? a->batch_idx[s * B + i] : (int64_t)rng::below(rng::draw(kb, gstep * B + i), a->N);
}
// Their contexts and targets into xb and yb, or (prefetch) only a request for their cache lines.
template <class I>
static inline void gather_rows(const I* X, const I* Y, const int64_t* rows, int B, int Tt, int32_t* xb,
                               int32_t* yb, bool prefetch) {
    for (int i = 0; i < B; ++i) {
        const int64_t r = rows[i];
        if (prefetch) {
            __builtin_prefetch(X + r * Tt);
            __builtin_prefetch(Y + r);
            continue;
        }
        for (int t = 0; t < Tt; ++t) xb[i * Tt + t] = X[r * Tt + t];
        yb[i] = Y[r];
    }
}
// The rows are read at random: as bytes (a quarter of the memory, so more of them stay in cache)
// when the caller passed them so.
static inline void gather_batch(const TrainArgs* a, int B, int Tt, const int64_t* rows, int32_t* xb,
                                int32_t* yb, bool prefetch = false) {
    if (a->X8)
        gather_rows(a->X8, a->Y8, rows, B, Tt, xb, yb, prefetch);
    else
        gather_rows(a->X, a->Y, rows, B, Tt, xb, yb, prefetch);
}

static inline double now_seconds() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Steps [0, a->steps) of a run, or fewer if a->seconds runs out. Each step: draw the minibatch, run
// forward and backward, record the loss, update. A non-finite loss stops the run before its update;
// a non-finite parameter after an update rolls the run back to the step before (replaying from a
// snapshot taken at the start of this call: the steps are deterministic). Allocates nothing. Plain
// SGD on a one-part step, or with column blocks, is updated inside the backward pass
// (model_forward_backward), the same bits.
//
// When the step runs on several threads, the next step's minibatch (its rows, ids and contexts,
// which read no parameter) is prepared beside other work. With column blocks and plain SGD, in the
// step's last phase (below). Otherwise during the update: one thread takes the minibatch, the
// others the update's chunks (or blocks), and the thread done with the minibatch helps finish the
// update. On 2 threads the update alone is slow (its gradient and parameters are half in the other
// core's cache), and the minibatch would otherwise run on one thread while the other waits.
template <class T>
static RunResult train_loop(ParamView<T> pv, OptState<T>* os, const OptConfig* o, Workspace* ws,
                            const TrainArgs* a, bool snapshot) {
    const Config& c = *pv.cfg;
    const int64_t n = pv.lay->total;
    const int B = ws->B;
    T* g = (T*)ws->grad;
    const int64_t t0 = os->t;
    const bool group = o->dropout <= 0, overlap = step_parts(c, B) > 1;
    // Plain SGD: on a one-part step or with column blocks, the update inside the backward pass, one
    // pass over the parameters and the gradient fewer.
    const bool plain = o->kind == OPT_SGD && o->momentum == 0 && o->weight_decay == 0;
    if (snapshot) {
        __builtin_memcpy(ws->snap, pv.p, sizeof(T) * n);
        if (os->m) __builtin_memcpy(ws->snap_m, os->m, sizeof(T) * n);
        if (os->v) __builtin_memcpy(ws->snap_v, os->v, sizeof(T) * n);
    }
    const uint64_t kb_key = rng::key(a->seed, rng::BATCH);
    const int kb = kblocks(c);
    const double start = now_seconds();
    // With column blocks on several threads, plain SGD's last phase (model_forward_backward) has
    // two parts. Part 1 finishes the next minibatch in ws->next (its contexts; its rows and ids were
    // staged a step earlier); part 0 scatters dC, updates C, then stages the one after it (draws its
    // rows and finds its ids) in this step's buffers, which the step no longer reads. Then the two
    // sets swap. Each part is about half of a minibatch's preparation, and each thread reads only
    // what it wrote itself or will read again.
    // (model_forward_backward runs beside() under the same condition, npc > 1. Were the two ever to
    // disagree, the loop still prepares every minibatch: `ready` stays false and next_batch runs.)
    const bool beside_prep = plain && c.L == 1 && kb > 1 && overlap;
    int64_t staged = -1;  // the minibatch whose rows and ids ws->next holds
    // Minibatch `step`'s rows drawn into bt.rows and their cache lines requested (they are read at
    // random, mostly from beyond the core's own cache).
    auto request_rows = [&](int64_t step, const Batch& bt) {
        draw_rows(a, B, step, kb_key, bt.rows);
        gather_batch(a, B, c.T, bt.rows, nullptr, nullptr, true);
    };
    // Its contexts and targets read, and its ids found.
    auto read_rows = [&](const Batch& bt) {
        gather_batch(a, B, c.T, bt.rows, bt.xb, bt.yb);
        embed_index(c.T, B, ws->nP, bt);
    };
    bool ready = false;  // ws holds step s's minibatch, prepared
    int64_t drawn = -1;  // the step whose rows ws->cur.rows holds
    // Minibatch s in ws->cur: its rows (requested ahead when they can be), ids and contexts.
    auto next_batch = [&](int64_t step) {
        if (drawn != step) request_rows(step, ws->cur);
        read_rows(ws->cur);
        group_rows(c.T, B, ws->cur, ws, group);
    };
    for (int64_t s = 0; s < a->steps; ++s) {
        if (!ready) next_batch(s);
        if (s + 1 < a->steps && !beside_prep) {
            // Asked for now, the rows are there when the next step reads them.
            request_rows(s + 1, ws->cur);
            drawn = s + 1;
        }
        bool updated = false, ok = false, prepared = false;
        auto beside = [&](int part) {
            if (part == 1 && s + 1 < a->steps) {
                if (staged != s + 1) {
                    request_rows(s + 1, ws->next);
                    read_rows(ws->next);
                }
                group_rows(c.T, B, ws->next, ws, group);
                prepared = true;
            } else if (part == 0 && s + 2 < a->steps) {
                request_rows(s + 2, ws->cur);
                read_rows(ws->cur);
            }
        };
        double loss = model_forward_backward<T>(pv, ws, B, g, o->dropout, a->seed, a->step0 + s, true,
                                                plain ? &a->lr[s] : nullptr, &updated, &ok, beside);
        a->losses[s] = loss;
        if (!__builtin_isfinite(loss)) return RunResult{s, RUN_NONFINITE_LOSS};
        if (prepared) {
            const Batch done = ws->cur;
            ws->cur = ws->next;
            ws->next = done;
            staged = s + 2 < a->steps ? s + 2 : -1;
            drawn = -1;  // ws->cur.rows is the other set's now
        }
        ready = prepared || (overlap && !updated && s + 1 < a->steps);
        if (updated) {
            os->t += 1;  // and ok says whether the updated parameters are finite
        } else if (ready && kb > 1) {
            // Parts 0 .. npc-1 update the blocks each thread owns; part npc, taken by the thread
            // done first, prepares the next minibatch.
            const int np = step_parts(c, B), npc = np < kb ? np : kb;
            int bad[MAX_KBLOCKS + 1] = {0};
            os->t += 1;
            parallel(npc + 1, [&](int part, int) {
                if (part == npc) {
                    next_batch(s + 1);
                } else {
                    bad[part] = !optimizer_blocks<T>(pv, os, *o, g, a->lr[s], part, npc, kb);
                }
            });
            ok = true;
            for (int i = 0; i < npc; ++i) ok = ok && !bad[i];
        } else if (ready) {
            // Part 0 is the next minibatch; the rest are chunks of the update, which the thread
            // done with the minibatch helps finish.
            constexpr int CHUNKS = 16;
            int bad[CHUNKS + 1] = {0};
            os->t += 1;
            parallel(CHUNKS + 1, [&](int part, int) {
                if (part == 0) {
                    next_batch(s + 1);
                } else {
                    bad[part] = !optimizer_chunk<T>(pv, os, *o, g, a->lr[s], part - 1, CHUNKS);
                }
            });
            ok = true;
            for (int i = 1; i <= CHUNKS; ++i) ok = ok && !bad[i];
        } else {
            ok = optimizer_step<T>(pv, os, *o, g, a->lr[s]);
        }
        if (!ok) {
            // Back to the parameters after step s-1: restore the snapshot and replay.
            __builtin_memcpy(pv.p, ws->snap, sizeof(T) * n);
            if (os->m) __builtin_memcpy(os->m, ws->snap_m, sizeof(T) * n);
            if (os->v) __builtin_memcpy(os->v, ws->snap_v, sizeof(T) * n);
            os->t = t0;
            TrainArgs replay = *a;
            replay.steps = s;
            replay.seconds = 0;
            train_loop<T>(pv, os, o, ws, &replay, false);
            return RunResult{s, RUN_NONFINITE_PARAMS};
        }
        if (a->seconds > 0 && now_seconds() - start > a->seconds) return RunResult{s + 1, RUN_OK};
    }
    return RunResult{a->steps, RUN_OK};
}

template <class T>
static RunResult train(ParamView<T> pv, OptState<T>* os, const OptConfig* o, Workspace* ws,
                       const TrainArgs* a) {
    return train_loop<T>(pv, os, o, ws, a, true);
}

// Loss and gradient of the batch (X, Y) of B rows, without dropout. ws holds B rows.
template <class T>
static double loss_and_grad(ParamView<T> pv, Workspace* ws, const int32_t* X, const int32_t* Y, int B,
                            T* grad) {
    __builtin_memcpy(ws->cur.xb, X, sizeof(int32_t) * B * pv.cfg->T);
    __builtin_memcpy(ws->cur.yb, Y, sizeof(int32_t) * B);
    return model_forward_backward<T>(pv, ws, B, grad, 0.0, 0, 0);
}
