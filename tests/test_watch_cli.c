/* test_watch_cli.c -- the `cstack watch` contract (docs/cli.md, docs/live.md):
 * one JSON line (the envelope response) at start, one line each time the
 * result changes, whether another process wrote with `cstack call` or
 * `cstack sync` merged rows from a server, until SIGINT (exit 0); bad
 * command lines exit 2, a query that is not a read request exits 1. */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cstack.h"
#include "cstack_server.h"
#include "support.h"

#define SECRET "watch-cli-secret"

static const char SCHEMA[] = "auth User {\n"
                             "  id String\n"
                             "}\n"
                             "model Note {\n"
                             "  id    String @id\n"
                             "  title String\n"
                             "  @@allow('all', auth() != null)\n"
                             "}\n";

static char *dir;
static char schema_path[512], db_path[512];

static void setup(void)
{
    dir = t_tmpdir();
    t_write_file(schema_path, sizeof schema_path, dir, "notes.cstack", SCHEMA);
    snprintf(db_path, sizeof db_path, "%s/notes.db", dir);
}

static void teardown(void)
{
    free(dir);
}

TestSuite(watch_cli, .init = setup, .fini = teardown);

/* A running `cstack watch` with its stdout on a pipe. */
typedef struct watcher {
    pid_t pid;
    int fd;
    char buf[8192];
    size_t n;
} watcher;

static void spawn_watch(watcher *w, const char *query)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    w->n = 0;
    w->pid = fork();
    cr_assert_geq(w->pid, 0);
    if (w->pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(CSTACK_CLI, CSTACK_CLI, "watch", "--schema", schema_path, "--db", db_path,
              "--query", query, "--throttle", "0", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    w->fd = p[0];
}

/* The next line of its output (without '\n'), waiting up to 5 s; NULL if
 * none came.  The returned string lives until the next call. */
static const char *next_line(watcher *w)
{
    static char line[8192];
    for (int waited = 0; waited < 5000;) {
        char *nl = memchr(w->buf, '\n', w->n);
        if (nl) {
            size_t len = (size_t)(nl - w->buf);
            memcpy(line, w->buf, len);
            line[len] = 0;
            memmove(w->buf, nl + 1, w->n - len - 1);
            w->n -= len + 1;
            return line;
        }
        struct pollfd pf = {w->fd, POLLIN, 0};
        if (poll(&pf, 1, 100) == 0) {
            waited += 100;
            continue;
        }
        ssize_t r = read(w->fd, w->buf + w->n, sizeof w->buf - 1 - w->n);
        if (r <= 0)
            return NULL;
        w->n += (size_t)r;
    }
    return NULL;
}

/* Interrupts it and returns its exit status (-1 when it did not exit). */
static int interrupt(watcher *w)
{
    kill(w->pid, SIGINT);
    int status = 0;
    for (int i = 0; i < 100; i++) {
        if (waitpid(w->pid, &status, WNOHANG) == w->pid) {
            close(w->fd);
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(w->pid, SIGKILL);
    waitpid(w->pid, &status, 0);
    close(w->fd);
    return -1;
}

static void expect_line(watcher *w, const char *want)
{
    const char *l = next_line(w);
    if (!l || strcmp(l, want) != 0) {
        char got[256];
        snprintf(got, sizeof got, "%.200s", l ? l : "(no line)");
        interrupt(w);
        cr_assert_fail("got %s, wanted %s", got, want);
    }
}

static const char COUNT[] = "{\"model\":\"Note\",\"kind\":\"count\"}";

Test(watch_cli, prints_the_result_at_start_and_after_a_cstack_call_write_then_exits_0_on_sigint)
{
    watcher w;
    spawn_watch(&w, COUNT);
    expect_line(&w, "{\"status\":\"ok\",\"data\":{\"count\":0}}");
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "echo '{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":"
             "{\"id\":\"1\",\"title\":\"a\"}}}' | '%s' call --schema '%s' --db '%s' 2>&1",
             CSTACK_CLI, schema_path, db_path);
    cr_assert_eq(t_run(cmd, &out), 0, "%s", out);
    free(out);
    expect_line(&w, "{\"status\":\"ok\",\"data\":{\"count\":1}}");
    /* A write that leaves the result as it was prints nothing. */
    snprintf(cmd, sizeof cmd,
             "echo '{\"model\":\"Note\",\"kind\":\"update\",\"payload\":{\"where\":{\"id\":\"1\"},"
             "\"data\":{\"title\":\"b\"}}}' | '%s' call --schema '%s' --db '%s' 2>&1",
             CSTACK_CLI, schema_path, db_path);
    cr_assert_eq(t_run(cmd, &out), 0, "%s", out);
    free(out);
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
    cr_assert_eq(interrupt(&w), 0, "cstack watch did not exit 0 on SIGINT");
    cr_assert_eq(w.n, 0, "an unchanged result was printed: %.*s", (int)w.n, w.buf);
}

Test(watch_cli, rows_merged_by_cstack_sync_show_up)
{
    /* A server, and another device that puts a note on it. */
    char server_db[600], device_db[600], url[64], *tok = NULL, err[512] = "";
    snprintf(server_db, sizeof server_db, "%s/server.db", dir);
    snprintf(device_db, sizeof device_db, "%s/device.db", dir);
    cstack_schema *s = t_schema(SCHEMA);
    cstack_server_config cfg = {.schema = s, .db_path = server_db, .jwt_secret = SECRET};
    cstack_server *srv = NULL;
    int rc = cstack_server_start(&cfg, &srv, err, sizeof err);
    cr_assert_eq(rc, 0, "server: %s", err);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cstack_server_port(srv));
    cr_assert_eq(cstack_server_mint_token(SECRET, "u1", NULL, 0, time(NULL), 3600, &tok, err,
                                          sizeof err),
                 0, "%s", err);
    cstack *device = NULL;
    cr_assert_eq(cstack_open(s, device_db, NULL, &device), 0);
    cr_assert_eq(cstack_bootstrap(device, NULL), 0, "%s", cstack_errmsg(device));
    const char *create = "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":"
                         "{\"id\":\"s1\",\"title\":\"synced\"}}}";
    char *resp = NULL;
    cr_assert_eq(cstack_envelope_call(device, create, strlen(create), &resp, NULL), 0);
    cstack_free(resp);
    cstack_sync_options o = {.url = url, .token = tok};
    cstack_sync_status st;
    cr_assert_eq(cstack_sync_run_once(device, &o, NULL, NULL, &st), 0, "%s", cstack_errmsg(device));

    watcher w;
    spawn_watch(&w, "{\"model\":\"Note\",\"kind\":\"find_many\",\"payload\":"
                    "{\"select\":[\"title\"]}}");
    expect_line(&w, "{\"status\":\"ok\",\"data\":[]}");
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' sync --once --schema '%s' --db '%s' --server '%s' "
                              "--token '%s' 2>&1",
             CSTACK_CLI, schema_path, db_path, url, tok);
    int src = t_run(cmd, &out);
    cr_assert_eq(src, 0, "cstack sync: %s", out);
    free(out);
    expect_line(&w, "{\"status\":\"ok\",\"data\":[{\"title\":\"synced\"}]}");
    cr_assert_eq(interrupt(&w), 0);
    cstack_close(device);
    cstack_server_stop(srv);
    cstack_schema_free(s);
    cstack_free(tok);
}

Test(watch_cli, a_write_query_exits_1_and_a_missing_query_exits_2)
{
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "'%s' watch --schema '%s' --db '%s' --query "
             "'{\"model\":\"Note\",\"kind\":\"delete_many\"}' 2>&1",
             CSTACK_CLI, schema_path, db_path);
    cr_assert_eq(t_run(cmd, &out), 1, "%s", out);
    cr_assert_not_null(strstr(out, "read request"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' watch --schema '%s' --db '%s' 2>&1", CSTACK_CLI,
             schema_path, db_path);
    cr_assert_eq(t_run(cmd, &out), 2, "%s", out);
    cr_assert_not_null(strstr(out, "--query"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' watch --help", CSTACK_CLI);
    cr_assert_eq(t_run(cmd, &out), 0);
    cr_assert_not_null(strstr(out, "usage: cstack watch --schema FILE --db DB --query JSON"));
    free(out);
}
