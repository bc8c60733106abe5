/*
 * model/mappings.c - snapshots of the process's executable mappings for
 * profile.proto's Mapping messages (model/mappings.h), plus the helpers
 * that name a loaded object and read its GNU build ID, shared with the
 * symbolizer (model/symbolize.c) so both agree.
 *
 * Called by the proto encoder and the symbolizer, in normal thread
 * context only: dl_iterate_phdr takes the loader lock and we allocate.
 * Never from a signal handler or an interposed call.  Snapshots are
 * immutable once built, so readers need no lock.
 *
 * Everything is read from the loader's view of memory (program headers
 * and the note segment), which dl_iterate_phdr keeps mapped while its
 * callback runs; nothing here parses files.
 */
#include "model/mappings.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "capture/loader.h"

/* The snapshot as allocated: the public view first, then the one buffer
 * that holds every path and build ID string. */
typedef struct snapshot {
    cp_mappings pub;
    char *pool;
} snapshot;

/* Collection state while dl_iterate_phdr runs.  Entries keep offsets into
 * the pool (which may move while it grows) and become pointers at the end. */
typedef struct collect {
    cp_mapping *v;
    size_t n, cap;
    char *pool;
    size_t pool_len, pool_cap;
    uintptr_t page;
    int err;
} collect;

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

/* Appends a NUL-terminated string to the pool; returns its offset. */
static size_t pool_add(collect *c, const char *s)
{
    size_t len = strlen(s) + 1;
    if (c->pool_len + len > c->pool_cap) {
        size_t cap = c->pool_cap ? c->pool_cap * 2 : 1024;
        while (cap < c->pool_len + len)
            cap *= 2;
        char *pool = realloc(c->pool, cap);
        if (pool == NULL) {
            c->err = -ENOMEM;
            return 0;
        }
        c->pool = pool;
        c->pool_cap = cap;
    }
    memcpy(c->pool + c->pool_len, s, len);
    c->pool_len += len;
    return c->pool_len - len;
}

static int collect_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    collect *c = arg;
    bool named = false;
    size_t file_off = 0, id_off = 0;
    (void)size;

    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) ||
            ph->p_memsz == 0)
            continue;
        if (!named) {
            /* Strings once per object, shared by all its segments. */
            char path[4096], hex[CP_BUILD_ID_HEX_MAX];
            file_off = pool_add(c, cp_object_path(info, path, sizeof path));
            cp_object_build_id(info, hex);
            id_off = pool_add(c, hex);
            if (c->err)
                return 1;
            named = true;
        }
        if (c->n == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 32;
            cp_mapping *v = realloc(c->v, cap * sizeof *v);
            if (v == NULL) {
                c->err = -ENOMEM;
                return 1;
            }
            c->v = v;
            c->cap = cap;
        }
        /* Report whole pages with the matching file offset, as the
         * kernel's maps do, so addr - start + offset is the file offset. */
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        uintptr_t astart = start & ~(c->page - 1);
        uintptr_t end = start + ph->p_memsz;
        cp_mapping *m = &c->v[c->n++];
        m->start = astart;
        m->limit = (end + c->page - 1) & ~(c->page - 1);
        m->offset = ph->p_offset - (start - astart);
        /* Offsets for now; cp_mappings_snapshot turns them into pointers. */
        m->file = (const char *)(uintptr_t)file_off;
        m->build_id = (const char *)(uintptr_t)id_off;
    }
    return 0;
}

static int by_start(const void *a, const void *b)
{
    const cp_mapping *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

int cp_mappings_snapshot(cp_mappings **out)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    collect c = {0};
    long page = sysconf(_SC_PAGESIZE);
    c.page = page > 0 ? (uintptr_t)page : 4096;
    cp_loader_iterate(collect_object, &c);
    snapshot *s = c.err ? NULL : calloc(1, sizeof *s);
    if (s == NULL) {
        free(c.v);
        free(c.pool);
        return c.err ? c.err : -ENOMEM;
    }
    for (size_t i = 0; i < c.n; i++) {
        c.v[i].file = c.pool + (uintptr_t)c.v[i].file;
        c.v[i].build_id = c.pool + (uintptr_t)c.v[i].build_id;
    }
    qsort(c.v, c.n, sizeof *c.v, by_start);
    /* Page rounding could make neighbours touch in theory; keep the
     * non-overlapping invariant that lookups rely on. */
    for (size_t i = 1; i < c.n; i++)
        if (c.v[i - 1].limit > c.v[i].start)
            c.v[i - 1].limit = c.v[i].start;
    s->pub.v = c.v;
    s->pub.n = c.n;
    s->pool = c.pool;
    *out = &s->pub;
    return 0;
}

void cp_mappings_free(cp_mappings *m)
{
    if (m == NULL)
        return;
    snapshot *s = (snapshot *)m; /* pub is the first member */
    free(s->pub.v);
    free(s->pool);
    free(s);
}

const cp_mapping *cp_mappings_find(const cp_mappings *m, uintptr_t addr)
{
    if (m == NULL)
        return NULL;
    size_t lo = 0, hi = m->n;
    while (lo < hi) { /* first mapping with limit > addr */
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[mid].limit <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->n && m->v[lo].start <= addr)
        return &m->v[lo];
    return NULL;
}
