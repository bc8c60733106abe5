// tests/preload/cxx_app.cpp - a small C++ program with threads and
// exceptions, run unchanged under `cpprof run` by test_preload.c.  Prints
// a checksum and exits 0, so the test can compare output and status with
// a run without cpprof.  Test-only code.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace shapes {

struct TooSmall : std::runtime_error {
    explicit TooSmall(int v) : std::runtime_error("too small: " + std::to_string(v)) {}
};

__attribute__((noinline)) long checked_work(int v)
{
    if (v % 7 == 0)
        throw TooSmall(v);
    long acc = 0;
    for (int i = 0; i < 20000; i++)
        acc += (v * 31L + i) % 1009;
    return acc;
}

__attribute__((noinline)) long worker(int id, int rounds)
{
    long sum = 0;
    std::vector<std::string> notes;
    for (int r = 0; r < rounds; r++) {
        try {
            sum += checked_work(id * rounds + r);
        } catch (const TooSmall &e) {
            notes.emplace_back(e.what());
        }
    }
    return sum + (long)notes.size();
}

} // namespace shapes

int main()
{
    const int nthreads = 4, rounds = 3000;
    std::vector<long> results(nthreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < nthreads; t++)
        threads.emplace_back([&results, t] { results[t] = shapes::worker(t, rounds); });
    for (auto &t : threads)
        t.join();
    long total = 0;
    for (long r : results)
        total += r;
    std::printf("checksum %ld\n", total);
    return 0;
}
