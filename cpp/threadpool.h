// threadpool.h - a small persistent pool of worker threads.
//
// pool_run(n, fn, ctx) calls fn(ctx, part, n) once for each part = 0..n-1 (n < 2^24) and returns
// when all are done. Part k goes to thread k (the caller is thread 0, the workers 1, 2, ...) when
// that thread comes for it, so that the part k of one job and of the next run on the same core,
// with what the last left in its cache; the other parts, and any part whose thread is late, go to
// whichever thread asks next, so n may exceed the number of threads and no part waits for a
// particular thread. A job does not wait for a worker that took no part of it (one asleep, or whose
// core is busy with something else).
// Workers spin briefly between jobs (a training step issues several jobs in a row) and then sleep.
// One job runs at a time: a second caller (another Python thread training another model) runs its
// parts one after another on its own thread, which gives the same result, since no kernel lets the
// split change any sum.
//
// We keep our own pool rather than OpenMP because PyTorch, often imported in the same process, ships
// its own OpenMP runtime, and two runtimes in one process oversubscribe the cores.
#pragma once

namespace mm {

typedef void (*TaskFn)(void* ctx, int part, int nparts);

void pool_run(int nparts, TaskFn fn, void* ctx);
int pool_threads();            // threads a job may use (the caller included)
void pool_set_threads(int n);  // n >= 1
int default_threads();         // CPUs this process may run on

// For the benchmarks: the mean time, in ns, for a value written on one CPU of the calling thread's
// set to be answered from another, over `rounds` round trips; -1 with fewer than 2 CPUs or if the
// other CPU does not answer within a second. Moving data between cores costs about this much a
// cache line; on a shared host it can change several-fold over minutes (benchmarks/NOTES.md).
double core_round_trip_ns(int rounds);

}  // namespace mm
