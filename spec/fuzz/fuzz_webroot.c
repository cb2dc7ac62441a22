/* fuzz_webroot: request paths through webroot.c against a temporary tree made at start-up. The
 * tree holds files inside the root, a sibling directory whose name starts like the root's, a
 * secret next to it, symlinks that stay inside, lead outside, loop or climb, and a FIFO (opening
 * it for reading blocks until a writer comes; libFuzzer's own alarm interrupts it after a second
 * or two, so a call that takes over a second is reported as blocking).
 * Checks, besides the sanitizers:
 *   - a path that opens gives a regular file that is one of the files really inside the root
 *     (by device and inode, collected without following symlinks), and /proc/self/fd says it
 *     lives under the root; never the secret, never the sibling;
 *   - a refusal is -400 or -404; a success names a content type;
 *   - no descriptor is leaked, whatever the outcome;
 *   - no path blocks the server (the call returns within a second). */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "webroot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char base[64];     /* the temporary directory */
static char root[PATH_MAX]; /* its real path + "/web" */
static struct { dev_t dev; ino_t ino; } inside_files[64];
static size_t n_inside;
static int next_fd;       /* the descriptor open() returns when none leaked */

static void put(const char *rel, const char *text)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FILE *f = fopen(p, "w");
    if (!f)
        fuzz_fail("cannot create %s", p);
    fputs(text, f);
    fclose(f);
}

static void dir(const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    mkdir(p, 0755);
}

static void link_to(const char *target, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    if (symlink(target, p) != 0)
        fuzz_fail("cannot link %s", p);
}

/* Every regular file under the root, symlinks not followed. */
static int collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    if (type == FTW_F && S_ISREG(st->st_mode) && n_inside < 64) {
        inside_files[n_inside].dev = st->st_dev;
        inside_files[n_inside].ino = st->st_ino;
        n_inside++;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    remove(path);
    return 0;
}

static void cleanup(void)
{
    webroot_free();
    nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    strcpy(base, "/tmp/confab-fuzz-webroot-XXXXXX");
    if (!mkdtemp(base))
        fuzz_fail("mkdtemp failed");
    atexit(cleanup);
    dir("web");
    dir("web/sub");
    dir("web/sub/deeper");
    dir("web/empty");
    dir("web-evil");
    put("web/index.html", "<p>hi</p>");
    put("web/app.js", "1");
    put("web/style.css", "p{}");
    put("web/.hidden", "h");
    put("web/sub/index.html", "sub");
    put("web/sub/a b.txt", "space");
    put("web/sub/%41.txt", "percent");
    put("web/sub/deeper/x.json", "{}");
    put("secret.txt", "secret");
    put("web-evil/index.html", "evil");
    link_to("../secret.txt", "web/leak.txt");
    link_to("../web-evil", "web/evil");
    link_to("app.js", "web/inside.js");
    link_to("..", "web/sub/up");
    link_to("../..", "web/sub/deeper/upup");
    link_to("loop", "web/loop");
    link_to("sub/fifo", "web/pipe");
    link_to("/etc/passwd", "web/passwd");
    link_to("/", "web/slash");
    char p[PATH_MAX], err[256];
    snprintf(p, sizeof p, "%s/web/sub/fifo", base);
    if (mkfifo(p, 0644) != 0)
        fuzz_fail("mkfifo %s", p);

    snprintf(p, sizeof p, "%s/web", base);
    if (!realpath(p, root))
        fuzz_fail("realpath %s", p);
    if (webroot_init(p, err, sizeof err) != 0)
        fuzz_fail("webroot_init: %s", err);
    nftw(root, collect, 16, FTW_PHYS);
    next_fd = open("/dev/null", O_RDONLY);
    close(next_fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *ctype = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int fd = webroot_open((const char *)data, size, &ctype);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    FUZZ_CHECK(took < 1.0, "webroot_open blocked for %.1f s on '%.*s'", took, (int)size,
               (const char *)data);
    if (fd < 0) {
        FUZZ_CHECK(fd == -400 || fd == -404, "webroot_open returned %d", fd);
    } else {
        struct stat st;
        FUZZ_CHECK(fstat(fd, &st) == 0 && S_ISREG(st.st_mode), "descriptor %d is no regular file",
                   fd);
        int known = 0;
        for (size_t i = 0; i < n_inside; i++)
            known |= inside_files[i].dev == st.st_dev && inside_files[i].ino == st.st_ino;
        char proc[64], where[PATH_MAX];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(proc, where, sizeof where - 1);
        where[n > 0 ? n : 0] = '\0';
        FUZZ_CHECK(known, "opened %s, which is not a file inside the root", where);
        size_t rl = strlen(root);
        FUZZ_CHECK(strncmp(where, root, rl) == 0 && where[rl] == '/', "opened %s outside %s",
                   where, root);
        FUZZ_CHECK(ctype && *ctype, "no content type for %s", where);
        close(fd);
    }
    int probe = open("/dev/null", O_RDONLY);
    close(probe);
    FUZZ_CHECK(probe == next_fd, "a descriptor leaked (next is %d, was %d)", probe, next_fd);
    return 0;
}
