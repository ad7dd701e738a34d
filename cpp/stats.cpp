// stats.cpp - part 3's statistics of one array (makemore_cpp.diagnose), as NumPy computes them on the
// array converted to float64:
//   mean       the sum over n;
//   std        unbiased, two passes (the mean, then the squared deviations), as a.std(ddof=1);
//   beyond     the count of |a| > threshold;
//   counts     np.histogram(a, bins, range=(lo, hi)): edges np.linspace(lo, hi, bins + 1), a value's
//              bin from its offset, then moved across an edge it was rounded past; values outside
//              [lo, hi] (and NaN) left out; lo == hi widened by 0.5 each way; range fitted to the
//              data's min and max when asked.
// Compiled without floating-point contraction (CMakeLists.txt): the edges are np.linspace's bits, so
// the counts are np.histogram's.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core.h"

namespace mm {

template <class T>
Summary summarize(const T* a, int64_t n, bool fit, double lo, double hi, double threshold, int bins,
                  int64_t* counts, double* edges, int64_t* tally) {
    // Sums, minima and maxima in K vectors of two lanes side by side (SSE2 or NEON, GCC's vector
    // extensions): the additions' latency, not their count, would bound one running sum.
    typedef double v2 __attribute__((vector_size(16)));
    typedef int64_t i2 __attribute__((vector_size(16)));
    constexpr int K = 2, STEP = 2 * K;
    const double inf = std::numeric_limits<double>::infinity();
    Summary s{};
    v2 sum[K], mn[K], mx[K], ss[K], beyond[K];
    i2 nan[K];
    for (int k = 0; k < K; ++k)
        sum[k] = ss[k] = beyond[k] = v2{0, 0}, mn[k] = v2{inf, inf}, mx[k] = -mn[k], nan[k] = i2{0, 0};
    const v2 th{threshold, threshold}, one{1, 1};
    const i2 magnitude{INT64_MAX, INT64_MAX};
    const int64_t whole = n / STEP * STEP;
    auto pair = [a](int64_t i) { return v2{(double)a[i], (double)a[i + 1]}; };
    for (int64_t i = 0; i < whole; i += STEP)
        for (int k = 0; k < K; ++k) {
            const v2 x = pair(i + 2 * k);
            sum[k] += x;
            nan[k] |= x != x;
            mn[k] = x < mn[k] ? x : mn[k];
            mx[k] = x > mx[k] ? x : mx[k];
            beyond[k] += (v2)(((v2)((i2)x & magnitude) > th) & (i2)one);  // 1 where |x| > threshold
        }
    double total = 0, lowest = inf, highest = -inf;
    bool any_nan = false;
    for (int k = 0; k < K; ++k)
        for (int j = 0; j < 2; ++j) {
            total += sum[k][j];
            s.beyond += (int64_t)beyond[k][j];
            any_nan |= nan[k][j] != 0;
            lowest = mn[k][j] < lowest ? mn[k][j] : lowest;
            highest = mx[k][j] > highest ? mx[k][j] : highest;
        }
    for (int64_t i = whole; i < n; ++i) {
        const double x = (double)a[i];
        total += x;
        any_nan |= x != x;
        lowest = x < lowest ? x : lowest;
        highest = x > highest ? x : highest;
        s.beyond += std::fabs(x) > threshold;
    }
    s.mean = n > 0 ? total / (double)n : std::numeric_limits<double>::quiet_NaN();
    const v2 mean{s.mean, s.mean};
    for (int64_t i = 0; i < whole; i += STEP)
        for (int k = 0; k < K; ++k) {
            const v2 d = pair(i + 2 * k) - mean;
            ss[k] += d * d;
        }
    double sq = 0;
    for (int k = 0; k < K; ++k) sq += ss[k][0] + ss[k][1];
    for (int64_t i = whole; i < n; ++i) {
        const double d = (double)a[i] - s.mean;
        sq += d * d;
    }
    s.std = n > 1 ? std::sqrt(sq / (double)(n - 1)) : std::numeric_limits<double>::quiet_NaN();
    if (bins <= 0) return s;

    if (fit) {
        lo = any_nan || n == 0 ? std::numeric_limits<double>::quiet_NaN() : lowest;
        hi = any_nan || n == 0 ? std::numeric_limits<double>::quiet_NaN() : highest;
    }
    if (lo == hi) lo -= 0.5, hi += 0.5;
    // np.linspace(lo, hi, bins + 1)
    const double delta = hi - lo, step = delta / bins;
    for (int i = 0; i < bins; ++i)
        edges[i] = step == 0 ? (double)i / bins * delta + lo : (double)i * step + lo;
    edges[bins] = hi;
    for (int i = 0; i < bins; ++i) counts[i] = 0;
    if (!(std::isfinite(lo) && std::isfinite(hi))) return s;
    // Each value's bin counted in one of SUMMARY_TABLES tables in turn: a run of values in one bin
    // would otherwise wait on its own last increment.
    constexpr int TABLES = SUMMARY_TABLES;
    std::vector<int64_t> own;
    if (!tally) {
        own.resize((size_t)TABLES * bins);
        tally = own.data();
    }
    for (int64_t i = 0; i < (int64_t)TABLES * bins; ++i) tally[i] = 0;
    const double scale = bins / delta;  // NumPy divides; the estimate is corrected to the edges below
    // Value i's bin in table i % TABLES, without branches: a value outside [lo, hi] (or NaN) counts
    // 0 in bin 0.
    auto count = [&](int64_t* table, double x) {
        const bool in = x >= lo && x <= hi;
        x = in ? x : lo;
        int64_t k = (int64_t)((x - lo) * scale);
        k = k > bins - 1 ? bins - 1 : k;
        k -= x < edges[k];
        k += (x >= edges[k + 1]) & (k != bins - 1);
        table[k] += in;
    };
    static_assert(TABLES == 4, "the loop below takes a value for each table in turn");
    int64_t *t0 = tally, *t1 = tally + bins, *t2 = tally + 2 * bins, *t3 = tally + 3 * bins;
    const int64_t four = n / 4 * 4;
    for (int64_t i = 0; i < four; i += 4) {
        count(t0, (double)a[i]);
        count(t1, (double)a[i + 1]);
        count(t2, (double)a[i + 2]);
        count(t3, (double)a[i + 3]);
    }
    for (int64_t i = four; i < n; ++i) count(tally + (i % TABLES) * bins, (double)a[i]);
    for (int t = 0; t < TABLES; ++t)
        for (int k = 0; k < bins; ++k) counts[k] += tally[(size_t)t * bins + k];
    return s;
}

template Summary summarize<float>(const float*, int64_t, bool, double, double, double, int, int64_t*, double*,
                                  int64_t*);
template Summary summarize<double>(const double*, int64_t, bool, double, double, double, int, int64_t*,
                                   double*, int64_t*);

}  // namespace mm
