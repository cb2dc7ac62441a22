#include "paths.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[PATH_MAX];
static char default_script[PATH_MAX + 32];
static char default_web[PATH_MAX + 32];

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Fills data_dir and the two defaults; the first call does the work. */
static void resolve(void)
{
    if (data_dir[0])
        return;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (!slash) {
        /* No /proc: fall back to the current directory, as before. */
        strcpy(data_dir, ".");
    } else {
        *slash = '\0';
        char probe[PATH_MAX + 32];
        snprintf(probe, sizeof probe, "%s/../scripts/chat.lua", exe);
        if (is_file(probe))
            snprintf(data_dir, sizeof data_dir, "%.*s/..", PATH_MAX - 8, exe);
        else
            snprintf(data_dir, sizeof data_dir, "%.*s/../share/confab", PATH_MAX - 32, exe);
        /* Show "/work/confab" rather than "/work/confab/build/.." in logs and --help. */
        char *real = realpath(data_dir, NULL);
        if (real && strlen(real) < sizeof data_dir)
            strcpy(data_dir, real);
        free(real);
    }
    snprintf(default_script, sizeof default_script, "%s/scripts/chat.lua", data_dir);
    snprintf(default_web, sizeof default_web, "%s/web", data_dir);
}

const char *paths_data_dir(void)
{
    resolve();
    return data_dir;
}

const char *paths_default_script(void)
{
    resolve();
    return default_script;
}

const char *paths_default_web(void)
{
    resolve();
    return default_web;
}

char *paths_script_page(const char *script)
{
    size_t len = strlen(script);
    size_t stem = len;
    if (len > 4 && strcmp(script + len - 4, ".lua") == 0)
        stem = len - 4;
    char *page = malloc(stem + sizeof ".web");
    if (!page)
        return NULL;
    memcpy(page, script, stem);
    memcpy(page + stem, ".web", sizeof ".web");
    if (is_dir(page))
        return page;
    free(page);
    return NULL;
}
