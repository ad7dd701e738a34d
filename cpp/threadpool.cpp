// threadpool.cpp - see threadpool.h.
#include "threadpool.h"

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

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
    std::mutex job_mu;                       // one job at a time
    std::mutex mu;                           // guards sleeping workers' wake-up
    std::condition_variable cv;
    std::atomic<uint64_t> generation{0};
    std::atomic<int> pending{0};
    std::atomic<int> next{0};                // the next part of the current job to hand out
    std::atomic<bool> stop{false};
    TaskFn fn = nullptr;
    void* ctx = nullptr;
    int nparts = 0;
    int nthreads = 1;
    pid_t pid = 0;

    explicit Pool(int n) : nthreads(n), pid(getpid()) {
        for (int i = 1; i < n; ++i) workers.emplace_back([this] { work(); });
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

    void work() {
        uint64_t seen = 0;
        for (;;) {
            // Spin for a short while: the next job of a training step is usually microseconds away.
            auto t0 = std::chrono::steady_clock::now();
            int spins = 0;
            while (generation.load(std::memory_order_acquire) == seen) {
                cpu_relax();
                if (++spins % 256 == 0 &&
                    std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(200)) {
                    std::unique_lock<std::mutex> lk(mu);
                    cv.wait(lk, [&] { return generation.load(std::memory_order_acquire) != seen; });
                    break;
                }
            }
            seen = generation.load(std::memory_order_acquire);
            if (stop.load()) return;
            drain();
            pending.fetch_sub(1, std::memory_order_acq_rel);
        }
    }

    // Parts go to whichever thread asks next, so a thread slowed down by something else on its
    // core does fewer of them.
    void drain() {
        for (int i; (i = next.fetch_add(1, std::memory_order_relaxed)) < nparts;) fn(ctx, i, nparts);
    }

    void run(int n, TaskFn f, void* c) {
        std::unique_lock<std::mutex> job(job_mu, std::try_to_lock);
        if (!job.owns_lock() || workers.empty()) {   // busy with another caller's job: do it here
            for (int i = 0; i < n; ++i) f(c, i, n);
            return;
        }
        fn = f;
        ctx = c;
        nparts = n;
        next.store(0, std::memory_order_relaxed);
        pending.store((int)workers.size(), std::memory_order_relaxed);
        {
            std::lock_guard<std::mutex> g(mu);
            generation.fetch_add(1, std::memory_order_release);
        }
        cv.notify_all();
        drain();
        while (pending.load(std::memory_order_acquire) != 0) cpu_relax();
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

}  // namespace mm
