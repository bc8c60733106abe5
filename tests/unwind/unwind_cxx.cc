/*
 * tests/unwind/unwind_cxx.cc - C++ stacks for the CFI unwinder tests:
 * std::sort with a comparator (template code compiled here, -O2
 * -fomit-frame-pointer), std::call_once (through libstdc++.so and
 * libc's pthread_once) and a std::thread (libstdc++'s thread entry, then
 * libc's start_thread and clone3: the outermost frames of a thread).
 * Each runs probe() once from the innermost frame.  Test-only code.
 */
#include <algorithm>
#include <mutex>
#include <thread>
#include <vector>

extern "C" void cpt_cxx_sort(void (*probe)(void))
{
    std::vector<int> v;
    for (int i = 0; i < 64; i++)
        v.push_back((i * 37) % 64);
    bool done = false;
    std::sort(v.begin(), v.end(), [&](int a, int b) {
        if (!done) {
            done = true;
            probe();
        }
        return a < b;
    });
}

extern "C" void cpt_cxx_call_once(void (*probe)(void))
{
    static std::once_flag flag;
    std::call_once(flag, [probe] { probe(); });
}

extern "C" void cpt_cxx_thread(void (*probe)(void))
{
    std::thread t([probe] { probe(); });
    t.join();
}
