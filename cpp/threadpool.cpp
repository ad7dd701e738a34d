// threadpool.cpp - see threadpool.h.
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

// tests/native/pool_stress.cpp builds this file with MM_POOL_TEST_DELAY defined, to widen the
// windows between the steps of the claim protocol below with random pauses; empty otherwise.
#ifdef MM_POOL_TEST_DELAY
void mm_pool_test_delay();
#define POOL_DELAY() mm_pool_test_delay()
#else
#define POOL_DELAY() ((void)0)
#endif

namespace mm {
namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

struct Pool {
    std::vector<std::thread> workers;
    std::mutex job_mu;  // one job at a time
    std::mutex mu;      // guards sleeping workers' wake-up
    std::condition_variable cv;
    std::atomic<uint64_t> generation{0};  // bumped by each job, to wake workers
    // The current job's claim word: its number in the upper 32 bits; below, one bit for each part
    // that has an owner (bits 24..31: part i belongs to thread i, the caller being thread 0) and a
    // count of the other parts handed out (bits 0..23). A thread takes its own part first, then
    // the others in order, and last any part whose owner has not come for it. Parts are claimed by
    // compare-and-swap on this word, so a thread that comes late (a worker that was asleep, or
    // whose CPU was taken by something else) cannot take a part of a job that has moved on, and the
    // job ends when its parts are done: it never waits for a worker that took none.
    // Owned parts keep each thread on the same share of the data from one job to the next (part k
    // of a phase reads what part k of the phase before wrote): moving a cache line between
    // cores can cost far more than using it (benchmarks/NOTES.md).
    std::atomic<uint64_t> claim{0};
    static constexpr uint32_t CLOSED = 0xffffffu;  // a claim word's count while its job is set up
    static constexpr int OWNED = 8;                // threads that own a part, at most
    std::atomic<int> done{0};                      // parts of the current job finished
    std::atomic<TaskFn> fn{nullptr};               // written before the job's first claim word is published
    std::atomic<void*> ctx{nullptr};
    std::atomic<int> nparts{0};
    std::atomic<bool> stop{false};
    uint32_t job = 0;  // the last job's number (the calling thread's); it wraps
                       // after 2^32 jobs, far longer than any claim takes
    int nthreads = 1;
    int nowners = 1;  // min(nthreads, OWNED)
    pid_t pid = 0;

    explicit Pool(int n) : nthreads(n), nowners(n < OWNED ? n : OWNED), pid(getpid()) {
        for (int i = 1; i < n; ++i) workers.emplace_back([this, i] { work(i); });
    }
    ~Pool() {
        {
            std::lock_guard<std::mutex> g(mu);
            stop.store(true);
            generation.fetch_add(1);
        }
        cv.notify_all();
        for (auto& t : workers) t.join();
    }

    void work(int self) {
        uint64_t seen = 0;
        for (;;) {
            // Spin for a short while: the next job of a training step is usually microseconds away,
            // and the next call from a Python loop (loss() on each split, say) a fraction of a
            // millisecond. Waking a sleeping worker costs the caller about 50 us here, and the
            // worker about 70 us more before it starts (benchmarks/NOTES.md).
            auto t0 = std::chrono::steady_clock::now();
            int spins = 0;
            while (generation.load(std::memory_order_acquire) == seen) {
                cpu_relax();
                if (++spins % 256 == 0 &&
                    std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(1000)) {
                    std::unique_lock<std::mutex> lk(mu);
                    cv.wait(lk, [&] { return generation.load(std::memory_order_acquire) != seen; });
                    break;
                }
            }
            seen = generation.load(std::memory_order_acquire);
            if (stop.load()) return;
            POOL_DELAY();
            drain((uint32_t)(claim.load(std::memory_order_acquire) >> 32), self);
        }
    }

    // Take parts of job j until none is left, as thread `self`: its own part first, then the
    // unowned ones in order, then any owned part still unclaimed. Parts go to whichever thread asks
    // next, so a thread slowed down by something else on its core does fewer of them.
    void drain(uint32_t j, int self) {
        for (;;) {
            uint64_t w = claim.load(std::memory_order_acquire);
            if ((uint32_t)(w >> 32) != j) return;
            TaskFn f = fn.load(std::memory_order_relaxed);
            void* c = ctx.load(std::memory_order_relaxed);
            const int n = nparts.load(std::memory_order_relaxed);
            POOL_DELAY();
            // If any of these was written for a later job, run() closed this word before writing
            // it (a release fence between): the claim below then fails. If the claim succeeds, a
            // part of job j was still to do, so job j had not ended and they are job j's.
            std::atomic_thread_fence(std::memory_order_acquire);
            const uint32_t count = (uint32_t)w & CLOSED;
            if (count == CLOSED) return;
            const int owned = n < nowners ? n : nowners;
            const uint32_t taken = (uint32_t)(w >> 24) & 0xffu;
            int part;
            uint64_t next;
            if (self < owned && !(taken >> self & 1)) {
                part = self;
                next = w | (uint64_t)1 << (24 + self);
            } else if ((int)count < n - owned) {
                part = owned + (int)count;
                next = w + 1;
            } else {
                const uint32_t left = ~taken & ((1u << owned) - 1);
                if (!left) return;
                part = __builtin_ctz(left);
                next = w | (uint64_t)1 << (24 + part);
            }
            if (!claim.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_relaxed))
                continue;
            f(c, part, n);
            done.fetch_add(1, std::memory_order_release);
        }
    }

    void run(int n, TaskFn f, void* c) {
        std::unique_lock<std::mutex> lock(job_mu, std::try_to_lock);
        if (!lock.owns_lock() || workers.empty()) {  // busy with another caller's job: do it here
            for (int i = 0; i < n; ++i) f(c, i, n);
            return;
        }
        // Close the last job's word (no part left to claim) before its fields change: a thread that
        // read that word and then one of these new fields fails its claim (see drain).
        const uint64_t next_job = (uint64_t)++job << 32;
        claim.store(next_job | CLOSED, std::memory_order_relaxed);
        POOL_DELAY();
        std::atomic_thread_fence(std::memory_order_release);
        fn.store(f, std::memory_order_relaxed);
        ctx.store(c, std::memory_order_relaxed);
        nparts.store(n, std::memory_order_relaxed);
        done.store(0, std::memory_order_relaxed);
        POOL_DELAY();
        claim.store(next_job, std::memory_order_release);
        {
            std::lock_guard<std::mutex> g(mu);
            generation.fetch_add(1, std::memory_order_release);
        }
        cv.notify_all();
        drain(job, 0);
        while (done.load(std::memory_order_acquire) != n) cpu_relax();
    }
};

std::mutex g_mu;
std::shared_ptr<Pool> g_pool;  // a job in flight holds its own reference, so a resize never pulls it away
int g_threads = 0;

std::shared_ptr<Pool> get_pool() {
    std::lock_guard<std::mutex> g(g_mu);
    if (g_threads == 0) g_threads = default_threads();
    if (g_pool && g_pool->pid != getpid()) {
        // After fork() the workers are gone and joining them would hang: leak the husk.
        new std::shared_ptr<Pool>(std::move(g_pool));
        g_pool.reset();
    }
    if (!g_pool || g_pool->nthreads != g_threads) g_pool = std::make_shared<Pool>(g_threads);
    return g_pool;
}

}  // namespace

int default_threads() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    unsigned n = std::thread::hardware_concurrency();
    return n ? (int)n : 1;
}

int pool_threads() {
    std::lock_guard<std::mutex> g(g_mu);
    if (g_threads == 0) g_threads = default_threads();
    return g_threads;
}

void pool_set_threads(int n) {
    std::lock_guard<std::mutex> g(g_mu);
    g_threads = n < 1 ? 1 : n;
}

void pool_run(int nparts, TaskFn fn, void* ctx) {
    if (nparts <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    get_pool()->run(nparts, fn, ctx);
}

double core_round_trip_ns(int rounds) {
    // Two CPUs of this thread's set: the caller runs on the first, a helper thread on the second.
    cpu_set_t old, one;
    if (rounds < 1 || pthread_getaffinity_np(pthread_self(), sizeof old, &old) != 0 || CPU_COUNT(&old) < 2)
        return -1;
    int cpu[2] = {-1, -1};
    for (int i = 0, k = 0; i < CPU_SETSIZE && k < 2; ++i)
        if (CPU_ISSET(i, &old)) cpu[k++] = i;
    alignas(64) std::atomic<int64_t> flag{0};
    alignas(64) std::atomic<bool> quit{false};
    std::thread helper([&] {
        cpu_set_t s;
        CPU_ZERO(&s);
        CPU_SET(cpu[1], &s);
        pthread_setaffinity_np(pthread_self(), sizeof s, &s);
        for (int64_t i = 0; !quit.load(std::memory_order_relaxed);) {
            if (flag.load(std::memory_order_acquire) == 2 * i + 1)
                flag.store(2 * (i++) + 2, std::memory_order_release);
            else
                cpu_relax();
        }
    });
    CPU_ZERO(&one);
    CPU_SET(cpu[0], &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    // A round the helper does not answer within a second (its CPU taken away) ends the probe.
    const auto t0 = std::chrono::steady_clock::now(), limit = t0 + std::chrono::seconds(1);
    bool ok = true;
    for (int64_t i = 0; i < rounds && ok; ++i) {
        flag.store(2 * i + 1, std::memory_order_release);
        for (int spin = 0; flag.load(std::memory_order_acquire) != 2 * i + 2;)
            if (++spin % 4096 == 0 && std::chrono::steady_clock::now() > limit) {
                ok = false;
                break;
            }
    }
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    quit.store(true);
    helper.join();
    pthread_setaffinity_np(pthread_self(), sizeof old, &old);
    return ok ? ns / rounds : -1;
}

}  // namespace mm
