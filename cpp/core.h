// core.h - a model's storage and a training run's state, independent of the instruction set.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>

#include "common.h"

namespace mm {

// Parameters are numbered C = 0, then W_l = 1 + 2l and b_l = 2 + 2l for l = 0..L (W_0 is W1,
// W_L the output layer): the order of the lecture's C, W1, b1, W2, b2.
static inline int param_count(const Config& c) { return 1 + 2 * (c.L + 1); }
// The user's shape of parameter q: (rows, cols), cols = 0 for a vector.
void param_shape(const Config& c, int q, int64_t* rows, int64_t* cols);
// Copy parameter q between an arena (params, gradient or optimizer moment) and the user's
// row-major layout.
void arena_read(const Config& c, const Layout& L, int elem, const void* arena, int q, void* out);
void arena_write(const Config& c, const Layout& L, int elem, void* arena, int q, const void* in);

enum InitKind : int { INIT_LECTURE = 0, INIT_KAIMING = 1 };

struct Model {
    Config cfg;
    Layout lay;
    int elem;           // 4 (float32) or 8 (float64)
    void* p = nullptr;  // the arena
    std::atomic<bool> busy{false};

    Model(const Config& c, int elem_size);
    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;
    // N(0, 1) draws from (seed, INIT, q * 2^40 + 2e, 2e + 1), Box-Muller, scaled per `kind`:
    //   lecture: every parameter N(0, 1), as the lecture's torch.randn;
    //   kaiming: W_l * (5/3)/sqrt(fan_in), b_l * 0.01 for the hidden layers, the output layer's
    //            W * 0.01 and b = 0 (the lecture's part 3), C unscaled.
    void init(uint64_t seed, int kind);
    template <class T>
    ParamView<T> view() {
        return ParamView<T>{&cfg, &lay, (T*)p};
    }
};

// Marks a model busy for the lifetime of the guard; a second user gets a clear error instead of
// two threads writing the same parameters.
struct BusyGuard {
    Model& m;
    explicit BusyGuard(Model& model) : m(model) {
        bool expected = false;
        if (!m.busy.compare_exchange_strong(expected, true))
            throw std::runtime_error(
                "this model is in use by another thread (training, evaluating or sampling); "
                "use one model per thread, or wait for the other call to finish");
    }
    ~BusyGuard() { m.busy.store(false); }
};

Workspace* workspace_create(const Config& c, const Layout& L, int B, int elem, bool dropout, bool moments);
void workspace_destroy(Workspace* ws);

// A training run's state: the optimizer's moments and update count, and scratch for its batch size.
struct Trainer {
    std::shared_ptr<Model> model;
    OptConfig opt;
    int B;
    Workspace* ws = nullptr;
    void* m = nullptr;  // arena-shaped, zero at the start; null when the optimizer keeps none
    void* v = nullptr;
    int64_t t = 0;

    Trainer(std::shared_ptr<Model> model, int B, const OptConfig& opt);
    ~Trainer();
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;
};

}  // namespace mm
