/*
 * capture/objects.c - naming loaded objects (path, build ID, executable
 * segments) and remembering the ones unloaded since the process started
 * (capture/objects.h).
 *
 * Callers: model/mappings.c and model/symbolize.c from inside their
 * dl_iterate_phdr callbacks and when they build (normal context), and
 * capture/dl_shim.c around the program's dlclose calls.
 *
 * Normal thread context only, never a signal handler or an allocator
 * hook: it allocates, takes unloaded.lock, and walks the loader's list in
 * a loader section (capture/loader.h).  Thread-safe.  The lock is held
 * across fork by an atfork handler, so a child never inherits it held.
 *
 * Why a list of unloaded objects: samples hold raw addresses and are
 * named when a profile is written, which may be after the library they
 * point into was dlclose'd (a plugin run and unloaded, a short-lived
 * module).  Without the list those addresses had no mapping and no name
 * ("<unknown>").  Each dlclose is bracketed: before it, every loaded
 * object is described while it is still mapped (its path, build ID and
 * executable segments; a few microseconds for a few dozen objects);
 * after it, the objects no longer loaded join the list.  The symbolizer
 * reads such an object from its file on disk, checked against the
 * recorded build ID.  An address range a later library reuses belongs to
 * that library: the list only fills gaps the loaded objects leave; and
 * where two unloaded libraries used the same addresses, neither names
 * them (see remember).
 */
#include "capture/objects.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "capture/loader.h"

/* ---------------------------------------------------- one loaded object */

int cp_object_is_vdso(const struct dl_phdr_info *info)
{
    uintptr_t ehdr = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    if (ehdr == 0)
        return 0;
    /* The vDSO's ELF header is the start of its first (offset 0) load
     * segment, which is where the kernel mapped the image. */
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && ph->p_offset == 0)
            return info->dlpi_addr + ph->p_vaddr == ehdr;
    }
    return 0;
}

const char *cp_object_path(const struct dl_phdr_info *info, char *buf,
                           size_t cap)
{
    if (cp_object_is_vdso(info))
        return "[vdso]";
    if (info->dlpi_name != NULL && info->dlpi_name[0] != '\0')
        return info->dlpi_name;
    /* The loader names the main program "": ask the kernel for the path it
     * executed (it may end in " (deleted)", which is still the truth). */
    if (cap == 0)
        return "";
    ssize_t len = readlink("/proc/self/exe", buf, cap - 1);
    if (len <= 0)
        return "";
    buf[len] = '\0';
    return buf;
}

/* True when [vaddr, vaddr + size) lies inside one of the object's load
 * segments, i.e. it is mapped and safe to read. */
static bool in_load_segment(const struct dl_phdr_info *info, uintptr_t vaddr,
                            size_t size)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && vaddr >= ph->p_vaddr &&
            vaddr - ph->p_vaddr <= ph->p_filesz &&
            size <= ph->p_filesz - (vaddr - ph->p_vaddr))
            return true;
    }
    return false;
}

/* Scans one note segment for NT_GNU_BUILD_ID; writes hex, returns digits. */
static size_t scan_notes(const unsigned char *p, size_t size, size_t align,
                         char *hex)
{
    static const char digits[] = "0123456789abcdef";
    size_t pos = 0;
    while (size - pos >= sizeof(ElfW(Nhdr))) {
        ElfW(Nhdr) nh;
        memcpy(&nh, p + pos, sizeof nh);
        pos += sizeof nh;
        size_t name_sz = (nh.n_namesz + align - 1) & ~(align - 1);
        size_t desc_sz = (nh.n_descsz + align - 1) & ~(align - 1);
        if (name_sz > size - pos || desc_sz > size - pos - name_sz)
            return 0; /* malformed: stop rather than read past the end */
        const unsigned char *name = p + pos;
        const unsigned char *desc = p + pos + name_sz;
        pos += name_sz + desc_sz;
        if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 ||
            memcmp(name, "GNU", 4) != 0 || nh.n_descsz == 0)
            continue;
        size_t n = nh.n_descsz;
        if (2 * n + 1 > CP_BUILD_ID_HEX_MAX)
            return 0;
        for (size_t i = 0; i < n; i++) {
            hex[2 * i] = digits[desc[i] >> 4];
            hex[2 * i + 1] = digits[desc[i] & 15];
        }
        hex[2 * n] = '\0';
        return 2 * n;
    }
    return 0;
}

size_t cp_object_build_id(const struct dl_phdr_info *info, char *hex)
{
    hex[0] = '\0';
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE || ph->p_filesz == 0 ||
            !in_load_segment(info, ph->p_vaddr, ph->p_filesz))
            continue;
        /* Notes are 4-byte aligned, or 8 in segments that say so. */
        size_t align = ph->p_align == 8 ? 8 : 4;
        const unsigned char *p =
            (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
        size_t n = scan_notes(p, ph->p_filesz, align, hex);
        if (n > 0)
            return n;
    }
    hex[0] = '\0';
    return 0;
}

size_t cp_object_exec_segs(const struct dl_phdr_info *info,
                           cp_object_seg *segs, size_t max)
{
    long psz = sysconf(_SC_PAGESIZE);
    uintptr_t page = psz > 0 ? (uintptr_t)psz : 4096;
    size_t n = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) ||
            ph->p_memsz == 0)
            continue;
        if (n < max) {
            uintptr_t start = info->dlpi_addr + ph->p_vaddr;
            uintptr_t astart = start & ~(page - 1);
            uintptr_t end = start + ph->p_memsz;
            segs[n].start = astart;
            segs[n].limit = (end + page - 1) & ~(page - 1);
            segs[n].offset = ph->p_offset - (start - astart);
        }
        n++;
    }
    return n;
}

/* ------------------------------------------------------ unloaded objects */

/* One description, its strings in the same allocation. */
typedef struct described {
    cp_unloaded_object obj;
    const void *phdr; /* identity while loaded: (bias, phdr) */
    bool ambiguous;   /* another unloaded object used its addresses */
} described;

struct cp_objects_before {
    described **v;
    size_t n, cap;
    int err;
};

static struct {
    pthread_mutex_t lock;
    described *list[CP_UNLOADED_MAX]; /* oldest first */
    size_t count;
    atomic_ulong version;
    pthread_once_t atfork_once;
} unloaded = { .lock = PTHREAD_MUTEX_INITIALIZER,
               .atfork_once = PTHREAD_ONCE_INIT };

static void unloaded_prepare(void) { pthread_mutex_lock(&unloaded.lock); }
static void unloaded_parent(void) { pthread_mutex_unlock(&unloaded.lock); }
static void unloaded_child(void) { pthread_mutex_unlock(&unloaded.lock); }

static void unloaded_register(void)
{
    int saved = errno;
    pthread_atfork(unloaded_prepare, unloaded_parent, unloaded_child);
    errno = saved;
}

static described *describe(const struct dl_phdr_info *info)
{
    char buf[4096], hex[CP_BUILD_ID_HEX_MAX];
    const char *path = cp_object_path(info, buf, sizeof buf);
    size_t hexlen = cp_object_build_id(info, hex);
    size_t plen = strlen(path);
    described *d = malloc(sizeof *d + plen + 1 + hexlen + 1);
    if (d == NULL)
        return NULL;
    char *strings = (char *)(d + 1);
    memcpy(strings, path, plen + 1);
    memcpy(strings + plen + 1, hex, hexlen + 1);
    d->obj.bias = info->dlpi_addr;
    d->obj.path = strings;
    d->obj.build_id = strings + plen + 1;
    size_t n = cp_object_exec_segs(info, d->obj.segs, CP_UNLOADED_SEGS);
    d->obj.nsegs = n < CP_UNLOADED_SEGS ? n : CP_UNLOADED_SEGS;
    d->phdr = info->dlpi_phdr;
    d->ambiguous = false;
    return d;
}

/* Objects that can be unloaded: not the main program (named ""), not the
 * vDSO, and with code. */
static int describe_each(struct dl_phdr_info *info, size_t size, void *arg)
{
    cp_objects_before *b = arg;
    (void)size;
    if (info->dlpi_name == NULL || info->dlpi_name[0] == '\0' ||
        cp_object_is_vdso(info) || cp_object_exec_segs(info, NULL, 0) == 0)
        return 0;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        described **v = realloc(b->v, cap * sizeof *v);
        if (v == NULL) {
            b->err = -ENOMEM;
            return 1;
        }
        b->v = v;
        b->cap = cap;
    }
    described *d = describe(info);
    if (d == NULL) {
        b->err = -ENOMEM;
        return 1;
    }
    b->v[b->n++] = d;
    return 0;
}

static void before_free(cp_objects_before *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->v[i]);
    free(b->v);
    free(b);
}

cp_objects_before *cp_objects_before_unload(void)
{
    pthread_once(&unloaded.atfork_once, unloaded_register);
    cp_objects_before *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    cp_loader_iterate(describe_each, b);
    if (b->err) {
        before_free(b);
        return NULL;
    }
    return b;
}

/* Marks (clears) every described object that is still loaded. */
static int still_loaded(struct dl_phdr_info *info, size_t size, void *arg)
{
    cp_objects_before *b = arg;
    (void)size;
    for (size_t i = 0; i < b->n; i++) {
        described *d = b->v[i];
        if (d && d->obj.bias == info->dlpi_addr && d->phdr == info->dlpi_phdr) {
            free(d);
            b->v[i] = NULL;
            break;
        }
    }
    return 0;
}

static bool same_object(const cp_unloaded_object *a,
                        const cp_unloaded_object *b)
{
    return a->bias == b->bias && strcmp(a->path, b->path) == 0 &&
           strcmp(a->build_id, b->build_id) == 0;
}

static void forget(size_t k)
{
    free(unloaded.list[k]);
    memmove(&unloaded.list[k], &unloaded.list[k + 1],
            (unloaded.count - k - 1) * sizeof *unloaded.list);
    unloaded.count--;
}

static bool same_addresses(const cp_unloaded_object *a,
                           const cp_unloaded_object *b)
{
    return a->nsegs && b->nsegs && a->segs[0].start < b->segs[b->nsegs - 1].limit &&
           b->segs[0].start < a->segs[a->nsegs - 1].limit;
}

/*
 * Adds d as the newest entry (unloaded.lock held); takes ownership.  The
 * same library unloaded again at the same place keeps one entry.  Two
 * different libraries that used the same addresses at different times
 * make an address sampled there ambiguous (samples carry no time of their
 * own): both stay listed, so that a third is found ambiguous too, but
 * neither is used to name anything.
 */
static void remember(described *d)
{
    for (size_t k = 0; k < unloaded.count; k++)
        if (same_object(&unloaded.list[k]->obj, &d->obj)) {
            d->ambiguous = unloaded.list[k]->ambiguous;
            forget(k);
            break;
        }
    for (size_t k = 0; k < unloaded.count; k++)
        if (same_addresses(&unloaded.list[k]->obj, &d->obj))
            unloaded.list[k]->ambiguous = d->ambiguous = true;
    if (unloaded.count == CP_UNLOADED_MAX)
        forget(0);
    unloaded.list[unloaded.count++] = d;
    atomic_fetch_add(&unloaded.version, 1);
}

void cp_objects_after_unload(cp_objects_before *b)
{
    if (b == NULL)
        return;
    cp_loader_iterate(still_loaded, b);
    pthread_mutex_lock(&unloaded.lock);
    for (size_t i = 0; i < b->n; i++) {
        if (b->v[i]) {
            remember(b->v[i]);
            b->v[i] = NULL;
        }
    }
    pthread_mutex_unlock(&unloaded.lock);
    before_free(b);
}

unsigned long cp_objects_each_unloaded(void (*fn)(const cp_unloaded_object *,
                                                  void *),
                                       void *arg)
{
    pthread_once(&unloaded.atfork_once, unloaded_register);
    pthread_mutex_lock(&unloaded.lock);
    for (size_t i = unloaded.count; i-- > 0;)
        if (!unloaded.list[i]->ambiguous)
            fn(&unloaded.list[i]->obj, arg);
    unsigned long v = atomic_load(&unloaded.version);
    pthread_mutex_unlock(&unloaded.lock);
    return v;
}

unsigned long cp_objects_unloaded_version(void)
{
    return atomic_load(&unloaded.version);
}
