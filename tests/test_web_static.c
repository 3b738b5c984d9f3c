/* `cstack serve --web DIR` (src/server/static.c): which request paths open
 * which files, and that nothing outside DIR can be reached. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/server_int.h"

static char base[256], web[300], outside[300];

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    snprintf(base, sizeof base, "/tmp/cstack-static-XXXXXX");
    cr_assert_not_null(mkdtemp(base));
    snprintf(web, sizeof web, "%s/web", base);
    snprintf(outside, sizeof outside, "%s/secret.txt", base);
    char p[400];
    mkdir(web, 0700);
    snprintf(p, sizeof p, "%s/sub", web);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/index.html", web);
    put(p, "<!doctype html>");
    snprintf(p, sizeof p, "%s/cstack-wasm.wasm", web);
    put(p, "\0asm");
    snprintf(p, sizeof p, "%s/sub/index.html", web);
    put(p, "sub");
    put(outside, "secret");
    snprintf(p, sizeof p, "%s/link.txt", web);
    cr_assert_eq(symlink(outside, p), 0);
    snprintf(p, sizeof p, "%s/up", web);
    cr_assert_eq(symlink(base, p), 0);
}

static void teardown(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    cr_assert_eq(system(cmd), 0);
}

/* Opens `url`; returns the size (or -1 when refused) and the MIME type. */
static long open_url(const char *url, const char **mime)
{
    int fd = -1;
    size_t size = 0;
    *mime = NULL;
    int rc = cs_static_open(web, url, &fd, &size, mime);
    if (rc != 0) {
        cr_assert_eq(rc, CSTACK_ENOTFOUND, "%s: %d", url, rc);
        cr_assert_eq(fd, -1);
        return -1;
    }
    close(fd);
    return (long)size;
}

TestSuite(web_static, .init = setup, .fini = teardown);

Test(web_static, serves_index_html_for_the_root_and_folders_with_its_mime_type)
{
    const char *mime;
    cr_assert_eq(open_url("/", &mime), 15);
    cr_assert_str_eq(mime, "text/html; charset=utf-8");
    cr_assert_eq(open_url("/sub/", &mime), 3);
}

Test(web_static, serves_wasm_as_application_wasm)
{
    const char *mime;
    cr_assert_gt(open_url("/cstack-wasm.wasm", &mime), -1);
    cr_assert_str_eq(mime, "application/wasm");
    cr_assert_str_eq(cs_static_mime("x/cstack.js"), "text/javascript; charset=utf-8");
    cr_assert_str_eq(cs_static_mime("x.v1/noext"), "application/octet-stream");
}

Test(web_static, refuses_dot_dot_and_symlinks_out_of_the_folder)
{
    const char *mime;
    cr_assert_eq(open_url("/../secret.txt", &mime), -1);
    cr_assert_eq(open_url("/sub/../../secret.txt", &mime), -1);
    cr_assert_eq(open_url("/link.txt", &mime), -1, "a symlinked file");
    cr_assert_eq(open_url("/up/secret.txt", &mime), -1, "through a symlinked folder");
    cr_assert_eq(open_url("/sub\\..\\index.html", &mime), -1);
    cr_assert_eq(open_url("relative.html", &mime), -1);
}

Test(web_static, refuses_missing_files_folders_and_control_characters)
{
    const char *mime;
    cr_assert_eq(open_url("/missing.js", &mime), -1);
    cr_assert_eq(open_url("/sub", &mime), -1, "a folder without a slash");
    cr_assert_eq(open_url("/index.html\n", &mime), -1);
}
