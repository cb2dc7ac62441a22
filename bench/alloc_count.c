/* alloc_count: an LD_PRELOAD shim that counts a process's heap calls, for the benchmark's
 * "heap calls per message" (bench/run, bench/README.md).
 *
 *   ALLOC_COUNT_FILE=/tmp/x LD_PRELOAD=build/alloc_count.so build/confab ...
 *
 * The counters live in ALLOC_COUNT_FILE, mapped shared, so that another process can read them
 * at any moment without asking the counted one to do anything (no signal, no extra code path in
 * the server): `od -An -t u8 -w8 FILE` prints one counter a line, in the order of enum below.
 * bench/run copies the file when the measured run starts and when it ends and takes the
 * difference. Each count is a relaxed atomic add, so a thread that allocates is counted too.
 *
 * Counted: every call of malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign and
 * valloc, and every free of a non-NULL pointer (free(NULL) does no heap work). The calls go on
 * to glibc's allocator (__libc_*), so the process behaves as without the shim.
 *
 * With ALLOC_COUNT_CALLERS=1 the file also holds a table of call sites: for each kind of call and
 * each return address (the instruction after the call of malloc, free, ...), how many calls
 * came from there. bench/alloc_callers diffs two copies of the file and names the functions
 * (addr2line on the modules of /proc/PID/maps), which is how the figures in bench/README.md
 * say what is left. Off by default: it costs a hash lookup per call. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

enum { C_MALLOC, C_CALLOC, C_REALLOC, C_FREE, C_MEMALIGN, C_COUNT };

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

/* Counts before the file is mapped (the loader and libc start up) go here and are not seen. */
static uint64_t early[C_COUNT];
static uint64_t *counters = early;

/* The call-site table: SITES slots of two words, the key (return address << 3 | kind of call)
 * and the count, by open addressing on the key. Slot 0 counts the calls a full table could not
 * place (its key stays 0). */
#define SITES 4096
static uint64_t *sites;

static void count_site(int which, void *ret)
{
    uint64_t key = (uint64_t)(uintptr_t)ret << 3 | (uint64_t)which;
    uint64_t h = (key * 0x9e3779b97f4a7c15u) >> 52; /* 12 bits: 0 .. SITES - 1 */
    for (int i = 0; i < SITES - 1; i++, h = h % (SITES - 1) + 1) {
        uint64_t *s = sites + 2 * (h ? h : 1), cur = 0;
        if (!__atomic_compare_exchange_n(&s[0], &cur, key, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
            cur != key)
            continue;
        __atomic_fetch_add(&s[1], 1, __ATOMIC_RELAXED);
        return;
    }
    __atomic_fetch_add(&sites[1], 1, __ATOMIC_RELAXED);
}

#define count(which) count_at((which), __builtin_return_address(0))
static inline void count_at(int which, void *ret)
{
    __atomic_fetch_add(&counters[which], 1, __ATOMIC_RELAXED);
    if (sites)
        count_site(which, ret);
}

__attribute__((constructor)) static void alloc_count_init(void)
{
    const char *path = getenv("ALLOC_COUNT_FILE");
    if (!path || !*path)
        return;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    const char *callers = getenv("ALLOC_COUNT_CALLERS");
    int with_sites = callers && *callers == '1';
    size_t len = (C_COUNT + (with_sites ? 2 * SITES : 0)) * sizeof(uint64_t);
    void *p = MAP_FAILED;
    if (ftruncate(fd, (off_t)len) == 0)
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p != MAP_FAILED) {
        counters = p;
        if (with_sites)
            sites = counters + C_COUNT;
    }
}

void *malloc(size_t n)
{
    count(C_MALLOC);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    count(C_CALLOC);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    count(C_REALLOC);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    if (p)
        count(C_FREE);
    __libc_free(p);
}

static int pow2(size_t a)
{
    return a && (a & (a - 1)) == 0;
}

int posix_memalign(void **out, size_t align, size_t n)
{
    count(C_MEMALIGN);
    if (!pow2(align) || align % sizeof(void *) != 0)
        return EINVAL;
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    count(C_MEMALIGN);
    return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
    count(C_MEMALIGN);
    return __libc_memalign(align, n);
}

void *valloc(size_t n)
{
    count(C_MEMALIGN);
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), n);
}
