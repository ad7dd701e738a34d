// common.h - a model's shape and the interface between the instruction-set-independent code
// (core.cpp, bindings.cpp) and the per-ISA kernels (isa_*.cpp).
//
// A model is a list of the lecture's layers (makemore_cpp.nn). The core runs it by one of two plans:
//   - the MLP plan (mlp.h), for Embedding, Flatten, (Linear, Tanh) x L, Linear -- the lecture's
//     part-2 model, mm.MLP -- with every distinct context once and column blocks;
//   - the layer plan (layers.h), for any other list: op by op, Embedding + Flatten + Linear as
//     per-position tables.
// Both read their parameters from one arena, described by the model's parameter table (core.h).
//
// Everything here is plain data or has internal linkage: the same header is compiled once per
// instruction set, and nothing in it may be shared between those translation units.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mm {

// Every padded dimension (hidden widths, the vocabulary in the logits) is a multiple of PAD
// elements, so each row starts on a 64-byte boundary whatever the vector width. Padding lanes of
// weights, biases, activations and gradients are zero and stay zero.
static constexpr int PAD = 16;
static constexpr int MAX_PARTS = 64;  // parts of a job at most (kernels.h: parallel)
static constexpr int MAX_HIDDEN = 8;
static constexpr int SUM_ROWS = 1024;  // evaluation returns the loss summed over blocks of this many rows
// Evaluation computes each distinct context once, always when there are at most this many.
static constexpr int64_t DEDUP_ALWAYS = 65536;
// Sampling keeps the distributions of the contexts it reaches in at most this many bytes.
static constexpr int64_t SAMPLE_TABLE_BYTES = (int64_t)256 << 20;

static inline int64_t padded(int64_t n) { return (n + PAD - 1) / PAD * PAD; }

// ---------------------------------------------------------------------------------------------
// The MLP plan.

// V characters, block_size T, n_embd E, nh hidden tanh layers of widths H[0..nh-1].
struct Config {
    int V, T, E, nh;
    int H[MAX_HIDDEN];
};

// Column blocks of a model with one hidden layer of at least 512 units: its PAD-column groups split
// into KB = padded(H) / 256 blocks (at most MAX_KBLOCKS) by split_range (block j: groups
// split_range(padded(H) / PAD, j, KB)). Block j's part of a sum over the hidden units (the logits,
// dC) is taken on its own and the blocks' parts added in block order, so each block's columns can
// stay with one thread for the whole step (mlp.h). 1 otherwise: every sum over the hidden units in
// one chain.
static constexpr int MAX_KBLOCKS = 8;
static inline int kblocks(const Config& c) {
    if (c.nh != 1) return 1;
    const int64_t kb = padded(c.H[0]) / 256;
    return kb < 2 ? 1 : (kb > MAX_KBLOCKS ? MAX_KBLOCKS : (int)kb);
}

// Offsets (in elements) of the MLP's parameters in the arena, in the order C, W1, b1, W2, b2, ...
//   C        (V, E)                    as the user's
//   W[0]     (T*E, padded(H0))         W1, rows padded
//   W[l]     (H[l-1], padded(H[l]))    hidden layer l+1, 0 < l < nh
//   W[nh]    (V, padded(H[nh-1]))      the output layer stored transposed (nn.Linear's layout)
//   b[l]     padded(width)             b[nh] has padded(V) entries
struct Layout {
    int64_t C;
    int64_t W[MAX_HIDDEN + 1], b[MAX_HIDDEN + 1];
    int64_t rows[MAX_HIDDEN + 1], ld[MAX_HIDDEN + 1];  // rows and padded row length of each W
    int64_t nb[MAX_HIDDEN + 1];                        // padded length of each b
    int64_t total;                                     // arena length in elements
};

// ---------------------------------------------------------------------------------------------
// The layer plan: the model's layers as ops over (rows, channels) buffers. A batch of B examples
// makes B * t rows, t the positions per example of the lecture's 3-D tensors (1 for 2-D ones).
// FlattenConsecutive(n) and Flatten are views: n consecutive rows become one, their padded
// channels side by side in segments (a Linear's weight has zero rows where its input has padding).

enum OpKind : int {
    OP_EMBED_LINEAR =
        0,         // Embedding, then (Flatten | FlattenConsecutive(n))?, then Linear: per-position tables
    OP_EMBED = 1,  // Embedding alone: rows of C
    OP_LINEAR = 2,
    OP_BATCHNORM = 3,
    OP_TANH = 4,
    OP_PACK = 5,  // segments of padded channels made one padded row (before a BatchNorm1d that needs them so)
};
static constexpr int MAX_OPS = 64;
struct Op {
    int kind;
    int layer;       // the model's layer this op computes (the Linear of an OP_EMBED_LINEAR)
    int t;           // positions per example of its output (its rows: B * t)
    int cin, cout;   // channels of one input row and one output row
    int64_t ldin;    // input rows' stride (segments of padded channels side by side)
    int64_t ldout;   // output rows' stride: padded(cout)
    int seg, segld;  // the input's channels come in segments of seg, segld apart (one segment: cin, ldin)
    int npos;        // OP_EMBED_LINEAR: positions per output row (the n of FlattenConsecutive; 1, or T)
    int64_t C;       // OP_EMBED*: arena offset of the embedding table (V, E)
    int64_t W, b;    // arena offsets of a Linear's weight (K rows, ldout apart) and bias (-1: none)
    int64_t K;       // its weight rows: ldin (zero rows at the input's padding), or npos * E
    int64_t gamma, beta, mean, var;  // OP_BATCHNORM
    double eps, momentum;
    int tanh_index;  // OP_TANH: its number among the model's Tanh layers (dropout's counter)
};
struct Net {
    int V, T, E;  // vocabulary, block_size, n_embd of the Embedding
    int nops;
    Op ops[MAX_OPS];
    int ntanh;        // Tanh layers
    int64_t trained;  // arena elements [0, trained) are trained; [trained, total) running statistics
    int64_t total;
};

// ---------------------------------------------------------------------------------------------
// Optimizers, with torch.optim's semantics.
enum OptKind : int { OPT_SGD = 0, OPT_ADAMW = 1 };
struct OptConfig {
    int kind;         // OptKind
    double momentum;  // SGD: heavy-ball momentum (0 = plain SGD)
    int nesterov;     // SGD with momentum: Nesterov's variant
    double beta1, beta2, eps;
    double weight_decay;  // SGD: added to the gradient (L2); AdamW: decoupled
    double dropout;       // probability of zeroing a hidden unit during training (0 = off)
};

// A minibatch's rows, contexts and ids (embed.h: embed_index).
struct Batch {
    int32_t* xb;    // (B, T) the minibatch's contexts
    int32_t* yb;    // (B,)   its targets
    int64_t* rows;  // (B,)   the training rows of a minibatch (train.h: draw_rows)
    int32_t* slot;  // (R, npos) row of the position's table that serves each group of npos ids
    int32_t* ids;   // (npos, nP) distinct ids per position (and one element of slack)
    int32_t* nids;  // (npos,)    how many
    int32_t* seen;  // (V,)       scratch: -1 or slot
};

// The per-position tables of an Embedding followed by a Linear over npos positions (embed.h), for
// R rows of npos ids each: the batch, its distinct contexts, and the tables and their gradients.
struct EmbedScratch {
    int R;            // rows the buffers hold
    int npos;         // positions per row
    int nP;           // rows per position in the compact tables: min(R, V)
    Batch cur;        // the minibatch a step works on
    Batch next;       // the next one, prepared during a step (train.h)
    int nu;           // distinct contexts among the rows (R when not grouped)
    int32_t* uslot;   // (nu, npos) slot rows of the distinct contexts, in order of first row
    int32_t* ustart;  // (nu + 1) their rows are ulist[ustart[u] .. ustart[u + 1]),
    int32_t* ulist;   // (R,)     in increasing order
    int32_t* urow;    // (R,)     each row's context
    int32_t* pstart;  // (npos, nP + 1) the contexts with id i at position t are
    int32_t* plist;   // (npos, R)      plist[t, pstart[t, i] .. pstart[t, i + 1]), increasing
    int32_t* htab;    // (hsize,) scratch: hash table of contexts, -1 = empty
    int64_t hsize;    // a power of two >= 2R
    uint64_t* ckey;   // (R,) scratch: the contexts' slots packed into one number
    void* Csub;       // (npos, nP, E) the embedding rows of the distinct ids
    void* P;          // (npos, nP, Np) per-position tables Csub_t @ W_t
    void* G;          // (npos, nP, Np) per-position gradient sums
    void* dCsub;      // (npos, nP, E)
    void* pdCsub;     // (KB, npos, nP, E) each column block's part of dCsub (KB > 1)
};

// Scratch of the MLP plan for one batch size, carved from one allocation (core.cpp).
struct Workspace {
    int B;                   // rows the buffers hold
    EmbedScratch emb;        // the minibatch and the first layer's tables
    void* plogits;           // (KB, B, Vp) each column block's part of the logits (KB > 1)
    void* h[MAX_HIDDEN];     // (B, Hp) tanh outputs (before dropout)
    void* hd[MAX_HIDDEN];    // (B, Hp) after dropout (== h when there is none)
    void* mask[MAX_HIDDEN];  // (B, Hp) 0 or 1/(1-p); null without dropout
    void* dh[MAX_HIDDEN];    // (B, Hp) gradient with respect to the pre-activation
    void* logits;            // (B, Vp)
    void* dlogits;           // (B, Vp)
    double* row_loss;        // (B,)
    void* grad;              // arena-shaped gradient
    void* snap;              // arena-shaped snapshot of the parameters (divergence rollback)
    void* snap_m;            // and of the optimizer's moments
    void* snap_v;
    void* mem;  // the allocation
};

// Scratch of the layer plan for one batch size (core.cpp).
struct NetWorkspace {
    int B;
    EmbedScratch emb;      // the tables of an OP_EMBED_LINEAR (R = B * its t), and the minibatch
    void* act[MAX_OPS];    // (B * t, ldout) each op's output
    void* dact[MAX_OPS];   // the gradient with respect to it (after dropout)
    void* mask[MAX_OPS];   // OP_TANH with dropout: (B * t, ldout) 0 or 1/(1-p); else null
    void* hd[MAX_OPS];     //                       its output after dropout
    void* bmean[MAX_OPS];  // OP_BATCHNORM: (ldout) the batch's mean
    void* bvar[MAX_OPS];   //               its variance (unbiased, as torch.var)
    void* bistd[MAX_OPS];  //               1 / sqrt(var + eps)
    void* dlogits;         // (B, Vp)
    double* row_loss;      // (B,)
    int32_t* iota;         // (B + 1) 0, 1, ..., B: each row a context of its own (crossentropy_grouped)
    void* grad;            // the gradient of the trained parameters
    void* snap;            // snapshot of the whole arena (divergence rollback)
    void* snap_m;
    void* snap_v;
    void* mem;
};

// A view of one model's parameters.
template <class T>
struct ParamView {
    const Config* cfg;
    const Layout* lay;
    T* p;
};
template <class T>
struct NetView {
    const Net* net;
    T* p;
};

// Optimizer state: arena-shaped moment buffers (null when the optimizer needs none) and the
// number of updates taken so far (AdamW's bias correction).
template <class T>
struct OptState {
    T* m;
    T* v;
    int64_t t;
};

// A trained parameter's region of the arena: span elements from off (padding included), count of
// them real.
struct ParamSpan {
    int64_t off, span, count;
};

// One call of the training loop.
struct TrainArgs {
    const int32_t* X;   // (N, T)
    const int32_t* Y;   // (N,)
    const uint8_t* X8;  // or, when the vocabulary fits a byte, these (X and Y null)
    const uint8_t* Y8;
    int64_t N;
    const int64_t* batch_idx;  // (steps, B) rows to use, or null to draw them
    const double* lr;          // (steps,)
    int64_t steps;
    int64_t step0;  // global index of the first step (keys the random draws)
    uint64_t seed;
    double seconds;  // return after this much time (checked between steps); <= 0: no limit
    double* losses;  // (steps,) out: minibatch losses
    // With ustats: every step, for each of the nspans trained parameters, the standard deviation
    // (unbiased) of its update and of its value after the update: ustats (steps, nspans, 2).
    const ParamSpan* spans;
    int nspans;
    double* ustats;
    // Part 3's records: at each step whose global index is a multiple of record_every, before its
    // forward pass, record(record_ctx, the step's contexts (B, T), its targets (B,), global step).
    void (*record)(void* ctx, const int32_t* X, const int32_t* Y, int64_t step);
    void* record_ctx;
    int64_t record_every;
};

enum RunStatus : int { RUN_OK = 0, RUN_NONFINITE_LOSS = 1, RUN_NONFINITE_PARAMS = 2 };
struct RunResult {
    int64_t done;  // steps completed (parameters are those after step done-1)
    int status;    // RunStatus
};

// The contexts sample() has reached and their distributions, kept between its calls so that each
// is computed once: P the first layer's per-position tables (eval.h: tables), part[p] the contexts
// part p of a call has reached (sample.h: Reached), each one allocation, null until a call makes it.
// Valid only for the parameters, instruction set, temperature and top_k it was made with: the
// binding checks those before each call and empties a table that does not match.
struct SampleTable {
    void* P = nullptr;
    void* part[MAX_PARTS] = {};
};

struct SampleArgs {
    uint64_t seed;
    int64_t first;          // index of the first name (keys the random draws)
    int64_t n;              // names to draw
    double temperature;     // > 0, or 0 for the most likely character every time
    int top_k;              // 0: no cut
    const int32_t* prefix;  // every name starts with these ids
    int plen;
    int max_len;   // characters per name at most, prefix included
    int32_t* out;  // room for (n, max_len + 1) ids: each row a name ended by 0 (the rest of the row
                   // untouched), or, when compact, the names one after another, each ended by 0
    int compact;
    SampleTable* table;  // null: a table of this call's own; else the one the calls of one draw share
};

// The kernels of one instruction set, for one element type: the MLP plan's and the layer plan's.
template <class T>
struct Kernels {
    double (*loss_and_grad)(ParamView<T>, Workspace*, const int32_t* X, const int32_t* Y, int B, T* grad);
    RunResult (*train)(ParamView<T>, OptState<T>*, const OptConfig*, Workspace*, const TrainArgs*);
    // Row losses summed over blocks of SUM_ROWS rows into block_loss[ceil(N/SUM_ROWS)] (if Y), logits
    // into out (if out). With dedup, each distinct context is computed once when that is possible
    // (same results). False if an id of X or Y is not below V (checked before it is used).
    bool (*evaluate)(ParamView<T>, const int32_t* X, const int32_t* Y, int64_t N, double* block_loss, T* out,
                     bool dedup);
    int64_t (*sample)(ParamView<T>, const SampleArgs*);  // ids written when compact, else 0
    void (*dropout_mask)(uint64_t seed, int64_t step, int layer, int L, int B, int H, double p, T* out);

    // Training mode, dropout with the masks of (seed, step) when dropout > 0; the workspace keeps
    // every op's output and its gradient.
    double (*net_loss_and_grad)(NetView<T>, NetWorkspace*, const int32_t* X, const int32_t* Y, int B, T* grad,
                                double dropout, uint64_t seed, int64_t step);
    RunResult (*net_train)(NetView<T>, OptState<T>*, const OptConfig*, NetWorkspace*, const TrainArgs*);
    bool (*net_evaluate)(NetView<T>, const int32_t* X, const int32_t* Y, int64_t N, double* block_loss,
                         T* out, bool dedup);
    int64_t (*net_sample)(NetView<T>, const SampleArgs*);
};

struct Isa {
    const char* name;
    Kernels<float> f32;
    Kernels<double> f64;
};

// Per-ISA tables (isa_*.cpp) and the one in use (core.cpp). On x86-64 every table is built unless
// CMake's MAKEMORE_KERNELS leaves one out (MM_WITHOUT_AVX2, MM_WITHOUT_AVX512).
extern const Isa isa_generic;
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(MM_WITHOUT_AVX2)
#define MM_HAVE_AVX2 1
extern const Isa isa_avx2;
#endif
#if (defined(__x86_64__) || defined(_M_X64)) && !defined(MM_WITHOUT_AVX512)
#define MM_HAVE_AVX512 1
extern const Isa isa_avx512;
#endif
const Isa* isa_current();
const Isa* isa_by_name(const char* name);  // null if unknown or unsupported by this CPU
void isa_set(const Isa* isa);
bool isa_supported(const char* name);

// Aligned memory (64 bytes) for kernels that need scratch of their own.
void* aligned_malloc(size_t bytes);
void aligned_free(void* p);

}  // namespace mm
