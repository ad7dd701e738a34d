// bindings.cpp - the extension module makemore_cpp._core.
//
// Conversion only: arrays in and out, the GIL released around every call into the kernels, one
// model used by one thread at a time. Arguments arrive validated and converted by the Python
// package (makemore_cpp/_validate.py): C-contiguous int32 (or, for training, uint8) indices in
// range, the model's dtype. The checks here are the last line against memory errors in shapes and
// types, not the user's error messages; the indices' range is not checked again, except by
// evaluate, whose kernels check the ids in the pass that reads them (IndexError if one is out of
// range: the package then finds it and names it).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <tuple>
#include <string>
#include <vector>

#include "core.h"
#include "threadpool.h"

namespace py = pybind11;
using namespace mm;

template <class T>
using carray = py::array_t<T, py::array::c_style>;  // no forcecast: a wrong dtype is an error, not a copy

namespace {

void require(bool ok, const std::string& what) {
    if (!ok) throw py::value_error(what);
}

py::dtype dtype_of(const Model& m) { return m.elem == 4 ? py::dtype::of<float>() : py::dtype::of<double>(); }

py::array new_param_array(const Model& m, int q) {
    const ParamInfo& pi = m.d.params[q];
    std::vector<py::ssize_t> shape{(py::ssize_t)pi.rows};
    if (pi.cols) shape.push_back((py::ssize_t)pi.cols);
    return py::array(dtype_of(m), shape);
}

// The parameters (or gradient, or an optimizer moment) in an arena, as the user's arrays: every
// parameter, or the trained ones only (a gradient or a moment).
py::list arena_to_list(const Model& m, const void* arena, bool trained_only) {
    py::list out;
    for (int q = 0; q < (int)m.d.params.size(); ++q) {
        if (trained_only && !m.d.params[q].trained) continue;
        py::array a = new_param_array(m, q);
        m.read(q, arena, a.mutable_data());
        out.append(a);
    }
    return out;
}

int count_trained(const Model& m) {
    int n = 0;
    for (const ParamInfo& q : m.d.params) n += q.trained;
    return n;
}

void check_param_array(const Model& m, int q, const py::array& a) {
    require(q >= 0 && q < (int)m.d.params.size(), "parameter index out of range");
    const ParamInfo& pi = m.d.params[q];
    require(a.dtype().is(dtype_of(m)) && (a.flags() & py::array::c_style),
            "array must be C-contiguous of the model's dtype");
    require(a.ndim() == (pi.cols ? 2 : 1) && a.shape(0) == pi.rows && (!pi.cols || a.shape(1) == pi.cols),
            "array has the wrong shape");
}

const Isa* isa() { return isa_current(); }

template <class I>
void check_rows(const Model& m, const carray<I>& X, const carray<I>* Y) {
    require(X.ndim() == 2 && X.shape(1) == m.d.T, "X must be (N, block_size)");
    if (Y) require(Y->ndim() == 1 && Y->shape(0) == X.shape(0), "Y must be (N,) with N = len(X)");
}

// a as a C-contiguous array of T, or TypeError (no conversion: a wrong dtype is an error, not a copy).
template <class T>
carray<T> as_carray(const py::array& a, const char* name) {
    if (!carray<T>::check_(a))
        throw py::type_error(std::string(name) + " must be a C-contiguous array of " +
                             std::string(py::str(py::dtype::of<T>())) + ", got " +
                             ((a.flags() & py::array::c_style) ? "" : "a non-contiguous array of ") +
                             std::string(py::str(a.dtype())));
    return py::reinterpret_borrow<carray<T>>(a);
}

// The layer list from Python: tuples (kind, a, b, bias, eps, momentum).
std::vector<LayerSpec> layer_specs(
    const std::vector<std::tuple<int, int64_t, int64_t, bool, double, double>>& t) {
    std::vector<LayerSpec> out;
    for (const auto& x : t)
        out.push_back(LayerSpec{std::get<0>(x), std::get<1>(x), std::get<2>(x), std::get<3>(x),
                                std::get<4>(x), std::get<5>(x)});
    return out;
}

ModelDesc describe(const std::vector<LayerSpec>& layers, int V, int T, bool lecture_names, int rule) {
    require(rule >= RULE_LECTURE && rule <= RULE_LAYERS, "unknown initialisation rule");
    try {
        return describe_model(layers, V, T, lecture_names, rule);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
}

// The parameter table as Python sees it.
py::list table_of(const ModelDesc& d) {
    py::list out;
    for (const ParamInfo& q : d.params) {
        py::dict e;
        e["name"] = q.name;
        e["layer"] = q.layer;
        e["shape"] = q.cols ? py::tuple(py::make_tuple(q.rows, q.cols)) : py::tuple(py::make_tuple(q.rows));
        e["trained"] = q.trained;
        out.append(e);
    }
    return out;
}

std::shared_ptr<Model> make_model(ModelDesc d, const std::string& dtype) {
    require(dtype == "float32" || dtype == "float64", "dtype must be float32 or float64");
    return std::make_shared<Model>(std::move(d), dtype == "float32" ? 4 : 8);
}

// The trained parameters' regions of the arena, in table order.
std::vector<ParamSpan> trained_spans(const Model& m) {
    std::vector<ParamSpan> out;
    for (const ParamInfo& q : m.d.params)
        if (q.trained) out.push_back(ParamSpan{q.off, q.span, q.values()});
    return out;
}

// n values from x as a Python list.
template <class T>
py::object as_list(const T* x, int n) {
    return py::cast(std::vector<T>(x, x + n));
}

// A record as Python objects: (step, loss, activations, gradients, params), the first two a list
// of (layer, values, mean, std, beyond, counts, edges) per Tanh layer, the last of (shape, values,
// data std, gradient mean, gradient std, counts or None, edges or None) per trained parameter.
py::tuple record_to_py(const Recorder& rec, const DiagRecord& r) {
    const int bins = rec.bins();
    const Model& m = rec.model();
    int h = 0;
    auto layer = [&](const Summary& s, int k, int64_t n) {
        py::tuple t = py::make_tuple(rec.tanh_layers()[k], n, s.mean, s.std, s.beyond,
                                     as_list(r.counts.data() + (size_t)h * bins, bins),
                                     as_list(r.edges.data() + (size_t)h * (bins + 1), bins + 1));
        ++h;
        return t;
    };
    const std::vector<int64_t>& values = rec.tanh_values();
    py::list acts, dacts, params;
    for (size_t k = 0; k < r.act.size(); ++k) acts.append(layer(r.act[k], (int)k, values[k]));
    for (size_t k = 0; k < r.dact.size(); ++k) dacts.append(layer(r.dact[k], (int)k, values[k]));
    for (size_t j = 0; j < r.data.size(); ++j) {
        const ParamInfo& pi = m.d.params[rec.trained()[j]];
        py::list shape;
        shape.append(pi.rows);
        if (pi.cols) shape.append(pi.cols);
        py::object counts = py::none(), edges = py::none();
        if (pi.cols) {
            counts = as_list(r.counts.data() + (size_t)h * bins, bins);
            edges = as_list(r.edges.data() + (size_t)h * (bins + 1), bins + 1);
            ++h;
        }
        params.append(
            py::make_tuple(shape, pi.values(), r.data[j].std, r.grad[j].mean, r.grad[j].std, counts, edges));
    }
    return py::make_tuple(r.step, r.loss, acts, dacts, params);
}

// The trainer's recorder for records every `every` steps from step0 on, with room for those due in
// `steps` steps (made at the first run that records, kept while its settings hold).
Recorder* trainer_recorder(Trainer& tr, int64_t step0, int64_t steps, int64_t every, int bins,
                           double saturated) {
    const int64_t first = (step0 + every - 1) / every * every;
    const int64_t due = first < step0 + steps ? (step0 + steps - 1 - first) / every + 1 : 0;
    if (!tr.recorder || tr.recorder->bins() != bins || tr.recorder->saturation() != saturated)
        tr.recorder.reset(new Recorder(*tr.model, tr.B, tr.opt.dropout > 0, bins, saturated));
    tr.recorder->reserve(due);
    return tr.recorder.get();
}

template <class I>
py::tuple trainer_run(Trainer& tr, carray<I> X, carray<I> Y, std::optional<carray<int64_t>> batch_idx,
                      carray<double> lr, int64_t step0, uint64_t seed, double seconds, carray<double> losses,
                      std::optional<carray<double>> ustats, int64_t record_every, int bins,
                      double saturated) {
    Model& m = *tr.model;
    check_rows(m, X, &Y);
    const int64_t steps = lr.size();
    require(losses.size() == steps, "losses and lr differ in length");
    require(X.shape(0) >= 1, "no training rows");
    require(sizeof(I) == 4 || m.d.V <= 256, "ids as bytes need a vocabulary of at most 256");
    if (batch_idx)
        require(batch_idx->ndim() == 2 && batch_idx->shape(0) == steps && batch_idx->shape(1) == tr.B,
                "batch_idx must be (steps, B)");
    TrainArgs a{};
    a.N = X.shape(0);
    a.batch_idx = batch_idx ? batch_idx->data() : nullptr;
    a.lr = lr.data();
    a.steps = steps;
    a.step0 = step0;
    a.seed = seed;
    a.seconds = seconds;
    a.losses = losses.mutable_data();
    const std::vector<ParamSpan> spans = trained_spans(m);
    if (ustats) {
        require(ustats->ndim() == 3 && ustats->shape(0) == steps &&
                    ustats->shape(1) == (py::ssize_t)spans.size() && ustats->shape(2) == 2,
                "ustats must be (steps, trained parameters, 2)");
        a.spans = spans.data();
        a.nspans = (int)spans.size();
        a.ustats = ustats->mutable_data();
    }
    require(record_every >= 0, "record_every must be >= 0");
    require(record_every == 0 || (bins >= 1 && step0 >= 0), "records need bins >= 1 and step0 >= 0");
    if constexpr (sizeof(I) == 1) {
        a.X8 = X.data();
        a.Y8 = Y.data();
    } else {
        a.X = X.data();
        a.Y = Y.data();
    }
    BusyGuard g(m);  // before the recorder, which a call refused here must not touch
    Recorder* rec = nullptr;
    struct RecordCall {
        Recorder* rec;
        double dropout;  // the run's: the record's masks are its step's
        uint64_t seed;
    } call{};
    if (record_every > 0) {
        rec = trainer_recorder(tr, step0, steps, record_every, bins, saturated);
        a.record = [](void* ctx, const int32_t* xb, const int32_t* yb, int64_t step) {
            const RecordCall* c = (const RecordCall*)ctx;
            c->rec->take(xb, yb, c->dropout, c->seed, step);
        };
        a.record_ctx = &call;
        a.record_every = record_every;
        call = RecordCall{rec, tr.opt.dropout, seed};
    }
    RunResult r;
    {
        py::gil_scoped_release nogil;
        if (m.elem == 4) {
            OptState<float> os{(float*)tr.m, (float*)tr.v, tr.t};
            r = m.d.plan == PLAN_MLP ? isa()->f32.train(m.view<float>(), &os, &tr.opt, tr.ws, &a)
                                     : isa()->f32.net_train(m.net_view<float>(), &os, &tr.opt, tr.nws, &a);
            tr.t = os.t;
        } else {
            OptState<double> os{(double*)tr.m, (double*)tr.v, tr.t};
            r = m.d.plan == PLAN_MLP ? isa()->f64.train(m.view<double>(), &os, &tr.opt, tr.ws, &a)
                                     : isa()->f64.net_train(m.net_view<double>(), &os, &tr.opt, tr.nws, &a);
            tr.t = os.t;
        }
    }
    py::list records;
    if (rec)
        for (int64_t k = 0; k < rec->taken; ++k) records.append(record_to_py(*rec, rec->records[(size_t)k]));
    return py::make_tuple(r.done, r.status, records);
}

// Whether two descriptions are of the same model.
bool same_model(const ModelDesc& a, const ModelDesc& b) {
    if (a.V != b.V || a.T != b.T || a.plan != b.plan || a.layers.size() != b.layers.size()) return false;
    for (size_t i = 0; i < a.layers.size(); ++i) {
        const LayerSpec &x = a.layers[i], &y = b.layers[i];
        if (x.kind != y.kind || x.a != y.a || x.b != y.b || x.bias != y.bias || x.eps != y.eps ||
            x.momentum != y.momentum)
            return false;
    }
    return true;
}

// A SampleTable kept between the calls of one sample(), with what it was computed from: used only
// if all of it still holds (the same model and parameters, byte for byte), emptied otherwise.
struct HeldTable {
    SampleTable t;
    const Isa* isa = nullptr;
    std::shared_ptr<const ModelDesc> desc;
    int elem = 0;
    double temperature = 0;
    int top_k = 0;
    std::vector<char> params;
    HeldTable() = default;
    HeldTable(const HeldTable&) = delete;
    HeldTable& operator=(const HeldTable&) = delete;
    ~HeldTable() { clear(); }
    bool matches(const Model& m, double temperature_, int top_k_) const {
        return t.P && isa == mm::isa_current() && elem == m.elem && desc && same_model(*desc, m.d) &&
               temperature == temperature_ && top_k == top_k_ &&
               params.size() == (size_t)m.d.total * m.elem &&
               std::memcmp(params.data(), m.p, params.size()) == 0;
    }
    void clear() {
        aligned_free(t.P);
        for (void* p : t.part) aligned_free(p);
        t = SampleTable{};
        params.clear();
    }
    void record(const Model& m, double temperature_, int top_k_) {
        isa = mm::isa_current();
        desc = std::make_shared<const ModelDesc>(m.d);
        elem = m.elem;
        temperature = temperature_;
        top_k = top_k_;
        params.assign((const char*)m.p, (const char*)m.p + (size_t)m.d.total * m.elem);
    }
};

}  // namespace

PYBIND11_MODULE(_core, mod) {
    mod.doc() = "makemore_cpp's C++ core. Private: use the makemore_cpp package.";

    using Layers = std::vector<std::tuple<int, int64_t, int64_t, bool, double, double>>;
    py::class_<Model, std::shared_ptr<Model>>(mod, "Model")
        // A list of the lecture's layers: tuples (kind, a, b, bias, eps, momentum) (core.h: LayerSpec);
        // lecture_names: C, W1, b1, ... (an MLP's layers only).
        .def(py::init([](const Layers& layers, int V, int T, const std::string& dtype, bool lecture_names,
                         int rule) {
                 return make_model(describe(layer_specs(layers), V, T, lecture_names, rule), dtype);
             }),
             py::arg("layers"), py::arg("V"), py::arg("T"), py::arg("dtype"),
             py::arg("lecture_names") = false, py::arg("rule") = (int)RULE_LAYERS)
        .def_property_readonly("dtype", [](const Model& m) { return m.elem == 4 ? "float32" : "float64"; })
        .def_property_readonly("nparams", [](const Model& m) { return (int)m.d.params.size(); })
        .def_property_readonly("arena_size", [](const Model& m) { return m.d.total; })
        .def_property_readonly("plan", [](const Model& m) { return m.d.plan == PLAN_MLP ? "mlp" : "layers"; })
        .def_property_readonly("params", [](const Model& m) { return table_of(m.d); })
        .def(
            "init",
            // rule: an InitRule, or -1 for the model's own.
            [](Model& m, uint64_t seed, int rule) {
                require(rule >= -1 && rule <= RULE_LAYERS, "unknown initialisation rule");
                BusyGuard g(m);
                m.init(seed, rule < 0 ? m.d.rule : rule);
            },
            py::arg("seed"), py::arg("rule") = -1)
        .def("get",
             [](Model& m, int q) {
                 require(q >= 0 && q < (int)m.d.params.size(), "parameter index out of range");
                 BusyGuard g(m);
                 py::array a = new_param_array(m, q);
                 m.read(q, m.p, a.mutable_data());
                 return a;
             })
        .def("set_all",
             [](Model& m, const std::vector<py::array>& arrays) {
                 // All or nothing: every array is checked before any is written.
                 const int n = (int)m.d.params.size();
                 require((int)arrays.size() == n, "wrong number of parameters");
                 for (int q = 0; q < n; ++q) check_param_array(m, q, arrays[q]);
                 BusyGuard g(m);
                 for (int q = 0; q < n; ++q) m.write(q, m.p, arrays[q].data());
             })
        .def("loss_and_grad",
             // Training mode; the gradient of every trained parameter, in table order.
             [](Model& m, carray<int32_t> X, carray<int32_t> Y) {
                 check_rows(m, X, &Y);
                 const int B = (int)X.shape(0);
                 require(B >= 1, "empty batch");
                 BusyGuard g(m);
                 double loss;
                 if (m.d.plan == PLAN_MLP) {
                     std::unique_ptr<Workspace, void (*)(Workspace*)> ws(
                         workspace_create(m.d.cfg, m.d.lay, B, m.elem, false, false), workspace_destroy);
                     {
                         py::gil_scoped_release nogil;
                         if (m.elem == 4)
                             loss = isa()->f32.loss_and_grad(m.view<float>(), ws.get(), X.data(), Y.data(), B,
                                                             (float*)ws->grad);
                         else
                             loss = isa()->f64.loss_and_grad(m.view<double>(), ws.get(), X.data(), Y.data(),
                                                             B, (double*)ws->grad);
                     }
                     return py::make_tuple(loss, arena_to_list(m, ws->grad, true));
                 }
                 std::unique_ptr<NetWorkspace, void (*)(NetWorkspace*)> ws(
                     net_workspace_create(m.d.net, B, m.elem, false, false), net_workspace_destroy);
                 {
                     py::gil_scoped_release nogil;
                     if (m.elem == 4)
                         loss = isa()->f32.net_loss_and_grad(m.net_view<float>(), ws.get(), X.data(),
                                                             Y.data(), B, (float*)ws->grad, 0.0, 0, 0);
                     else
                         loss = isa()->f64.net_loss_and_grad(m.net_view<double>(), ws.get(), X.data(),
                                                             Y.data(), B, (double*)ws->grad, 0.0, 0, 0);
                 }
                 return py::make_tuple(loss, arena_to_list(m, ws->grad, true));
             })
        .def(
            "diagnose",
            // One training-mode pass by the layer plan (the MLP's too), changing nothing, and part 3's
            // statistics of it (cpp/diagnose.cpp), as train() records them: (step, loss, activations,
            // gradients, params), see record_to_py. Dropout with the masks of (seed, step) when
            // dropout > 0; the outputs are then those before dropout.
            [](Model& m, carray<int32_t> X, carray<int32_t> Y, double dropout, uint64_t seed, int64_t step,
               int bins, double saturated) {
                check_rows(m, X, &Y);
                const int B = (int)X.shape(0);
                require(B >= 1, "empty batch");
                require(bins >= 1, "bins must be >= 1");
                BusyGuard g(m);
                Recorder rec(m, B, dropout > 0, bins, saturated);
                rec.reserve(1);
                {
                    py::gil_scoped_release nogil;
                    rec.take(X.data(), Y.data(), dropout, seed, step);
                }
                return record_to_py(rec, rec.records[0]);
            },
            py::arg("X"), py::arg("Y"), py::arg("dropout"), py::arg("seed"), py::arg("step"), py::arg("bins"),
            py::arg("saturated"))
        .def("evaluate",
             // Evaluation mode. Row losses summed over blocks of SUM_ROWS rows (if Y is given) and the
             // logits (if asked). dedup: compute each distinct context once where possible (the same
             // results; off to time every row).
             [](Model& m, carray<int32_t> X, std::optional<carray<int32_t>> Y, bool want_logits, bool dedup) {
                 check_rows(m, X, Y ? &*Y : nullptr);
                 const int64_t N = X.shape(0);
                 py::object chunks = py::none(), logits = py::none();
                 double* cl = nullptr;
                 void* out = nullptr;
                 if (Y) {
                     py::array_t<double> a((N + SUM_ROWS - 1) / SUM_ROWS);
                     cl = a.mutable_data();
                     chunks = a;
                 }
                 if (want_logits) {
                     py::array a(dtype_of(m), std::vector<py::ssize_t>{(py::ssize_t)N, (py::ssize_t)m.d.V});
                     out = a.mutable_data();
                     logits = a;
                 }
                 BusyGuard g(m);
                 bool ok;
                 {
                     py::gil_scoped_release nogil;
                     const int32_t* y = Y ? Y->data() : nullptr;
                     const bool mlp = m.d.plan == PLAN_MLP;
                     if (m.elem == 4)
                         ok = mlp ? isa()->f32.evaluate(m.view<float>(), X.data(), y, N, cl, (float*)out,
                                                        dedup)
                                  : isa()->f32.net_evaluate(m.net_view<float>(), X.data(), y, N, cl,
                                                            (float*)out, dedup);
                     else
                         ok = mlp ? isa()->f64.evaluate(m.view<double>(), X.data(), y, N, cl, (double*)out,
                                                        dedup)
                                  : isa()->f64.net_evaluate(m.net_view<double>(), X.data(), y, N, cl,
                                                            (double*)out, dedup);
                 }
                 if (!ok) throw py::index_error("X or Y holds an id outside [0, vocabulary size)");
                 return py::make_tuple(chunks, logits);
             })
        .def(
            "sample",
            // Names first .. first + n - 1: (n, max_len + 1) int32 ids, 0-padded, or with compact the
            // names' ids one after another, each ended by 0.
            [](Model& m, uint64_t seed, int64_t first, int64_t n, double temperature, int top_k,
               carray<int32_t> prefix, int max_len, bool compact, HeldTable* table) {
                require(n >= 0 && max_len >= 1 && max_len < (1 << 20) && first >= 0, "bad sample arguments");
                const int32_t* pre = prefix.data();
                for (py::ssize_t i = 0; i < prefix.size(); ++i)
                    require(pre[i] > 0 && pre[i] < m.d.V, "prefix id out of range");
                py::array_t<int32_t> out(std::vector<py::ssize_t>{(py::ssize_t)n, (py::ssize_t)max_len + 1});
                if (!compact)
                    std::memset(out.mutable_data(), 0, sizeof(int32_t) * n * (max_len + 1));  // 0-padded rows
                SampleArgs a{seed,
                             first,
                             n,
                             temperature,
                             top_k,
                             pre,
                             (int)prefix.size(),
                             max_len,
                             out.mutable_data(),
                             compact ? 1 : 0,
                             table ? &table->t : nullptr};
                BusyGuard g(m);
                if (table && !table->matches(m, temperature, top_k)) table->clear();
                int64_t written;
                {
                    py::gil_scoped_release nogil;
                    const bool mlp = m.d.plan == PLAN_MLP;
                    if (m.elem == 4)
                        written = mlp ? isa()->f32.sample(m.view<float>(), &a)
                                      : isa()->f32.net_sample(m.net_view<float>(), &a);
                    else
                        written = mlp ? isa()->f64.sample(m.view<double>(), &a)
                                      : isa()->f64.net_sample(m.net_view<double>(), &a);
                }
                if (table && table->t.P && table->params.empty()) table->record(m, temperature, top_k);
                if (compact)
                    return py::array(out.reshape({(py::ssize_t)n * (max_len + 1)})[py::slice(0, written, 1)]);
                return py::array(out[py::make_tuple(py::ellipsis(), py::slice(0, max_len, 1))]);
            },
            py::arg("seed"), py::arg("first"), py::arg("n"), py::arg("temperature"), py::arg("top_k"),
            py::arg("prefix"), py::arg("max_len"), py::arg("compact") = false, py::arg("table") = nullptr);

    // A model's description without its storage: {"plan", "params" (the table), "arena_bytes"}, for
    // checks before anything is allocated.
    mod.def(
        "describe",
        [](const Layers& layers, int V, int T, const std::string& dtype, bool lecture_names, int rule) {
            require(dtype == "float32" || dtype == "float64", "dtype must be float32 or float64");
            const ModelDesc d = describe(layer_specs(layers), V, T, lecture_names, rule);
            py::dict out;
            out["plan"] = d.plan == PLAN_MLP ? "mlp" : "layers";
            out["params"] = table_of(d);
            out["arena_bytes"] = d.total * (dtype == "float32" ? 4 : 8);
            return out;
        },
        py::arg("layers"), py::arg("V"), py::arg("T"), py::arg("dtype"), py::arg("lecture_names") = false,
        py::arg("rule") = (int)RULE_LAYERS);

    // The contexts the calls of one draw reach, kept from one call of Model.sample to the next (see
    // HeldTable).
    py::class_<HeldTable>(mod, "SampleTable")
        .def(py::init<>())
        .def_property_readonly("filled", [](const HeldTable& t) { return t.t.P != nullptr; });

    // The optimizer's settings (common.h), given to a Trainer as one value.
    py::class_<OptConfig>(mod, "OptConfig")
        .def(py::init([](int kind, double momentum, bool nesterov, double beta1, double beta2, double eps,
                         double weight_decay, double dropout) {
                 return OptConfig{kind, momentum, nesterov ? 1 : 0, beta1, beta2, eps, weight_decay, dropout};
             }),
             py::arg("kind"), py::arg("momentum"), py::arg("nesterov"), py::arg("beta1"), py::arg("beta2"),
             py::arg("eps"), py::arg("weight_decay"), py::arg("dropout"));

    py::class_<Trainer>(mod, "Trainer")
        .def(py::init([](std::shared_ptr<Model> m, int B, const OptConfig& opt) {
                 require(B >= 1, "batch size must be positive");
                 return new Trainer(std::move(m), B, opt);
             }),
             py::arg("model"), py::arg("B"), py::arg("opt"))
        .def_readwrite("t", &Trainer::t)
        // Up to lr.size steps (fewer if `seconds` runs out); returns (steps done, status). X and Y
        // as int32, or as uint8 when the vocabulary fits a byte (read faster at random).
        .def(
            "run",
            [](Trainer& tr, py::array X, py::array Y, std::optional<carray<int64_t>> batch_idx,
               carray<double> lr, int64_t step0, uint64_t seed, double seconds, carray<double> losses,
               std::optional<carray<double>> ustats, int64_t record_every, int bins, double saturated) {
                if (X.dtype().equal(py::dtype::of<uint8_t>()))
                    return trainer_run<uint8_t>(tr, as_carray<uint8_t>(X, "X"), as_carray<uint8_t>(Y, "Y"),
                                                batch_idx, lr, step0, seed, seconds, losses, ustats,
                                                record_every, bins, saturated);
                return trainer_run<int32_t>(tr, as_carray<int32_t>(X, "X"), as_carray<int32_t>(Y, "Y"),
                                            batch_idx, lr, step0, seed, seconds, losses, ustats, record_every,
                                            bins, saturated);
            },
            py::arg("X"), py::arg("Y"), py::arg("batch_idx"), py::arg("lr"), py::arg("step0"),
            py::arg("seed"), py::arg("seconds"), py::arg("losses"), py::arg("ustats") = py::none(),
            py::arg("record_every") = 0, py::arg("bins") = 0, py::arg("saturated") = 0.0)
        .def("moments",
             // The optimizer's moment buffers as lists of user-shaped arrays of the trained
             // parameters (None where absent).
             [](Trainer& tr) {
                 Model& m = *tr.model;
                 py::object a = tr.m ? py::object(arena_to_list(m, tr.m, true)) : py::object(py::none());
                 py::object b = tr.v ? py::object(arena_to_list(m, tr.v, true)) : py::object(py::none());
                 return py::make_tuple(a, b);
             })
        .def("set_moments", [](Trainer& tr, std::optional<std::vector<py::array>> a,
                               std::optional<std::vector<py::array>> b) {
            Model& m = *tr.model;
            std::vector<int> trained;
            for (int q = 0; q < (int)m.d.params.size(); ++q)
                if (m.d.params[q].trained) trained.push_back(q);
            for (auto [arena, arrays] : {std::make_pair(tr.m, &a), std::make_pair(tr.v, &b)}) {
                require(arrays->has_value() == (arena != nullptr), "moments do not match the optimizer");
                if (!arena) continue;
                require((*arrays)->size() == trained.size(), "wrong number of moment arrays");
                for (size_t i = 0; i < trained.size(); ++i) check_param_array(m, trained[i], (**arrays)[i]);
            }
            for (auto [arena, arrays] : {std::make_pair(tr.m, &a), std::make_pair(tr.v, &b)})
                if (arena)
                    for (size_t i = 0; i < trained.size(); ++i)
                        m.write(trained[i], arena, (**arrays)[i].data());
        });

    // Names as strings: ids one after another, each name ended by 0, and the code point of each id
    // (codes[0], for '.', unused). One str a name, made directly (no intermediate string to split).
    mod.def("decode_names", [](carray<int32_t> ids, carray<uint32_t> codes) {
        const int32_t* p = ids.data();
        const int64_t n = ids.size(), V = codes.size();
        const uint32_t* cp = codes.data();
        require(n == 0 || p[n - 1] == 0, "ids must end with 0");
        int64_t names = 0;
        bool ok = true;
        for (int64_t i = 0; i < n; ++i) {
            ok &= (uint32_t)p[i] < (uint64_t)V;
            names += p[i] == 0;
        }
        require(ok, "ids must be below len(codes)");
        py::list out(names);
        for (int64_t i = 0, k = 0; k < names; ++k) {
            int64_t len = 0;
            uint32_t most = 0;  // a str's own largest code point sets its storage (CPython compares by it)
            for (; p[i + len] != 0; ++len) most = cp[p[i + len]] > most ? cp[p[i + len]] : most;
            PyObject* s = PyUnicode_New(len, most);
            if (!s) throw py::error_already_set();  // a code beyond U+10FFFF, or memory
            const int kind = PyUnicode_KIND(s);
            void* data = PyUnicode_DATA(s);
            if (kind == PyUnicode_1BYTE_KIND)
                for (int64_t j = 0; j < len; ++j) ((Py_UCS1*)data)[j] = (Py_UCS1)cp[p[i + j]];
            else if (kind == PyUnicode_2BYTE_KIND)
                for (int64_t j = 0; j < len; ++j) ((Py_UCS2*)data)[j] = (Py_UCS2)cp[p[i + j]];
            else
                for (int64_t j = 0; j < len; ++j) ((Py_UCS4*)data)[j] = cp[p[i + j]];
            PyList_SET_ITEM(out.ptr(), k, s);
            i += len + 1;
        }
        return out;
    });
    mod.def(
        "summarize",
        // Part 3's statistics of an array's values (cpp/stats.cpp): (mean, std, count of |a| >
        // threshold, histogram counts, edges); bins = 0 for the first three only; lo, hi = None to
        // fit the range to the data.
        [](py::array a, std::optional<double> lo, std::optional<double> hi, double threshold, int bins) {
            require(a.flags() & py::array::c_style, "array must be C-contiguous");
            require(bins >= 0, "bins must be >= 0");
            require(lo.has_value() == hi.has_value(), "lo and hi must both be given or both be None");
            const bool f32 = a.dtype().is(py::dtype::of<float>());
            require(f32 || a.dtype().is(py::dtype::of<double>()), "array must be float32 or float64");
            py::array_t<int64_t> counts((py::ssize_t)bins);
            py::array_t<double> edges((py::ssize_t)(bins > 0 ? bins + 1 : 0));
            const int64_t n = (int64_t)a.size();
            const void* data = a.data();
            Summary s;
            {
                py::gil_scoped_release nogil;
                s = f32 ? summarize((const float*)data, n, !lo, lo.value_or(0), hi.value_or(0), threshold,
                                    bins, counts.mutable_data(), edges.mutable_data())
                        : summarize((const double*)data, n, !lo, lo.value_or(0), hi.value_or(0), threshold,
                                    bins, counts.mutable_data(), edges.mutable_data());
            }
            return py::make_tuple(s.mean, s.std, s.beyond, counts, edges);
        },
        py::arg("a"), py::arg("lo"), py::arg("hi"), py::arg("threshold"), py::arg("bins"));
    mod.def("set_num_threads", [](int n) {
        require(n >= 1, "threads must be >= 1");
        pool_set_threads(n);
    });
    mod.def("get_num_threads", &pool_threads);
    mod.def("default_threads", &default_threads);
    mod.def(
        "core_round_trip_ns",
        [](int rounds) {
            require(rounds >= 1, "rounds must be >= 1");
            return core_round_trip_ns(rounds);
        },
        py::call_guard<py::gil_scoped_release>());
    mod.def("isa", [] { return std::string(isa()->name); });
    mod.def("isa_supported", [](const std::string& n) { return isa_supported(n.c_str()); });
    mod.def("set_isa", [](const std::string& n) {
        const Isa* i = isa_by_name(n.c_str());
        require(i != nullptr, "instruction set '" + n + "' is unknown or not supported by this CPU");
        isa_set(i);
    });
    mod.def("dropout_mask", [](const std::string& dtype, uint64_t seed, int64_t step, int layer, int L, int B,
                               int H, double p) {
        py::array out(dtype == "float32" ? py::dtype::of<float>() : py::dtype::of<double>(),
                      std::vector<py::ssize_t>{(py::ssize_t)B, (py::ssize_t)H});
        if (dtype == "float32")
            isa()->f32.dropout_mask(seed, step, layer, L, B, H, p, (float*)out.mutable_data());
        else
            isa()->f64.dropout_mask(seed, step, layer, L, B, H, p, (double*)out.mutable_data());
        return out;
    });
    mod.attr("PAD") = PAD;
    mod.attr("MAX_HIDDEN") = MAX_HIDDEN;
    mod.attr("SUM_ROWS") = SUM_ROWS;
    mod.attr("DEDUP_ALWAYS") = DEDUP_ALWAYS;
    mod.attr("SAMPLE_TABLE_BYTES") = SAMPLE_TABLE_BYTES;
    mod.attr("LAYER_EMBEDDING") = (int)LAYER_EMBEDDING;
    mod.attr("LAYER_FLATTEN") = (int)LAYER_FLATTEN;
    mod.attr("LAYER_FLATTEN_CONSECUTIVE") = (int)LAYER_FLATTEN_CONSECUTIVE;
    mod.attr("LAYER_LINEAR") = (int)LAYER_LINEAR;
    mod.attr("LAYER_BATCHNORM") = (int)LAYER_BATCHNORM;
    mod.attr("LAYER_TANH") = (int)LAYER_TANH;
    mod.attr("RULE_LECTURE") = (int)RULE_LECTURE;
    mod.attr("RULE_KAIMING") = (int)RULE_KAIMING;
    mod.attr("RULE_LAYERS") = (int)RULE_LAYERS;
    mod.attr("OPT_SGD") = (int)OPT_SGD;
    mod.attr("OPT_ADAMW") = (int)OPT_ADAMW;
    mod.attr("RUN_NONFINITE_LOSS") = (int)RUN_NONFINITE_LOSS;
}
