/*
 * static.c -- `cstack serve --web DIR`: DIR's files at `/` (the browser
 * build and its demo, docs/web.md).  Only regular files strictly inside DIR
 * are served: a path with `..`, a backslash or a control character is
 * refused, and the file's resolved path must be the joined path itself, so
 * no symbolic link (of the file or of a folder on the way) can lead
 * outside.  The HTTP side is in http.c; this file only resolves and opens.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/server_int.h"

/* The largest file served: the wasm and the demo are far smaller. */
#define STATIC_MAX_BYTES ((off_t)256 << 20)

static const struct {
    const char *ext;
    const char *mime;
} MIME[] = {
    {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"}, {".wasm", "application/wasm"},
    {".css", "text/css; charset=utf-8"}, {".json", "application/json"},
    {".ts", "text/plain; charset=utf-8"}, {".cstack", "text/plain; charset=utf-8"},
    {".svg", "image/svg+xml"}, {".png", "image/png"}, {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
};

const char *cs_static_mime(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof MIME / sizeof MIME[0]; i++)
            if (strcmp(dot, MIME[i].ext) == 0)
                return MIME[i].mime;
    return "application/octet-stream";
}

static bool safe_url(const char *url)
{
    if (url[0] != '/' || strstr(url, "..") || strchr(url, '\\'))
        return false;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

int cs_static_open(const char *dir, const char *url, int *fd_out, size_t *size_out,
                   const char **mime_out)
{
    *fd_out = -1;
    if (!dir || !url || !safe_url(url) || strlen(url) > 1024)
        return CSTACK_ENOTFOUND;
    char root[PATH_MAX], joined[PATH_MAX + 1100], real[PATH_MAX];
    if (!realpath(dir, root))
        return CSTACK_ENOTFOUND;
    size_t n = strlen(url);
    snprintf(joined, sizeof joined, "%s%s%s", root, url, url[n - 1] == '/' ? "index.html" : "");
    if (!realpath(joined, real) || strcmp(real, joined) != 0)
        return CSTACK_ENOTFOUND;
    int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return CSTACK_ENOTFOUND;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STATIC_MAX_BYTES) {
        close(fd);
        return CSTACK_ENOTFOUND;
    }
    *fd_out = fd;
    *size_out = (size_t)st.st_size;
    *mime_out = cs_static_mime(real);
    return 0;
}
