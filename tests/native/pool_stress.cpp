// A stress test of the thread pool (cpp/threadpool.cpp), run by tests/test_threadpool.py, also
// under ThreadSanitizer. Two callers issue jobs of random part counts, some after a pause long
// enough for the workers to fall asleep, and the pool is resized in between: every part of every
// job must run exactly once, with its own job's arguments, before pool_run returns.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "threadpool.h"

struct Job {
    std::atomic<int>* hits;
    int n;
};

static void task(void* ctx, int part, int n) {
    Job* job = (Job*)ctx;
    if (n != job->n || part < 0 || part >= n) {
        std::fprintf(stderr, "part %d of %d called with another job's arguments (%d parts)\n", part, job->n, n);
        std::abort();
    }
    job->hits[part].fetch_add(1, std::memory_order_relaxed);
    if (part % 7 == 0)
        for (volatile int i = 0; i < 2000; ++i) {
        }
}

static void caller(unsigned seed, int jobs) {
    for (int j = 0; j < jobs; ++j) {
        seed = seed * 1103515245u + 12345u;
        const int n = 2 + (int)((seed >> 16) % 40);
        std::vector<std::atomic<int>> hits(n);
        for (auto& h : hits) h.store(0);
        Job job{hits.data(), n};  // at the same stack address job after job
        mm::pool_run(n, task, &job);
        for (int i = 0; i < n; ++i)
            if (hits[i].load() != 1) {
                std::fprintf(stderr, "part %d of %d ran %d times\n", i, n, hits[i].load());
                std::abort();
            }
        if (j % 1000 == 999) std::this_thread::sleep_for(std::chrono::microseconds(400));
    }
}

int main(int argc, char** argv) {
    const int jobs = argc > 1 ? std::atoi(argv[1]) : 20000;
    mm::pool_set_threads(3);
    std::thread other([&] { caller(7, jobs); });
    caller(1, 2 * jobs);
    mm::pool_set_threads(2);
    caller(3, jobs);
    other.join();
    std::printf("ok\n");
    return 0;
}
