/*
 * model/symbolize.c - in-process symbolization (model/symbolize.h) with
 * elfutils libdwfl: function, file, line and the inline chain from DWARF,
 * the ELF symbol table when an object has no DWARF, C++ names demangled
 * through the C++ runtime when the process has one.
 *
 * Callers: the proto and text encoders, tools and tests, in normal thread
 * context only (we allocate, lock and open files).  Never from a signal
 * handler or an interposed call.
 *
 * Design.  A "generation" (struct cp_symbolizer) is one Dwfl session over
 * the objects dl_iterate_phdr listed at one moment, tagged with the
 * loader's adds/subs counters, plus a cache of resolved addresses.  While
 * the counters do not move, every acquire returns the same generation, so
 * the cache lives as long as the set of loaded objects does.  After a
 * dlopen/dlclose the next acquire builds a new generation; the old one is
 * freed when its last holder releases it, so every string handed out
 * (pointers into Dwfl's debug data or demangled copies) stays valid until
 * release.  Dwfl reads the files on disk, never the process's memory
 * (the vDSO, which never goes away, is copied once), so an object
 * unloaded while a generation still uses it cannot fault us.  Objects
 * unloaded before the generation was built (capture/objects.h) are
 * reported too, from their files, where no loaded object now lies: a
 * generation is also tagged with that list's version.
 *
 * Lookup: the CU containing an address (libdwfl's aranges), then that
 * CU's function index (every function's code ranges, built by one DIE
 * walk the first time the CU is touched) for the enclosing function, then
 * down its inlined subroutines and blocks to the innermost one containing
 * the address.  Names, lines and call sites come from the DIEs and the
 * line table; objects without DWARF fall back to the symbol table.
 *
 * Thread-safety: sym_state.lock guards the current generation and all
 * refcounts.  Within a generation, a rwlock: cache hits take it shared;
 * anything that touches Dwfl (which is not thread-safe) or inserts into
 * the cache takes it exclusively.
 *
 * Never the network: Dwfl gets our own find_debuginfo callback, which
 * looks only under /usr/lib/debug and beside the object, so the debuginfod
 * client (reached only through dwfl_standard_find_debuginfo and
 * dwfl_build_id_find_elf, which we never use) cannot be invoked even when
 * DEBUGINFOD_URLS is set.
 */
#include "model/symbolize.h"

#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <link.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "model/hash.h"
#include "capture/loader.h"
#include "capture/objects.h"
#include "model/mappings.h"

#define CP_SYM_MAX_FRAMES 32 /* inline depth kept per address */
#define CP_SYM_MAX_DEPTH 256 /* inline nesting followed per address */
#define CP_DEBUG_DIR "/usr/lib/debug"

typedef char *(*demangle_fn)(const char *mangled, char *buf, size_t *len,
                             int *status);

/* A cached address: its frames are frames[first .. first + n). */
typedef struct addr_entry {
    uintptr_t addr;
    uint32_t first, n;
} addr_entry;

/* A demangled symbol: readable is mangled itself when it would not
 * demangle, else a malloc'd copy owned by the generation. */
typedef struct name_entry {
    const char *mangled;
    char *readable;
} name_entry;

/* A range of code of one function DIE, from a CU's function index. */
typedef struct fn_range {
    Dwarf_Addr low, high; /* CU-relative (unbiased) [low, high) */
    Dwarf_Die die;
} fn_range;

/* A CU whose functions are indexed: fns[first .. first + n), by low. */
typedef struct cu_entry {
    Dwarf_Die *cu;
    uint32_t first, n;
} cu_entry;

/* One loaded object of the generation. */
typedef struct sym_module {
    uintptr_t low, high; /* Dwfl's address range of the module */
    Dwfl_Module *mod;    /* NULL: the file on disk is not what is loaded */
    int flags;           /* CP_SYM_HAS_* bits, -1 until computed */
} sym_module;

struct cp_symbolizer {
    unsigned refs; /* holders, +1 while current; under sym_state.lock */
    unsigned long long adds, subs; /* loader counters this generation saw */
    unsigned long unloaded; /* version of the unloaded objects' list */
    pthread_rwlock_t lock;
    Dwfl *dwfl;
    sym_module *mods; /* sorted by low; fixed once built */
    size_t nmods;
    cp_mappings ranges; /* [low, high) of mods[i] in ranges.v[i], so the
                           one range lookup (cp_mappings_find) serves */
    demangle_fn demangle; /* __cxa_demangle if the process has one */
    cp_hindex addr_index; /* hash(addr) -> index in addrs */
    addr_entry *addrs;
    size_t naddrs, capaddrs;
    cp_frame *frames; /* the runs addrs point into */
    size_t nframes, capframes;
    cp_hindex name_index; /* hash(mangled pointer) -> index in names */
    name_entry *names;
    size_t nnames, capnames;
    cp_hindex cu_index; /* hash(CU DIE pointer) -> index in cus */
    cu_entry *cus;
    size_t ncus, capcus;
    fn_range *fns;
    size_t nfns, capfns;
};

static struct {
    pthread_mutex_t lock;
    cp_symbolizer *current; /* newest generation, or NULL */
} sym_state = {PTHREAD_MUTEX_INITIALIZER, NULL};

/* Grows a generation's array to hold need elements; 0 or -ENOMEM. */
static int grow(void **v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *p = realloc(*v, n * size);
    if (p == NULL)
        return -ENOMEM;
    *v = p;
    *cap = n;
    return 0;
}

/* Equality callbacks for the two indexes (ctx: the probe). */
typedef struct probe {
    const cp_symbolizer *s;
    uintptr_t key;
} probe;

static bool addr_eq(const void *ctx, uint32_t id)
{
    const probe *p = ctx;
    return p->s->addrs[id].addr == p->key;
}

static bool name_eq(const void *ctx, uint32_t id)
{
    const probe *p = ctx;
    return (uintptr_t)p->s->names[id].mangled == p->key;
}

static bool cu_eq(const void *ctx, uint32_t id)
{
    const probe *p = ctx;
    return (uintptr_t)p->s->cus[id].cu == p->key;
}

/* ---- finding separate debug files (never the network) ----------------- */

/* CRC-32 of a whole file, as .gnu_debuglink records it. */
static bool file_crc32(int fd, uint32_t *out)
{
    unsigned char buf[65536];
    uLong crc = crc32(0L, Z_NULL, 0);
    ssize_t n;
    off_t pos = 0;
    while ((n = pread(fd, buf, sizeof buf, pos)) > 0) {
        crc = crc32(crc, buf, (uInt)n);
        pos += n;
    }
    *out = (uint32_t)crc;
    return n == 0;
}

/* True when the ELF file open on fd carries the given build ID. */
static bool file_has_build_id(int fd, const unsigned char *id, int len)
{
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (elf == NULL)
        return false;
    const void *got = NULL;
    ssize_t n = dwelf_elf_gnu_build_id(elf, &got);
    bool same = n == len && memcmp(got, id, (size_t)len) == 0;
    elf_end(elf);
    return same;
}

/* Opens path if it is the debug file we want; returns fd or -1. */
static int try_debug_file(const char *path, const char *self,
                          const unsigned char *id, int idlen, GElf_Word crc,
                          char **name_out)
{
    if (self != NULL && strcmp(path, self) == 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    bool ok;
    uint32_t got;
    if (idlen > 0)
        ok = file_has_build_id(fd, id, idlen);
    else
        ok = crc == 0 || (file_crc32(fd, &got) && got == crc);
    char *name = ok ? strdup(path) : NULL;
    if (name == NULL) {
        close(fd);
        return -1;
    }
    *name_out = name;
    return fd;
}

/*
 * Dwfl's find_debuginfo callback, called when an object's own file has no
 * DWARF (and for a dwz alternate file, with crc 0).  Looks in the order
 * gdb does: /usr/lib/debug/.build-id/xx/rest.debug, then the
 * .gnu_debuglink name beside the object, in its .debug/, and under
 * /usr/lib/debug/<dir>/.  Local files only.
 */
static int find_debuginfo(Dwfl_Module *mod, void **userdata,
                          const char *modname, GElf_Addr base,
                          const char *file_name, const char *debuglink_file,
                          GElf_Word debuglink_crc,
                          char **debuginfo_file_name)
{
    char path[4096];
    const unsigned char *id = NULL;
    GElf_Addr id_vaddr;
    int idlen = dwfl_module_build_id(mod, &id, &id_vaddr);
    bool alt = debuglink_file != NULL && debuglink_crc == 0;
    int fd;

    if (!alt && idlen > 1) {
        int len = snprintf(path, sizeof path, "%s/.build-id/%02x/",
                           CP_DEBUG_DIR, id[0]);
        for (int i = 1; i < idlen && len + 3 < (int)sizeof path; i++)
            len += snprintf(path + len, sizeof path - (size_t)len, "%02x",
                            id[i]);
        if (len + 7 < (int)sizeof path) {
            memcpy(path + len, ".debug", 7);
            fd = try_debug_file(path, file_name, id, idlen, 0,
                                debuginfo_file_name);
            if (fd >= 0)
                return fd;
        }
    }
    if (debuglink_file == NULL || debuglink_file[0] == '\0')
        return -1;
    if (alt) {
        /* A dwz alternate file has its own build ID: trust the path. */
        if (debuglink_file[0] == '/')
            return try_debug_file(debuglink_file, file_name, NULL, 0, 0,
                                  debuginfo_file_name);
        idlen = 0;
    }
    if (file_name == NULL || file_name[0] != '/')
        return -1;
    const char *slash = strrchr(file_name, '/');
    int dirlen = (int)(slash - file_name);
    static const char *const forms[] = {"%.*s/%s", "%.*s/.debug/%s",
                                        CP_DEBUG_DIR "%.*s/%s"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        int n = snprintf(path, sizeof path, forms[i], dirlen, file_name,
                         debuglink_file);
        if (n <= 0 || n >= (int)sizeof path)
            continue;
        fd = try_debug_file(path, file_name, alt ? NULL : id,
                            alt ? 0 : idlen, debuglink_crc,
                            debuginfo_file_name);
        if (fd >= 0)
            return fd;
    }
    return -1;
}

/* Every module is reported with its file already open (dwfl_report_elf),
 * so Dwfl never needs to find one. */
static int find_no_elf(Dwfl_Module *mod, void **userdata, const char *modname,
                       Dwarf_Addr base, char **file_name, Elf **elfp)
{
    *elfp = NULL;
    return -1;
}

static const Dwfl_Callbacks sym_callbacks = {
    .find_elf = find_no_elf,
    .find_debuginfo = find_debuginfo,
    .section_address = dwfl_offline_section_address,
};

/* ---- building a generation -------------------------------------------- */

typedef struct build_ctx {
    cp_symbolizer *s;
    size_t cap;
    int err;
} build_ctx;

/* A file descriptor holding a copy of the vDSO image, or -1.  Dwfl then
 * reads it like any file, and never touches process memory. */
static int vdso_image_fd(const struct dl_phdr_info *info)
{
    const unsigned char *base = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
    size_t size = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && ph->p_offset + ph->p_filesz > size)
            size = ph->p_offset + ph->p_filesz;
    }
    if (size == 0)
        return -1;
    /* The image is mapped in whole pages; keep the section headers (for
     * .dynsym) when they lie inside those pages. */
    long page = sysconf(_SC_PAGESIZE);
    size_t mapped = (size + (size_t)page - 1) & ~((size_t)page - 1);
    size_t shend = eh->e_shoff + (size_t)eh->e_shnum * eh->e_shentsize;
    if (eh->e_shoff != 0 && shend <= mapped && shend > size)
        size = shend;
    int fd = memfd_create("cpprof-vdso", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    if (write(fd, base, size) != (ssize_t)size) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether the module's file carries the build ID hex (hexlen digits). */
static bool module_has_build_id(Dwfl_Module *mod, const char *hex,
                                size_t hexlen)
{
    const unsigned char *id;
    GElf_Addr vaddr;
    int n = dwfl_module_build_id(mod, &id, &vaddr);
    bool same = n > 0 && (size_t)n * 2 == hexlen;
    for (int i = 0; same && i < n; i++) {
        char two[3];
        snprintf(two, sizeof two, "%02x", id[i]);
        same = memcmp(two, hex + 2 * i, 2) == 0;
    }
    return same;
}

/* Reports the object at load bias from path (fd: its image, or -1 to open
 * path) and adds it to the generation's modules; 0, or 1 to stop. */
static int report_module(build_ctx *b, const char *path, int fd,
                         uintptr_t bias, const char *hex)
{
    cp_symbolizer *s = b->s;
    /* base is the load bias: Dwfl adds each segment's p_vaddr. */
    Dwfl_Module *mod = dwfl_report_elf(s->dwfl, path, path, fd, bias, true);
    if (mod == NULL) {
        if (fd >= 0)
            close(fd);
        return 0; /* file gone or unreadable: addresses stay unknown */
    }
    if (grow((void **)&s->mods, &b->cap, s->nmods + 1, sizeof *s->mods) != 0) {
        b->err = -ENOMEM;
        return 1;
    }
    Dwarf_Addr low = 0, high = 0;
    dwfl_module_info(mod, NULL, &low, &high, NULL, NULL, NULL, NULL);
    /* A file replaced on disk since it was loaded would symbolize wrong:
     * when memory had a build ID, the file must carry the same one. */
    size_t hexlen = strlen(hex);
    if (hexlen > 0 && !module_has_build_id(mod, hex, hexlen))
        mod = NULL;
    s->mods[s->nmods++] = (sym_module){low, high, mod, -1};
    return 0;
}

static int add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    build_ctx *b = arg;
    cp_symbolizer *s = b->s;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        s->adds = info->dlpi_adds;
        s->subs = info->dlpi_subs;
    }
    char buf[4096];
    const char *path = cp_object_path(info, buf, sizeof buf);
    if (path[0] == '\0')
        return 0;
    int fd = -1;
    if (cp_object_is_vdso(info) && (fd = vdso_image_fd(info)) < 0)
        return 0;
    char hex[CP_BUILD_ID_HEX_MAX];
    cp_object_build_id(info, hex);
    return report_module(b, path, fd, info->dlpi_addr, hex);
}

/* An object unloaded since the process started, read from its file, where
 * no module reported so far (the loaded ones, newer unloaded ones) lies. */
static void add_unloaded(const cp_unloaded_object *o, void *arg)
{
    build_ctx *b = arg;
    const cp_symbolizer *s = b->s;
    if (b->err || o->nsegs == 0)
        return;
    uintptr_t lo = o->segs[0].start, hi = o->segs[o->nsegs - 1].limit;
    for (size_t i = 0; i < s->nmods; i++)
        if (lo < s->mods[i].high && s->mods[i].low < hi)
            return;
    report_module(b, o->path, -1, o->bias, o->build_id);
}

static int by_low(const void *a, const void *b)
{
    const sym_module *x = a, *y = b;
    return (x->low > y->low) - (x->low < y->low);
}

static void generation_free(cp_symbolizer *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->nnames; i++)
        if (s->names[i].readable != s->names[i].mangled)
            free(s->names[i].readable);
    free(s->names);
    cp_hindex_free(&s->name_index);
    free(s->addrs);
    cp_hindex_free(&s->addr_index);
    free(s->cus);
    free(s->fns);
    cp_hindex_free(&s->cu_index);
    free(s->frames);
    free(s->mods);
    free(s->ranges.v);
    if (s->dwfl != NULL)
        dwfl_end(s->dwfl);
    pthread_rwlock_destroy(&s->lock);
    free(s);
}

static cp_symbolizer *generation_new(void)
{
    cp_symbolizer *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    cp_hindex_init(&s->addr_index);
    cp_hindex_init(&s->name_index);
    cp_hindex_init(&s->cu_index);
    if (pthread_rwlock_init(&s->lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    elf_version(EV_CURRENT);
    s->dwfl = dwfl_begin(&sym_callbacks);
    if (s->dwfl == NULL) {
        generation_free(s);
        return NULL;
    }
    build_ctx b = {s, 0, 0};
    dwfl_report_begin(s->dwfl);
    cp_loader_iterate(add_module, &b);
    if (b.err == 0)
        s->unloaded = cp_objects_each_unloaded(add_unloaded, &b);
    if (dwfl_report_end(s->dwfl, NULL, NULL) != 0 || b.err != 0) {
        generation_free(s);
        return NULL;
    }
    qsort(s->mods, s->nmods, sizeof *s->mods, by_low);
    s->ranges.v = calloc(s->nmods ? s->nmods : 1, sizeof *s->ranges.v);
    if (s->ranges.v == NULL) {
        generation_free(s);
        return NULL;
    }
    for (size_t i = 0; i < s->nmods; i++) {
        s->ranges.v[i].start = s->mods[i].low;
        s->ranges.v[i].limit = s->mods[i].high;
        s->ranges.v[i].file = s->ranges.v[i].build_id = "";
    }
    s->ranges.n = s->nmods;
    /* A C program has no demangler; one that dlopens a C++ library gets
     * it in the generation that library's load starts. */
    *(void **)&s->demangle = dlsym(RTLD_DEFAULT, "__cxa_demangle");
    return s;
}

/*
 * fork: the child has only the forking thread, so a generation whose lock
 * another thread held at the fork could never be locked again there.  The
 * child therefore forgets the current generation (leaking it: freeing it
 * would mean touching that lock) and builds a fresh one on first use;
 * sym_state.lock itself is held across the fork so it is consistent.
 */
static pthread_once_t sym_atfork_once = PTHREAD_ONCE_INIT;

static void sym_atfork_prepare(void) { pthread_mutex_lock(&sym_state.lock); }
static void sym_atfork_parent(void) { pthread_mutex_unlock(&sym_state.lock); }

static void sym_atfork_child(void)
{
    sym_state.current = NULL;
    pthread_mutex_unlock(&sym_state.lock);
}

static void sym_atfork_register(void)
{
    pthread_atfork(sym_atfork_prepare, sym_atfork_parent, sym_atfork_child);
}

cp_symbolizer *cp_symbolizer_acquire(void)
{
    pthread_once(&sym_atfork_once, sym_atfork_register);
    unsigned long long c[2];
    cp_loader_counters(&c[0], &c[1]);

    pthread_mutex_lock(&sym_state.lock);
    unsigned long unloaded = cp_objects_unloaded_version();
    cp_symbolizer *cur = sym_state.current;
    if (cur != NULL && cur->adds == c[0] && cur->subs == c[1] &&
        cur->unloaded == unloaded) {
        cur->refs++;
        pthread_mutex_unlock(&sym_state.lock);
        return cur;
    }
    pthread_mutex_unlock(&sym_state.lock);

    /* Built unlocked: opening every object takes a while, and acquirers
     * of a still-current generation should not wait for it. */
    cp_symbolizer *g = generation_new();
    if (g == NULL)
        return NULL;
    cp_symbolizer *old = NULL, *unused = NULL;
    pthread_mutex_lock(&sym_state.lock);
    cur = sym_state.current;
    if (cur != NULL && cur->adds == g->adds && cur->subs == g->subs &&
        cur->unloaded == g->unloaded) {
        unused = g; /* another thread built the same one first */
        g = cur;
    } else {
        old = cur;
        if (old != NULL && --old->refs != 0)
            old = NULL; /* still held: its last release frees it */
        sym_state.current = g;
        g->refs = 1; /* the reference of being current */
    }
    g->refs++;
    pthread_mutex_unlock(&sym_state.lock);
    generation_free(unused);
    generation_free(old);
    return g;
}

void cp_symbolizer_release(cp_symbolizer *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&sym_state.lock);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&sym_state.lock);
    if (last)
        generation_free(s);
}

/* ---- resolving one address (generation write-locked) ------------------ */

static sym_module *find_module(cp_symbolizer *s, uintptr_t addr)
{
    const cp_mapping *r = cp_mappings_find(&s->ranges, addr);
    return r != NULL ? &s->mods[r - s->ranges.v] : NULL;
}

/* The readable name of a symbol: demangled once per distinct string
 * (Dwfl's strings are stable, so the pointer is the key). */
static const char *readable(cp_symbolizer *s, const char *sym)
{
    if (sym == NULL || s->demangle == NULL || sym[0] != '_' || sym[1] != 'Z')
        return sym;
    probe p = {s, (uintptr_t)sym};
    uint64_t hash = cp_hash_u64(0, (uintptr_t)sym);
    uint32_t id = cp_hindex_find(&s->name_index, hash, name_eq, &p);
    if (id != CP_HINDEX_NONE)
        return s->names[id].readable;
    int status = -1;
    char *d = s->demangle(sym, NULL, NULL, &status);
    if (status != 0 || d == NULL) {
        free(d);
        d = (char *)sym; /* remembered as "not demangleable" */
    }
    if (grow((void **)&s->names, &s->capnames, s->nnames + 1,
             sizeof *s->names) != 0 ||
        cp_hindex_insert(&s->name_index, hash, (uint32_t)s->nnames) != 0) {
        if (d != sym)
            free(d);
        return sym;
    }
    s->names[s->nnames++] = (name_entry){sym, d};
    return d;
}

static const char *die_string(Dwarf_Die *die, unsigned name)
{
    Dwarf_Attribute mem;
    return dwarf_formstring(dwarf_attr_integrate(die, name, &mem));
}

/* Fills a frame's names and start line from a subprogram or inlined
 * subroutine DIE (following abstract_origin/specification). */
static void name_frame(cp_symbolizer *s, Dwarf_Die *die, cp_frame *f)
{
    const char *link = die_string(die, DW_AT_linkage_name);
    if (link == NULL)
        link = die_string(die, DW_AT_MIPS_linkage_name);
    const char *name = dwarf_diename(die);
    if (link != NULL && link[0] == '_' && link[1] == 'Z') {
        /* C++: the mangled symbol, shown demangled.  Without a demangler
         * both stay mangled, and pprof demangles a Name equal to its
         * SystemName itself. */
        f->system_name = link;
        f->function = readable(s, link);
    } else {
        /* C: an asm label (glibc's __GI_qsort) is the symbol, the
         * source name is what the user wrote. */
        f->function = name != NULL ? name : link;
        f->system_name = link != NULL ? link : name;
    }
    int decl = 0;
    f->start_line = dwarf_decl_line(die, &decl) == 0 ? decl : 0;
}

/* Collects one CU's function ranges (dwarf_getfuncs callback). */
static int add_function(Dwarf_Die *fn, void *arg)
{
    cp_symbolizer *s = arg;
    Dwarf_Addr base, lo, hi;
    ptrdiff_t off = 0;
    /* A function split in hot/cold parts has several ranges. */
    while ((off = dwarf_ranges(fn, off, &base, &lo, &hi)) > 0) {
        if (lo >= hi)
            continue;
        if (grow((void **)&s->fns, &s->capfns, s->nfns + 1,
                 sizeof *s->fns) != 0)
            return DWARF_CB_ABORT;
        s->fns[s->nfns++] = (fn_range){lo, hi, *fn};
    }
    return DWARF_CB_OK;
}

static int by_fn_low(const void *a, const void *b)
{
    const fn_range *x = a, *y = b;
    return (x->low > y->low) - (x->low < y->low);
}

/*
 * The DIE of the function whose code contains pc (a CU-relative address),
 * from the CU's function index, built on first use: one walk of the CU's
 * DIE tree instead of one per address.
 */
static bool find_function(cp_symbolizer *s, Dwarf_Die *cu, Dwarf_Addr pc,
                          Dwarf_Die *out)
{
    probe p = {s, (uintptr_t)cu}; /* Dwfl's CU DIEs have stable addresses */
    uint64_t hash = cp_hash_u64(1, (uintptr_t)cu);
    uint32_t id = cp_hindex_find(&s->cu_index, hash, cu_eq, &p);
    if (id == CP_HINDEX_NONE) {
        size_t first = s->nfns;
        if (grow((void **)&s->cus, &s->capcus, s->ncus + 1,
                 sizeof *s->cus) != 0 ||
            dwarf_getfuncs(cu, add_function, s, 0) != 0) {
            s->nfns = first;
            return false; /* not cached: retried next time */
        }
        id = (uint32_t)s->ncus;
        if (cp_hindex_insert(&s->cu_index, hash, id) != 0) {
            s->nfns = first;
            return false;
        }
        qsort(s->fns + first, s->nfns - first, sizeof *s->fns, by_fn_low);
        s->cus[s->ncus++] = (cu_entry){cu, (uint32_t)first,
                                       (uint32_t)(s->nfns - first)};
    }
    /* The last range starting at or below pc; nested functions can make
     * ranges overlap, so look back a little before giving up. */
    const fn_range *v = s->fns + s->cus[id].first;
    size_t lo = 0, hi = s->cus[id].n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].low <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = lo, tries = 0; k > 0 && tries < 8; k--, tries++) {
        if (pc < v[k - 1].high) {
            *out = v[k - 1].die;
            return true;
        }
    }
    return false;
}

/* DWARF path: the function containing addr, then down through the
 * inlined subroutines and blocks that contain it; frames innermost first. */
static size_t resolve_dwarf(cp_symbolizer *s, Dwfl_Module *mod, uintptr_t addr,
                            cp_frame *out, size_t cap)
{
    Dwarf_Addr bias;
    Dwarf_Die *cu = dwfl_module_addrdie(mod, addr, &bias);
    if (cu == NULL)
        return 0;
    Dwarf_Addr pc = addr - bias;
    Dwarf_Die path[CP_SYM_MAX_DEPTH];
    size_t depth = 0;
    if (!find_function(s, cu, pc, &path[depth++]))
        return 0; /* no enclosing function (e.g. assembly): use symtab */
    Dwarf_Die cur = path[0], child;
    while (depth < CP_SYM_MAX_DEPTH && dwarf_child(&cur, &child) == 0) {
        bool found = false;
        do {
            int tag = dwarf_tag(&child);
            if ((tag == DW_TAG_inlined_subroutine ||
                 tag == DW_TAG_lexical_block || tag == DW_TAG_try_block ||
                 tag == DW_TAG_catch_block) &&
                dwarf_haspc(&child, pc) > 0) {
                found = true;
                break;
            }
        } while (dwarf_siblingof(&child, &child) == 0);
        if (!found)
            break;
        if (dwarf_tag(&child) == DW_TAG_inlined_subroutine)
            path[depth++] = child;
        cur = child;
    }

    /* The innermost frame's position comes from the line table; each
     * inlined frame's call site is its caller's position. */
    const char *file = NULL;
    int line = 0;
    Dwfl_Line *l = dwfl_module_getsrc(mod, addr);
    if (l != NULL)
        file = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);
    Dwarf_Files *files = NULL;
    size_t nfiles = 0;
    if (dwarf_getsrcfiles(cu, &files, &nfiles) != 0)
        files = NULL;
    Dwarf_Addr entry = 0;
    if (dwarf_entrypc(&path[0], &entry) == 0)
        entry += bias;

    size_t k = 0;
    for (size_t i = depth; i-- > 0;) {
        /* The last slot is kept for the real function (path[0]): inlined
         * frames past cap - 1 are dropped, their call sites followed. */
        if (k + 1 < cap || i == 0) {
            cp_frame *f = &out[k++];
            memset(f, 0, sizeof *f);
            name_frame(s, &path[i], f);
            f->file = file;
            f->line = line;
            f->entry = (uintptr_t)entry;
        }
        if (i == 0)
            break;
        Dwarf_Attribute mem;
        Dwarf_Word cf = 0, cl = 0;
        file = NULL;
        if (files != NULL &&
            dwarf_formudata(dwarf_attr(&path[i], DW_AT_call_file, &mem), &cf) == 0 &&
            cf < nfiles)
            file = dwarf_filesrc(files, cf, NULL, NULL);
        line = dwarf_formudata(dwarf_attr(&path[i], DW_AT_call_line, &mem), &cl) == 0
                   ? (int)cl
                   : 0;
    }
    /* A function DIE without a name: let the symbol table name it. */
    return out[k - 1].function != NULL ? k : 0;
}

/* Symbol-table path: one frame with the name of the enclosing symbol. */
static size_t resolve_symtab(cp_symbolizer *s, Dwfl_Module *mod,
                             uintptr_t addr, cp_frame *out)
{
    GElf_Off off = 0;
    GElf_Sym sym;
    const char *name = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL,
                                            NULL, NULL);
    if (name == NULL || name[0] == '\0')
        return 0;
    memset(out, 0, sizeof *out);
    out->system_name = name;
    out->function = readable(s, name);
    out->entry = addr - (uintptr_t)off;
    /* Code with line info but no function DIE (some assembly). */
    Dwfl_Line *l = dwfl_module_getsrc(mod, addr);
    if (l != NULL)
        out->file = dwfl_lineinfo(l, NULL, &out->line, NULL, NULL, NULL);
    return 1;
}

/* Resolves addr and caches the result; returns its entry's index or
 * CP_HINDEX_NONE when out of memory. */
static uint32_t resolve_and_cache(cp_symbolizer *s, uintptr_t addr,
                                  uint64_t hash)
{
    cp_frame tmp[CP_SYM_MAX_FRAMES];
    size_t n = 0;
    sym_module *m = find_module(s, addr);
    if (m != NULL && m->mod != NULL) {
        n = resolve_dwarf(s, m->mod, addr, tmp, CP_SYM_MAX_FRAMES);
        if (n == 0)
            n = resolve_symtab(s, m->mod, addr, tmp);
    }
    uint32_t id = (uint32_t)s->naddrs;
    if (s->naddrs >= CP_HINDEX_NONE - 1 ||
        grow((void **)&s->frames, &s->capframes, s->nframes + n,
             sizeof *s->frames) != 0 ||
        grow((void **)&s->addrs, &s->capaddrs, s->naddrs + 1,
             sizeof *s->addrs) != 0 ||
        cp_hindex_insert(&s->addr_index, hash, id) != 0)
        return CP_HINDEX_NONE;
    if (n > 0) /* frames may still be NULL */
        memcpy(s->frames + s->nframes, tmp, n * sizeof *tmp);
    s->addrs[s->naddrs++] = (addr_entry){addr, (uint32_t)s->nframes,
                                         (uint32_t)n};
    s->nframes += n;
    return id;
}

/* Copies a cached run out: all of it if it fits, else the innermost
 * cap - 1 frames and the real function last, as promised. */
static size_t copy_run(const cp_symbolizer *s, uint32_t id, cp_frame *frames,
                       size_t cap)
{
    const addr_entry *e = &s->addrs[id];
    if (e->n == 0)
        return 0;
    const cp_frame *run = s->frames + e->first;
    if (e->n <= cap) {
        memcpy(frames, run, e->n * sizeof *run);
        return e->n;
    }
    memcpy(frames, run, (cap - 1) * sizeof *run);
    frames[cap - 1] = run[e->n - 1];
    return cap;
}

size_t cp_symbolize(cp_symbolizer *s, uintptr_t addr, cp_frame *frames,
                    size_t cap)
{
    if (s == NULL || addr == 0 || frames == NULL || cap == 0)
        return 0;
    probe p = {s, addr};
    uint64_t hash = cp_hash_u64(0, addr);
    size_t n = 0;
    pthread_rwlock_rdlock(&s->lock);
    uint32_t id = cp_hindex_find(&s->addr_index, hash, addr_eq, &p);
    if (id != CP_HINDEX_NONE)
        n = copy_run(s, id, frames, cap);
    pthread_rwlock_unlock(&s->lock);
    if (id != CP_HINDEX_NONE)
        return n;

    /* Miss: resolve exclusively (Dwfl is single-threaded), rechecking
     * in case another thread resolved it meanwhile. */
    pthread_rwlock_wrlock(&s->lock);
    id = cp_hindex_find(&s->addr_index, hash, addr_eq, &p);
    if (id == CP_HINDEX_NONE)
        id = resolve_and_cache(s, addr, hash);
    if (id != CP_HINDEX_NONE)
        n = copy_run(s, id, frames, cap);
    pthread_rwlock_unlock(&s->lock);
    return n;
}

unsigned cp_symbolize_object_flags(cp_symbolizer *s, uintptr_t addr)
{
    if (s == NULL)
        return 0;
    /* mods never changes after the generation is built. */
    sym_module *m = find_module(s, addr);
    if (m == NULL || m->mod == NULL)
        return 0;
    pthread_rwlock_rdlock(&s->lock);
    int flags = m->flags;
    pthread_rwlock_unlock(&s->lock);
    if (flags >= 0)
        return (unsigned)flags;

    pthread_rwlock_wrlock(&s->lock);
    if (m->flags < 0) {
        Dwarf_Addr bias;
        if (dwfl_module_getdwarf(m->mod, &bias) != NULL)
            m->flags = CP_SYM_HAS_FUNCTIONS | CP_SYM_HAS_FILENAMES |
                       CP_SYM_HAS_LINES | CP_SYM_HAS_INLINES;
        else if (dwfl_module_getsymtab(m->mod) > 0)
            m->flags = CP_SYM_HAS_FUNCTIONS;
        else
            m->flags = 0;
    }
    flags = m->flags;
    pthread_rwlock_unlock(&s->lock);
    return (unsigned)flags;
}
