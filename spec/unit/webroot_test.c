/* Static path resolution against a real temporary directory tree. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "webroot.h"

static char tmp[64];

static void write_file(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmp, rel);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static int open_status(const char *path)
{
    const char *ctype = NULL;
    int fd = webroot_open(path, strlen(path), &ctype);
    if (fd >= 0) {
        close(fd);
        return 200;
    }
    return -fd;
}

TEST(webroot_resolution)
{
    strcpy(tmp, "/tmp/confab-webroot-XXXXXX");
    CHECK(mkdtemp(tmp) != NULL);
    char p[256];
    snprintf(p, sizeof p, "%s/web", tmp);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/web/sub", tmp);
    mkdir(p, 0755);
    write_file("web/index.html", "<p>hi</p>");
    write_file("web/app.js", "1");
    write_file("web/sub/index.html", "sub");
    write_file("secret.txt", "secret");
    char target[256], link[256];
    snprintf(target, sizeof target, "%s/secret.txt", tmp);
    snprintf(link, sizeof link, "%s/web/leak.txt", tmp);
    CHECK(symlink(target, link) == 0);
    snprintf(target, sizeof target, "%s/web/app.js", tmp);
    snprintf(link, sizeof link, "%s/web/inside.js", tmp);
    CHECK(symlink(target, link) == 0);

    snprintf(p, sizeof p, "%s/web/fifo", tmp);
    CHECK(mkfifo(p, 0644) == 0);
    snprintf(p, sizeof p, "%s/web/fifodir", tmp);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/web/fifodir/index.html", tmp);
    CHECK(mkfifo(p, 0644) == 0);

    char err[256];
    snprintf(p, sizeof p, "%s/web", tmp);
    CHECK_INT(webroot_init(p, err, sizeof err), 0);
    /* Not regular files: refused without blocking on the open (no writer will ever come). */
    CHECK_INT(open_status("/fifo"), 404);
    CHECK_INT(open_status("/fifodir/"), 404);

    CHECK_INT(open_status("/"), 200);
    CHECK_INT(open_status("/index.html"), 200);
    CHECK_INT(open_status("/app.js"), 200);
    CHECK_INT(open_status("/sub/"), 200);
    CHECK_INT(open_status("/sub"), 200);
    CHECK_INT(open_status("/%61pp.js"), 200);
    CHECK_INT(open_status("/inside.js"), 200);
    CHECK_INT(open_status("/missing.html"), 404);
    CHECK_INT(open_status("/../secret.txt"), 404);
    CHECK_INT(open_status("/sub/../../secret.txt"), 404);
    CHECK_INT(open_status("/%2e%2e/secret.txt"), 404);
    CHECK_INT(open_status("/%2E%2E%2Fsecret.txt"), 404);
    CHECK_INT(open_status("/..%2fsecret.txt"), 404);
    CHECK_INT(open_status("/leak.txt"), 404);
    CHECK_INT(open_status("/app.js%00.html"), 400);
    CHECK_INT(open_status("/bad%zz"), 400);
    CHECK_INT(open_status("/bad%2"), 400);

    const char *ctype = NULL;
    int fd = webroot_open("/app.js", 7, &ctype);
    CHECK(fd >= 0);
    CHECK_STR(ctype, "text/javascript; charset=utf-8");
    close(fd);
    CHECK_STR(webroot_content_type("x/index.html"), "text/html; charset=utf-8");
    CHECK_STR(webroot_content_type("noext"), "application/octet-stream");

    webroot_free();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
}
