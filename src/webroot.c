#include "webroot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static char *root_real;
static size_t root_len;

int webroot_init(const char *root, char *err, size_t errlen)
{
    free(root_real);
    root_real = realpath(root, NULL);
    if (!root_real) {
        snprintf(err, errlen, "web directory '%s' not found", root);
        return -1;
    }
    root_len = strlen(root_real);
    return 0;
}

void webroot_free(void)
{
    free(root_real);
    root_real = NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

const char *webroot_content_type(const char *name)
{
    static const struct { const char *ext, *type; } types[] = {
        {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".json", "application/json"},
        {".svg", "image/svg+xml"}, {".png", "image/png"}, {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"}, {".gif", "image/gif"}, {".ico", "image/x-icon"},
        {".webp", "image/webp"}, {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"}, {".webmanifest", "application/manifest+json"},
    };
    const char *dot = strrchr(name, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof *types; i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

int webroot_open(const char *path, size_t len, const char **ctype)
{
    char rel[PATH_MAX];
    size_t n = 0;

    if (!root_real || len == 0 || path[0] != '/')
        return -400;
    /* Decode, then judge the decoded path: "%2e%2e" is "..", "%2f" is "/". */
    for (size_t i = 0; i < len; i++) {
        char ch = path[i];
        if (ch == '%') {
            int hi = i + 2 < len ? hexval(path[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(path[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -400;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (ch == '\0' || ch == '\\')
            return -400;
        if (n + 1 >= sizeof rel - 16)
            return -404;
        rel[n++] = ch;
    }
    rel[n] = '\0';

    /* No segment may be "." or "..". */
    for (char *seg = rel; *seg;) {
        while (*seg == '/')
            seg++;
        char *end = strchr(seg, '/');
        size_t slen = end ? (size_t)(end - seg) : strlen(seg);
        if ((slen == 1 && seg[0] == '.') || (slen == 2 && seg[0] == '.' && seg[1] == '.'))
            return -404;
        seg += slen;
    }
    if (rel[n - 1] == '/')
        strcpy(rel + n, "index.html");

    char full[PATH_MAX * 2];
    snprintf(full, sizeof full, "%s%s", root_real, rel);
    char *real = realpath(full, NULL);
    if (!real)
        return -404;
    /* A symlink may lead anywhere: what counts is where the file really is. */
    int inside = strncmp(real, root_real, root_len) == 0 && real[root_len] == '/';
    struct stat st;
    /* Non-blocking: opening a FIFO or a device must not wait (only regular files are kept). */
    int fd = inside ? open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) : -1;
    if (fd < 0 && inside && (errno == EMFILE || errno == ENFILE)) {
        free(real);
        return -503; /* the file is there; the server is out of descriptors */
    }
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        fd = -1;
        char idx[PATH_MAX + 16];
        snprintf(idx, sizeof idx, "%s/index.html", real);
        free(real);
        real = realpath(idx, NULL);
        if (!real)
            return -404;
        inside = strncmp(real, root_real, root_len) == 0 && real[root_len] == '/';
        fd = inside ? open(real, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY) : -1;
        if (fd < 0 && inside && (errno == EMFILE || errno == ENFILE)) {
            free(real);
            return -503;
        }
    }
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0)
        *ctype = webroot_content_type(real);
    free(real);
    return fd >= 0 ? fd : -404;
}
