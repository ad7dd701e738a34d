// A stress test of the thread pool (cpp/threadpool.cpp), run by tests/test_threadpool.py: plain
// with random pauses between the steps of the pool's claim protocol (MM_POOL_TEST_DELAY), and under
// ThreadSanitizer. Two callers issue jobs of random part counts, some after a pause long enough
// for the workers to fall asleep, and the pool is resized in between. Every part of every job must
// run exactly once, with its own job's function and arguments, and before pool_run returns; and
// jobs must keep returning (on a loaded machine the whole run may take minutes).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "threadpool.h"

#ifdef MM_POOL_TEST_DELAY
// A pause of 0 to a few microseconds at random, sometimes a yield of the CPU.
void mm_pool_test_delay() {
    thread_local unsigned r = 12345u + (unsigned)(size_t)&r;
    r = r * 1103515245u + 12345u;
    const unsigned k = (r >> 16) % 64;
    if (k == 0)
        std::this_thread::yield();
    else
        for (volatile unsigned i = 0; i < k * 8; ++i) {
        }
}
#endif

struct Job {
    int kind;  // which task function the job was given
    int n;
    std::atomic<bool> returned{false};  // pool_run has returned: no part may run any more
    std::vector<std::atomic<int>> hits;
    explicit Job(int kind_, int n_) : kind(kind_), n(n_), hits(n_) {
        for (auto& h : hits) h.store(0);
    }
};

[[noreturn]] static void fail(const char* what, int part, int n) {
    std::fprintf(stderr, "%s (part %d of %d)\n", what, part, n);
    std::abort();
}

template <int KIND>
static void task(void* ctx, int part, int n) {
    Job* job = (Job*)ctx;
    if (job->kind != KIND) fail("a job's part ran with another job's function", part, n);
    if (n != job->n || part < 0 || part >= n)
        fail("a job's part ran with another job's arguments", part, job->n);
    if (job->returned.load()) fail("a part ran after its job had returned", part, n);
    job->hits[part].fetch_add(1, std::memory_order_relaxed);
    if (part % 7 == 0)
        for (volatile int i = 0; i < 2000; ++i) {
        }
}

static std::atomic<long> finished{0};  // jobs returned, for the watchdog

static void caller(unsigned seed, int jobs) {
    std::vector<std::unique_ptr<Job>> keep;  // every job's context outlives the run, for the checks
    keep.reserve(jobs);
    for (int j = 0; j < jobs; ++j) {
        seed = seed * 1103515245u + 12345u;
        const int n = 2 + (int)((seed >> 16) % 40);
        keep.emplace_back(new Job(j % 2, n));
        Job* job = keep.back().get();
        mm::pool_run(n, j % 2 ? task<1> : task<0>, job);
        job->returned.store(true);
        finished.fetch_add(1, std::memory_order_relaxed);
        for (int i = 0; i < n; ++i)
            if (job->hits[i].load() != 1)
                fail(job->hits[i].load() ? "a part ran twice" : "a part never ran", i, n);
        if (j % 1000 == 999) std::this_thread::sleep_for(std::chrono::microseconds(400));
    }
}

int main(int argc, char** argv) {
    const int jobs = argc > 1 ? std::atoi(argv[1]) : 20000;
    std::thread([] {  // a job that never ends is a failure too: no job returned for 20 s
        for (long seen = -1;;) {
            const long now = finished.load();
            if (now == seen) fail("no job returned for 20 s: a job never ended", -1, -1);
            seen = now;
            std::this_thread::sleep_for(std::chrono::seconds(20));
        }
    })
        .detach();
    mm::pool_set_threads(3);
    std::thread other([&] { caller(7, jobs); });
    caller(1, 2 * jobs);
    mm::pool_set_threads(2);
    caller(3, jobs);
    other.join();
    std::printf("ok\n");
    return 0;
}
