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

// Chunk i of n of the update of arena elements [0, total) (split in multiples of PAD), os->t
// already advanced.
template <class T>
static bool optimizer_chunk(T* p, int64_t total, OptState<T>* os, const OptConfig& o, const T* g, double lr,
                            int i, int n) {
    int64_t lo, hi;
    split_range(total / PAD, i, n, &lo, &hi);
    return optimizer_update<T>(p, g, os->m, os->v, lo * PAD, hi * PAD, o, lr, os->t);
}

// MLP plan with column blocks (KB > 1, one hidden layer): part k of npc of the update, os->t
// already advanced: the columns of W1, b1 and W_out of the blocks split_range(KB, k, npc), which
// part k of the step's column-split phases read and wrote the gradient of (mlp.h), and C and b_out
// with part 0. The thread pool gives part k to thread k, so each thread updates what is in its cache.
template <class T>
static bool optimizer_blocks(ParamView<T> pv, OptState<T>* os, const OptConfig& o, const T* g, double lr,
                             int k, int npc, int kb) {
    const Config& c = *pv.cfg;
    const Layout& lay = *pv.lay;
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
        seg(lay.C, lay.W[0]);
        seg(lay.b[1], lay.b[1] + lay.nb[1]);
    }
    for (int l = 0; l <= 1; ++l)
        for (int64_t r = 0; r < lay.rows[l]; ++r)
            seg(lay.W[l] + r * lay.ld[l] + c0, lay.W[l] + r * lay.ld[l] + c1);
    seg(lay.b[0] + c0, lay.b[0] + c1);
    return ok;
}

// The standard deviations (unbiased) of an update and of the parameter after it, out[0] and out[1],
// from the sums of u, u^2, p and p^2 over its count elements.
static inline void update_std(const double* sums, int64_t count, double* out) {
    const double c = (double)count, d = c > 1 ? c - 1 : 1;
    const double vu = (sums[1] - sums[0] * sums[0] / c) / d, vp = (sums[3] - sums[2] * sums[2] / c) / d;
    out[0] = __builtin_sqrt(vu > 0 ? vu : 0);
    out[1] = __builtin_sqrt(vp > 0 ? vp : 0);
}

// The update of the trained parameters' spans, recording for each the standard deviation (unbiased,
// over its count real elements) of its update u and of its value p after the update into
// out[2q], out[2q + 1], from the sums of u, u^2, p and p^2 taken in vectors (over the span, or its
// blocks added in double). Plain SGD takes them in its own pass (p -= lr g); the other optimizers
// keep a block's values, update it as optimizer_update does, then take its sums. The same bits as
// optimizer_update. os->t already advanced.
template <class T>
static bool optimizer_update_stats(T* p, OptState<T>* os, const OptConfig& o, const T* g, double lr,
                                   const ParamSpan* spans, int nspans, double* out) {
    constexpr int BLK = 256, W = VT<T>::W;
    const bool plain = o.kind == OPT_SGD && o.momentum == 0 && o.weight_decay == 0;
    const vec<T> lrv = vset<T>(T(lr));
    alignas(64) T old[BLK];
    bool ok = true, finite = true;
    for (int q = 0; q < nspans; ++q) {
        double su = 0, su2 = 0, sp = 0, sp2 = 0;
        const int64_t end = spans[q].off + spans[q].span;
        if (plain) {
            // sgd_update's arithmetic and the sums (UpdateSums, also the finite check), two vectors
            // a step (eight chains of adds; one chain a sum would make the loop wait on each add's
            // latency).
            UpdateSums<T> us[2] = {};
            int64_t k = spans[q].off;
            for (; k + 2 * W <= end; k += 2 * W) {
                us[0].apply(p + k, lrv, vload(g + k));
                us[1].apply(p + k + W, lrv, vload(g + k + W));
            }
            for (; k < end; k += W) us[0].apply(p + k, lrv, vload(g + k));
            us[0].add(us[1]);
            su = hsum<T>(us[0].u), su2 = hsum<T>(us[0].u2), sp = hsum<T>(us[0].x), sp2 = hsum<T>(us[0].x2);
            finite = finite && __builtin_isfinite(sp);
        } else {
            for (int64_t i = spans[q].off; i < end; i += BLK) {
                const int64_t n = end - i < BLK ? end - i : BLK;
                __builtin_memcpy(old, p + i, sizeof(T) * n);
                ok &= optimizer_update<T>(p, g, os->m, os->v, i, i + n, o, lr, os->t);
                vec<T> a = vec<T>{}, a2 = vec<T>{}, b = vec<T>{}, b2 = vec<T>{};
                for (int64_t k = 0; k < n; k += W) {
                    const vec<T> x = vload(p + i + k), u = x - vload(old + k);
                    a += u, a2 += u * u, b += x, b2 += x * x;
                }
                su += hsum<T>(a), su2 += hsum<T>(a2), sp += hsum<T>(b), sp2 += hsum<T>(b2);
            }
        }
        const double sums[4] = {su, su2, sp, sp2};
        update_std(sums, spans[q].count, out + 2 * q);
    }
    // A sum can overflow where every parameter is finite: then the parameters say.
    if (!finite) {
        finite = true;
        for (int q = 0; q < nspans; ++q) finite = finite && all_finite<T>(p + spans[q].off, spans[q].span);
    }
    return ok && finite;
}

// The update of arena elements [0, total).
template <class T>
static bool optimizer_step(T* p, int64_t total, OptState<T>* os, const OptConfig& o, const T* g, double lr) {
    os->t += 1;
    const int np = parts_for((double)total * 16);
    bool bad[MAX_PARTS] = {};
    parallel(np, [&](int part, int n) { bad[part] = !optimizer_chunk<T>(p, total, os, o, g, lr, part, n); });
    return !any_bad(bad, np);
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
static inline void gather_rows(const I* X, const I* Y, const int64_t* rows, int B, int T, int32_t* xb,
                               int32_t* yb, bool prefetch) {
    for (int i = 0; i < B; ++i) {
        const int64_t r = rows[i];
        if (prefetch) {
            __builtin_prefetch(X + r * T);
            __builtin_prefetch(Y + r);
            continue;
        }
        for (int t = 0; t < T; ++t) xb[i * T + t] = X[r * T + t];
        yb[i] = Y[r];
    }
}
// The rows are read at random: as bytes (a quarter of the memory, so more of them stay in cache)
// when the caller passed them so.
static inline void gather_batch(const TrainArgs* a, int B, int T, const int64_t* rows, int32_t* xb,
                                int32_t* yb, bool prefetch = false) {
    if (a->X8)
        gather_rows(a->X8, a->Y8, rows, B, T, xb, yb, prefetch);
    else
        gather_rows(a->X, a->Y, rows, B, T, xb, yb, prefetch);
}

static inline double now_seconds() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// A snapshot of the parameters (n elements) and moments, and its restoration.
template <class T>
static void snapshot_take(const T* p, const OptState<T>* os, int64_t n, void* snap, void* snap_m,
                          void* snap_v) {
    __builtin_memcpy(snap, p, sizeof(T) * n);
    if (os->m) __builtin_memcpy(snap_m, os->m, sizeof(T) * n);
    if (os->v) __builtin_memcpy(snap_v, os->v, sizeof(T) * n);
}
template <class T>
static void snapshot_restore(T* p, OptState<T>* os, int64_t n, const void* snap, const void* snap_m,
                             const void* snap_v) {
    __builtin_memcpy(p, snap, sizeof(T) * n);
    if (os->m) __builtin_memcpy(os->m, snap_m, sizeof(T) * n);
    if (os->v) __builtin_memcpy(os->v, snap_v, sizeof(T) * n);
}

// ---------------------------------------------------------------------------------------------
// The MLP plan's loop.
//
// Steps [0, a->steps) of a run, or fewer if a->seconds runs out. Each step: draw the minibatch, run
// forward and backward, record the loss, update. A non-finite loss stops the run before its update;
// a non-finite parameter after an update rolls the run back to the step before (replaying from a
// snapshot taken at the start of this call: the steps are deterministic). Allocates nothing. Plain
// SGD on a one-part step, or with column blocks, is updated inside the backward pass (mlp.h:
// StepPlan.sgd_inside), the same bits.
//
// When the step runs on several threads, the next step's minibatch (its rows, ids and contexts,
// which read no parameter) is prepared beside other work. With column blocks and plain SGD, in the
// step's last phase (below). Otherwise during the update: one thread takes the minibatch, the
// others the update's chunks (or blocks), and the thread done with the minibatch helps finish the
// update. On 2 threads the update alone is slow (its gradient and parameters are half in the other
// core's cache), and the minibatch would otherwise run on one thread while the other waits.
template <class T>
static RunResult mlp_train_loop(ParamView<T> pv, OptState<T>* os, const OptConfig* o, Workspace* ws,
                                const TrainArgs* a, bool snapshot) {
    const Config& c = *pv.cfg;
    const int64_t n = pv.lay->total;
    const int B = ws->B;
    EmbedScratch* es = &ws->emb;
    T* g = (T*)ws->grad;
    const int64_t t0 = os->t;
    const bool group = o->dropout <= 0, overlap = step_parts(c, B) > 1, stats = a->ustats != nullptr;
    const bool plain = o->kind == OPT_SGD && o->momentum == 0 && o->weight_decay == 0;
    if (snapshot) snapshot_take<T>(pv.p, os, n, ws->snap, ws->snap_m, ws->snap_v);
    const uint64_t kb_key = rng::key(a->seed, rng::BATCH);
    const int kb = kblocks(c);
    const double start = now_seconds();
    // With column blocks on several threads, plain SGD's last phase (mlp_backward) has two parts.
    // Part 1 finishes the next minibatch in es->next (its contexts; its rows and ids were staged a
    // step earlier); part 0 scatters dC, updates C, then stages the one after it (draws its rows and
    // finds its ids) in this step's buffers, which the step no longer reads. Then the two sets swap.
    // Each part is about half of a minibatch's preparation, and each thread reads only what it wrote
    // itself or will read again. (mlp_backward runs beside() under the same condition, col_parts >
    // 1. Were the two ever to disagree, the loop still prepares every minibatch: `ready` stays false
    // and next_batch runs.)
    const bool beside_prep = plain && c.nh == 1 && kb > 1 && overlap;
    int64_t staged = -1;  // the minibatch whose rows and ids es->next holds
    // Minibatch `step`'s rows drawn into bt.rows and their cache lines requested (they are read at
    // random, mostly from beyond the core's own cache).
    auto request_rows = [&](int64_t step, const Batch& bt) {
        draw_rows(a, B, step, kb_key, bt.rows);
        gather_batch(a, B, c.T, bt.rows, nullptr, nullptr, true);
    };
    // Its contexts and targets read, and its ids found.
    auto read_rows = [&](const Batch& bt) {
        gather_batch(a, B, c.T, bt.rows, bt.xb, bt.yb);
        embed_index(c.T, B, es->nP, bt);
    };
    bool ready = false;  // ws holds step s's minibatch, prepared
    int64_t drawn = -1;  // the step whose rows es->cur.rows holds
    // Minibatch s in es->cur: its rows (requested ahead when they can be), ids and contexts.
    auto next_batch = [&](int64_t step) {
        if (drawn != step) request_rows(step, es->cur);
        read_rows(es->cur);
        group_rows(c.T, B, es->cur, es, group);
    };
    for (int64_t s = 0; s < a->steps; ++s) {
        if (!ready) next_batch(s);
        if (a->record && (a->step0 + s) % a->record_every == 0)
            a->record(a->record_ctx, es->cur.xb, es->cur.yb, a->step0 + s);
        if (s + 1 < a->steps && !beside_prep) {
            // Asked for now, the rows are there when the next step reads them.
            request_rows(s + 1, es->cur);
            drawn = s + 1;
        }
        bool updated = false, ok = false, prepared = false;
        auto beside = [&](int part) {
            if (part == 1 && s + 1 < a->steps) {
                if (staged != s + 1) {
                    request_rows(s + 1, es->next);
                    read_rows(es->next);
                }
                group_rows(c.T, B, es->next, es, group);
                prepared = true;
            } else if (part == 0 && s + 2 < a->steps) {
                request_rows(s + 2, es->cur);
                read_rows(es->cur);
            }
        };
        const StepPlan sp = step_plan<T>(c, B, plain);
        StepBuffers<T> sb(c, ws, sp, o->dropout > 0, es->nu);
        const double loss = mlp_forward<T>(pv, ws, B, sp, sb, o->dropout, a->seed, a->step0 + s);
        a->losses[s] = loss;
        if (!__builtin_isfinite(loss)) return RunResult{s, RUN_NONFINITE_LOSS};
        if (sp.sgd_inside && stats) {
            // The update's sums taken lane by lane as each block is updated, a set for each
            // parameter and part (sgd_inside has one hidden layer: five parameters, at most
            // MAX_KBLOCKS parts); then a parameter's lanes summed (hsum), its parts in double.
            UpdateSums<T> sums[MAX_KBLOCKS * 5];
            for (int k = 0; k < sp.col_parts * a->nspans; ++k) sums[k] = UpdateSums<T>{};
            SgdOut<T, true> so{pv.p, vset<T>(T(a->lr[s])), vec<T>{}, sums, a->spans, a->nspans};
            mlp_backward<T>(pv, ws, B, sp, sb, g, so, beside);
            bool finite = true;  // the sums are the finite check (UpdateSums)
            for (int q = 0; q < a->nspans; ++q) {
                double total[4] = {};
                for (int part = 0; part < sp.col_parts; ++part) {
                    const UpdateSums<T>& us = sums[part * a->nspans + q];
                    total[0] += hsum<T>(us.u), total[1] += hsum<T>(us.u2);
                    total[2] += hsum<T>(us.x), total[3] += hsum<T>(us.x2);
                }
                finite = finite && __builtin_isfinite(total[2]);
                update_std(total, a->spans[q].count, a->ustats + 2 * (a->nspans * s + q));
            }
            ok = finite || all_finite<T>(pv.p, n);  // a sum can overflow where every parameter is finite
            updated = true;
        } else if (sp.sgd_inside) {
            ok = mlp_backward<T>(pv, ws, B, sp, sb, g, SgdOut<T>{pv.p, vset<T>(T(a->lr[s])), vec<T>{}},
                                 beside);
            updated = true;
        } else {
            mlp_backward<T>(pv, ws, B, sp, sb, g, GradOut<T>{g});
        }
        if (prepared) {
            const Batch done = es->cur;
            es->cur = es->next;
            es->next = done;
            staged = s + 2 < a->steps ? s + 2 : -1;
            drawn = -1;  // es->cur.rows is the other set's now
        }
        ready = prepared || (overlap && !updated && !stats && s + 1 < a->steps);
        if (updated) {
            os->t += 1;  // and ok says whether the updated parameters are finite
        } else if (stats) {
            os->t += 1;
            ok = optimizer_update_stats<T>(pv.p, os, *o, g, a->lr[s], a->spans, a->nspans,
                                           a->ustats + 2 * a->nspans * s);
        } else if (ready && kb > 1) {
            // Parts 0 .. npc-1 update the blocks each thread owns; part npc, taken by the thread
            // done first, prepares the next minibatch.
            const int npc = sp.col_parts;
            bool bad[MAX_KBLOCKS + 1] = {};
            os->t += 1;
            parallel(npc + 1, [&](int part, int) {
                if (part == npc) {
                    next_batch(s + 1);
                } else {
                    bad[part] = !optimizer_blocks<T>(pv, os, *o, g, a->lr[s], part, npc, kb);
                }
            });
            ok = !any_bad(bad, npc);
        } else if (ready) {
            // Part 0 is the next minibatch; the rest are chunks of the update, which the thread
            // done with the minibatch helps finish.
            constexpr int CHUNKS = 16;
            bool bad[CHUNKS + 1] = {};
            os->t += 1;
            parallel(CHUNKS + 1, [&](int part, int) {
                if (part == 0) {
                    next_batch(s + 1);
                } else {
                    bad[part] = !optimizer_chunk<T>(pv.p, n, os, *o, g, a->lr[s], part - 1, CHUNKS);
                }
            });
            ok = !any_bad(bad + 1, CHUNKS);
        } else {
            ok = optimizer_step<T>(pv.p, n, os, *o, g, a->lr[s]);
        }
        if (!ok) {
            // Back to the parameters after step s-1: restore the snapshot and replay.
            snapshot_restore<T>(pv.p, os, n, ws->snap, ws->snap_m, ws->snap_v);
            os->t = t0;
            TrainArgs replay = *a;
            replay.steps = s;
            replay.seconds = 0;
            replay.record = nullptr;
            mlp_train_loop<T>(pv, os, o, ws, &replay, false);
            return RunResult{s, RUN_NONFINITE_PARAMS};
        }
        if (a->seconds > 0 && now_seconds() - start > a->seconds) return RunResult{s + 1, RUN_OK};
    }
    return RunResult{a->steps, RUN_OK};
}

template <class T>
static RunResult train(ParamView<T> pv, OptState<T>* os, const OptConfig* o, Workspace* ws,
                       const TrainArgs* a) {
    return mlp_train_loop<T>(pv, os, o, ws, a, true);
}

// Loss and gradient of the batch (X, Y) of B rows, without dropout. ws holds B rows.
template <class T>
static double loss_and_grad(ParamView<T> pv, Workspace* ws, const int32_t* X, const int32_t* Y, int B,
                            T* grad) {
    __builtin_memcpy(ws->emb.cur.xb, X, sizeof(int32_t) * B * pv.cfg->T);
    __builtin_memcpy(ws->emb.cur.yb, Y, sizeof(int32_t) * B);
    return mlp_forward_backward<T>(pv, ws, B, grad, 0.0, 0, 0);
}

// ---------------------------------------------------------------------------------------------
// The layer plan's loop: the same contract as mlp_train_loop. A step: the minibatch, forward
// (training mode), backward, the update of the trained parameters, then the BatchNorm1d running
// statistics moved towards the batch's (after the update, so that a step that fails changes
// nothing; a non-finite running statistic counts as a non-finite parameter). Single-threaded
// minibatches; each op splits its own work (layers.h).
template <class T>
static RunResult net_train_loop(NetView<T> nv, OptState<T>* os, const OptConfig* o, NetWorkspace* ws,
                                const TrainArgs* a, bool snapshot) {
    const Net& net = *nv.net;
    const int B = ws->B;
    EmbedScratch* es = &ws->emb;
    T* g = (T*)ws->grad;
    const int64_t t0 = os->t;
    if (snapshot) {  // the running statistics too: they change at every step
        __builtin_memcpy(ws->snap, nv.p, sizeof(T) * net.total);
        if (os->m) __builtin_memcpy(ws->snap_m, os->m, sizeof(T) * net.trained);
        if (os->v) __builtin_memcpy(ws->snap_v, os->v, sizeof(T) * net.trained);
    }
    const uint64_t kb_key = rng::key(a->seed, rng::BATCH);
    const double start = now_seconds();
    for (int64_t s = 0; s < a->steps; ++s) {
        draw_rows(a, B, s, kb_key, es->cur.rows);
        gather_batch(a, B, net.T, es->cur.rows, es->cur.xb, es->cur.yb);
        net_prepare_batch(net, ws);
        if (a->record && (a->step0 + s) % a->record_every == 0)
            a->record(a->record_ctx, es->cur.xb, es->cur.yb, a->step0 + s);
        if (s + 1 < a->steps) {
            draw_rows(a, B, s + 1, kb_key, es->next.rows);
            gather_batch(a, B, net.T, es->next.rows, nullptr, nullptr, true);
        }
        const double loss = net_forward<T>(nv, ws, B, o->dropout, a->seed, a->step0 + s);
        a->losses[s] = loss;
        if (!__builtin_isfinite(loss)) return RunResult{s, RUN_NONFINITE_LOSS};
        net_backward<T>(nv, ws, B, g);
        bool ok;
        if (a->ustats) {
            os->t += 1;
            ok = optimizer_update_stats<T>(nv.p, os, *o, g, a->lr[s], a->spans, a->nspans,
                                           a->ustats + 2 * a->nspans * s);
        } else {
            ok = optimizer_step<T>(nv.p, net.trained, os, *o, g, a->lr[s]);
        }
        ok = net_update_running<T>(nv, ws) && ok;
        if (!ok) {
            __builtin_memcpy(nv.p, ws->snap, sizeof(T) * net.total);
            if (os->m) __builtin_memcpy(os->m, ws->snap_m, sizeof(T) * net.trained);
            if (os->v) __builtin_memcpy(os->v, ws->snap_v, sizeof(T) * net.trained);
            os->t = t0;
            TrainArgs replay = *a;
            replay.steps = s;
            replay.seconds = 0;
            replay.record = nullptr;
            net_train_loop<T>(nv, os, o, ws, &replay, false);
            return RunResult{s, RUN_NONFINITE_PARAMS};
        }
        if (a->seconds > 0 && now_seconds() - start > a->seconds) return RunResult{s + 1, RUN_OK};
    }
    return RunResult{a->steps, RUN_OK};
}

template <class T>
static RunResult net_train(NetView<T> nv, OptState<T>* os, const OptConfig* o, NetWorkspace* ws,
                           const TrainArgs* a) {
    return net_train_loop<T>(nv, os, o, ws, a, true);
}

// Loss (training mode) and gradient of the batch (X, Y) of B examples; changes nothing in the model.
// With dropout > 0, the masks of (seed, step). The workspace keeps every op's output and gradient.
template <class T>
static double net_loss_and_grad(NetView<T> nv, NetWorkspace* ws, const int32_t* X, const int32_t* Y, int B,
                                T* grad, double dropout, uint64_t seed, int64_t step) {
    __builtin_memcpy(ws->emb.cur.xb, X, sizeof(int32_t) * B * nv.net->T);
    __builtin_memcpy(ws->emb.cur.yb, Y, sizeof(int32_t) * B);
    net_prepare_batch(*nv.net, ws);
    const double loss = net_forward<T>(nv, ws, B, dropout, seed, step);
    if (__builtin_isfinite(loss)) net_backward<T>(nv, ws, B, grad);
    return loss;
}
