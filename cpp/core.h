// core.h - a model: its layers, its parameter table, its arena and its plan; a training run's
// state. Independent of the instruction set.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.h"

namespace mm {

// The lecture's layer classes (makemore_cpp.nn), with their constructor's arguments.
enum LayerKind : int {
    LAYER_EMBEDDING = 0,            // a = num_embeddings, b = embedding_dim
    LAYER_FLATTEN = 1,              //
    LAYER_FLATTEN_CONSECUTIVE = 2,  // a = n
    LAYER_LINEAR = 3,               // a = fan_in, b = fan_out, bias
    LAYER_BATCHNORM = 4,            // a = dim, eps, momentum
    LAYER_TANH = 5,
};
struct LayerSpec {
    int kind;
    int64_t a, b;
    bool bias;
    double eps, momentum;
};

// How parameters start. Each is N(0, 1) times a scale (draws of the INIT stream, rng.h) or a
// constant:
//   RULE_LECTURE  every parameter N(0, 1), as the lecture's part-2 torch.randn;
//   RULE_KAIMING  the lecture's part 3: hidden weights N(0, 1) * (5/3)/sqrt(fan_in), hidden biases
//                 * 0.01, the output layer's weight * 0.01 and bias * 0, C unscaled;
//   RULE_LAYERS   the lecture's classes: Embedding N(0, 1), Linear weight N(0, 1)/sqrt(fan_in) and
//                 bias 0, BatchNorm1d gamma 1, beta 0, running_mean 0, running_var 1.
enum InitRule : int { RULE_LECTURE = 0, RULE_KAIMING = 1, RULE_LAYERS = 2 };
enum InitKind : int { INIT_NORMAL = 0, INIT_CONSTANT = 1 };

// One parameter of the model's table: what the user sees (name, layer, shape) and where the arena
// keeps it. Element (r, k) of the user's row-major array is at arena index
//   off + k * ld + r                                   when transposed,
//   off + ((r / seg) * segld + r % seg) * ld + k       otherwise
// (a Linear's weight has zero rows where its input has padding: segments of seg rows, segld apart).
struct ParamInfo {
    std::string name;    // "C", "W1", "b1", ... (lecture names) or
                         // "{layer}.{weight|bias|gamma|beta|running_mean|running_var}"
    int layer;           // index in the layer list
    int64_t rows, cols;  // the user's shape; cols = 0 for a vector
    int64_t off, ld;
    int64_t span;  // arena elements of its region (padding included)
    int64_t seg, segld;
    bool transposed;
    bool trained;  // false: a running statistic, outside the optimizer's range
    int init;      // InitKind
    double scale;  // the normal's scale, or the constant
    int64_t values() const { return rows * (cols ? cols : 1); }
};

enum Plan : int { PLAN_MLP = 0, PLAN_LAYERS = 1 };

// Everything about a model but its storage: the plan, its shape, the parameter table and the
// arena's length. Throws std::invalid_argument for layers that do not fit together.
struct ModelDesc {
    std::vector<LayerSpec> layers;
    int V, T;
    bool lecture_names;  // C, W1, b1, ... instead of {layer}.{name} (mm.MLP)
    int rule;            // InitRule
    int plan;
    Config cfg;  // PLAN_MLP
    Layout lay;  // PLAN_MLP
    Net net;     // PLAN_LAYERS
    std::vector<ParamInfo> params;
    int64_t trained, total;  // arena elements: [0, trained) trained, [trained, total) running statistics
};
// force_layers: the layer plan even for the MLP's layers (diagnostics run every model by it).
ModelDesc describe_model(const std::vector<LayerSpec>& layers, int V, int T, bool lecture_names, int rule,
                         bool force_layers = false);

struct Model {
    ModelDesc d;
    int elem;           // 4 (float32) or 8 (float64)
    void* p = nullptr;  // the arena
    std::atomic<bool> busy{false};

    Model(ModelDesc desc, int elem_size);
    ~Model();
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;
    // Every parameter as the rule says, from the draws of (seed, INIT, q * 2^40 + 2e, 2e + 1), q the
    // parameter's place in the table and e the element's in the user's row-major order.
    void init(uint64_t seed, int rule);
    // Copy parameter q between an arena (parameters, gradient or optimizer moment) and the user's
    // row-major layout.
    void read(int q, const void* arena, void* out) const;
    void write(int q, void* arena, const void* in) const;
    template <class T>
    ParamView<T> view() {
        return ParamView<T>{&d.cfg, &d.lay, (T*)p};
    }
    template <class T>
    NetView<T> net_view() {
        return NetView<T>{&d.net, (T*)p};
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

// Scratch for a batch of B rows (the MLP plan's, or the layer plan's), one allocation each.
Workspace* workspace_create(const Config& c, const Layout& lay, int B, int elem, bool dropout, bool moments);
void workspace_destroy(Workspace* ws);
NetWorkspace* net_workspace_create(const Net& net, int B, int elem, bool dropout, bool moments);
void net_workspace_destroy(NetWorkspace* ws);

class Recorder;

// A training run's state: the optimizer's moments and update count, and scratch for its batch size.
struct Trainer {
    std::shared_ptr<Model> model;
    OptConfig opt;
    int B;
    Workspace* ws = nullptr;      // PLAN_MLP
    NetWorkspace* nws = nullptr;  // PLAN_LAYERS
    void* m =
        nullptr;  // the trained parameters' shape, zero at the start; null when the optimizer keeps none
    void* v = nullptr;
    int64_t t = 0;
    std::unique_ptr<Recorder> recorder;  // part 3's records, made at a run's first

    Trainer(std::shared_ptr<Model> model, int B, const OptConfig& opt);
    ~Trainer();
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;
};

// Part 3's statistics of n values (cpp/stats.cpp): mean, unbiased std, the count of |a| > threshold,
// and, when bins > 0, np.histogram's counts[bins] and edges[bins + 1] over [lo, hi] (fit: the data's
// min and max).
struct Summary {
    double mean, std;
    int64_t beyond;
};
// tally: scratch of SUMMARY_TABLES * bins, or null to allocate it.
constexpr int SUMMARY_TABLES = 4;
template <class T>
Summary summarize(const T* a, int64_t n, bool fit, double lo, double hi, double threshold, int bins,
                  int64_t* counts, double* edges, int64_t* tally = nullptr);

// Part 3's statistics of one training-mode pass over a minibatch (cpp/diagnose.cpp): for each Tanh
// layer in order, its output's (hist over fixed bins on [-1, 1], beyond: |t| > saturated) and the
// loss's gradient's with respect to it (bins fitted to the data); for each trained parameter in
// table order, its data's and its gradient's (a histogram for a matrix).
struct DiagRecord {
    int64_t step;
    double loss;
    std::vector<Summary> act, dact;   // per Tanh layer
    std::vector<Summary> data, grad;  // per trained parameter
    // bins counts and bins + 1 edges for each histogram: the Tanh layers' outputs, their
    // gradients, then the matrices' gradients, in that order
    std::vector<int64_t> counts;
    std::vector<double> edges;
};

// Takes DiagRecords of a model: one pass of the layer plan (an MLP's through a copy of its
// parameters in that plan's arena) over B rows, with the parameters as they are, changing nothing.
// Everything a pass needs is allocated by the constructor and reserve(); take() allocates nothing,
// so train() can call it between steps.
class Recorder {
  public:
    Recorder(const Model& m, int B, bool dropout, int bins, double saturated);
    ~Recorder();
    Recorder(const Recorder&) = delete;
    Recorder& operator=(const Recorder&) = delete;
    // Room for n records (those taken before are dropped; the room is kept for the next call).
    void reserve(int64_t n);
    // The record of global step `step` from the B rows (X (B, T), Y (B,)); dropout with the masks
    // of (seed, step). Ignored past the reserved room.
    void take(const int32_t* X, const int32_t* Y, double dropout, uint64_t seed, int64_t step);
    // The layer indices of the Tanh layers, the trained parameters' indices in the table.
    const std::vector<int>& tanh_layers() const { return layers; }
    const std::vector<int>& trained() const { return params; }
    const std::vector<int64_t>& tanh_values() const { return values; }  // the values of each one's output
    double saturation() const { return saturated; }
    const Model& model() const { return m; }
    int bins() const { return nbins; }
    std::vector<DiagRecord> records;
    int64_t taken = 0;

  private:
    const Model& m;
    std::unique_ptr<Model> shadow;  // the MLP's parameters in the layer plan's arena
    const Model* run;
    NetWorkspace* ws = nullptr;
    int B, nbins;
    double saturated;
    std::vector<int> ops, layers;  // the Tanh layers' ops and layer indices
    std::vector<int> params;       // the trained parameters' indices
    std::vector<int> matrices;     // those of them with two dimensions
    std::vector<int64_t> values;   // the values of each Tanh's output
    std::vector<char> a, d, buf;   // scratch: an op's output, its gradient, a parameter
    std::vector<int64_t> tally;
};

}  // namespace mm
