// tests/heap/cxx_sites.cc - a C++ program with known live bytes from
// every form of operator new, run by test_heap_preload under LD_PRELOAD
// with glibc, jemalloc and tcmalloc (the last two define operator new
// themselves).  Test-only code.
#include <cstdio>
#include <new>
#include <string>

struct alignas(64) Wide {
    char bytes[192];
};

static void *volatile kept[3000];

// 1000 x 1000 (new[]) + 1000 x 192 (aligned new) + 1000 x 500 (nothrow
// new[]) = 1,692,000 bytes, live until exit.
__attribute__((noinline)) void cxx_keep_site()
{
    for (int i = 0; i < 1000; i++)
        kept[i] = new char[1000];
    for (int i = 0; i < 1000; i++)
        kept[1000 + i] = new Wide;
    for (int i = 0; i < 1000; i++)
        kept[2000 + i] = new (std::nothrow) char[500];
}

// Allocated and deleted (sized delete): nothing live.
__attribute__((noinline)) void cxx_churn_site()
{
    for (int i = 0; i < 10000; i++) {
        std::string *s = new std::string(100, 'x');
        delete s;
    }
}

int main()
{
    cxx_keep_site();
    cxx_churn_site();
    std::puts("cxx done");
    return 0;
}
