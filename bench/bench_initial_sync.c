/*
 * bench_initial_sync.c -- a large initial sync through the server, with the
 * peak memory of both sides (issue 9, "Paged pulls and streams").
 *
 *   1. A child process builds the server's database directly: a cstack
 *      database of the served schema (the server's store is one) holding N
 *      rows (default 1,000,000) of about 330 bytes, written in transactions
 *      of --batch rows (default 10,000: one server version each).
 *   2. A second child serves it (cstack_server_start, the same server as
 *      `cstack serve`), so its memory is its own.
 *   3. A third child, a fresh device, runs cstack_sync_run_once against it:
 *      the initial sync, paged.
 *
 * It prints the time, rows/s, the client's and the server's peak resident
 * memory (VmHWM of /proc/PID/status), checks the device's row count and
 * checksum against the server's, and prints the targets: client <= 256 MiB,
 * server <= 512 MiB.  It reports and does not fail on a missed target (exit
 * status 0 unless something errors).
 *
 * usage: bench_initial_sync [--rows N] [--batch B] [--page-rows R]
 *                           [--page-mib M] [--dir D]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "cstack.h"
#include "cstack_server.h"

#define SECRET "bench-secret"
#define CLIENT_TARGET_MIB 256.0
#define SERVER_TARGET_MIB 512.0

static const char SCHEMA[] = "auth User {\n"
                             "  id String\n"
                             "}\n"
                             "model Record {\n"
                             "  id       String   @id\n"
                             "  owner    String\n"
                             "  title    String\n"
                             "  body     String\n"
                             "  tags     String\n"
                             "  qty      Int\n"
                             "  score    Float\n"
                             "  done     Boolean\n"
                             "  at       DateTime\n"
                             "  @@allow('all', auth() != null)\n"
                             "}\n";

typedef struct opts {
    size_t rows, batch, page_rows, page_mib;
    char dir[256];
    bool own_dir;
} opts;

static cstack_schema *load_schema(void)
{
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    if (cstack_schema_parse("bench.cstack", SCHEMA, strlen(SCHEMA), &s, &d) != 0)
        die("schema", "does not parse");
    cstack_diags_free(d);
    return s;
}

static cstack *open_db(const char *dir, const char *name, cstack_schema *s)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cstack *db = NULL;
    if (cstack_open(s, path, NULL, &db) != 0 || cstack_bootstrap(db, NULL) != 0)
        die(path, db ? cstack_errmsg(db) : "cannot open");
    return db;
}

/* VmHWM of a process, in MiB (-1 when unreadable). */
static double peak_of(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    double hwm = -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return hwm;
    while (fgets(line, sizeof line, f)) {
        long kb = 0;
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            hwm = (double)kb / 1024.0;
    }
    fclose(f);
    return hwm;
}

static void wait_ok(pid_t pid, const char *what)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die(what, "the child process failed");
}

/* ---- 1. the server's database ------------------------------------------------ */

static void fill(const opts *o)
{
    cstack_schema *s = load_schema();
    cstack *db = open_db(o->dir, "server.db", s);
    static const char body[] =
        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
        "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud "
        "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.";
    enum { CHUNK = 1000 };
    cstack_field_value f[CHUNK][9];
    cstack_data rows[CHUNK];
    char id[CHUNK][40], title[CHUNK][48];
    for (size_t base = 0; base < o->rows;) {
        if (cstack_begin(db) != 0)
            die("begin", cstack_errmsg(db));
        size_t end = base + o->batch < o->rows ? base + o->batch : o->rows;
        while (base < end) {
            size_t n = end - base < CHUNK ? end - base : CHUNK;
            for (size_t i = 0; i < n; i++) {
                size_t k = base + i;
                snprintf(id[i], sizeof id[i], "%08zx-0000-4000-8000-%012zx", k * 2654435761u % 0xffffffffu, k);
                snprintf(title[i], sizeof title[i], "record number %zu of the benchmark", k);
                f[i][0] = (cstack_field_value){"id", cstack_v_text(id[i])};
                f[i][1] = (cstack_field_value){"owner", cstack_v_text("owner-of-everything")};
                f[i][2] = (cstack_field_value){"title", cstack_v_text(title[i])};
                f[i][3] = (cstack_field_value){"body", cstack_v_text(body)};
                f[i][4] = (cstack_field_value){"tags", cstack_v_text("alpha,beta,gamma")};
                f[i][5] = (cstack_field_value){"qty", cstack_v_int((int64_t)(k % 1000))};
                f[i][6] = (cstack_field_value){"score", cstack_v_float((double)k * 0.25)};
                f[i][7] = (cstack_field_value){"done", cstack_v_bool(k % 2)};
                f[i][8] = (cstack_field_value){"at", cstack_v_text("2026-11-26T10:40:21.123456Z")};
                rows[i] = (cstack_data){f[i], 9};
            }
            int64_t count = 0;
            if (cstack_create_many(db, "Record", rows, n, &count) != 0)
                die("create_many", cstack_errmsg(db));
            base += n;
        }
        if (cstack_commit(db) != 0)
            die("commit", cstack_errmsg(db));
    }
    cstack_close(db);
    cstack_schema_free(s);
}

/* ---- 2. the server ------------------------------------------------------------ */

typedef struct server {
    pid_t pid;
    int port;
    int ctl; /* closing it tells the child to stop and exit */
} server;

static server serve(const opts *o)
{
    int up[2], ctl[2];
    if (pipe(up) != 0 || pipe(ctl) != 0)
        die("pipe", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    if (pid == 0) {
        close(up[0]);
        close(ctl[1]);
        char db[512];
        snprintf(db, sizeof db, "%s/server.db", o->dir);
        cstack_schema *s = load_schema();
        cstack_server_config cfg = {.schema = s,
                                    .db_path = db,
                                    .jwt_secret = SECRET,
                                    .pull_page_rows = o->page_rows,
                                    .pull_page_bytes = o->page_mib << 20};
        cstack_server *srv = NULL;
        char err[512] = "";
        int rc = cstack_server_start(&cfg, &srv, err, sizeof err);
        int port = rc ? -1 : cstack_server_port(srv);
        if (write(up[1], &port, sizeof port) != (ssize_t)sizeof port || rc) {
            fprintf(stderr, "bench_initial_sync: server: %s\n", err);
            _exit(1);
        }
        char c;
        while (read(ctl[0], &c, 1) < 0 && errno == EINTR)
            ;
        cstack_server_stop(srv);
        cstack_schema_free(s);
        _exit(0);
    }
    close(up[1]);
    close(ctl[0]);
    server sv = {pid, -1, ctl[1]};
    if (read(up[0], &sv.port, sizeof sv.port) != (ssize_t)sizeof sv.port || sv.port <= 0)
        die("server", "did not start");
    close(up[0]);
    return sv;
}

/* ---- 3. the device ------------------------------------------------------------- */

typedef struct outcome {
    int rc;
    int checksum_ok;
    int64_t rows;
    int64_t pages;
    double seconds;
    double first_page_s; /* until the first page was merged */
    double peak_mib;
} outcome;

typedef struct progress {
    double start, first;
    int64_t pages;
} progress;

static void on_status(const cstack_sync_status *st, void *ctx)
{
    progress *p = ctx;
    if (st->event == CSTACK_SYNC_EV_APPLIED) {
        if (!p->first)
            p->first = now_ms();
        p->pages++;
    }
}

static outcome sync_device(const opts *o, int port)
{
    int up[2];
    if (pipe(up) != 0)
        die("pipe", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    if (pid == 0) {
        close(up[0]);
        cstack_schema *s = load_schema();
        cstack *db = open_db(o->dir, "device.db", s);
        char url[64], *tok = NULL, err[256];
        snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
        if (cstack_server_mint_token(SECRET, "reader", NULL, 0, time(NULL), 3600, &tok, err,
                                     sizeof err) != 0)
            die("token", err);
        cstack_sync_options so = {.url = url, .token = tok, .request_timeout_ms = 600000};
        cstack_sync_status st;
        progress p = {.start = now_ms()};
        outcome out = {0};
        out.rc = cstack_sync_run_once(db, &so, on_status, &p, &st);
        out.seconds = (now_ms() - p.start) / 1e3;
        out.first_page_s = p.first ? (p.first - p.start) / 1e3 : -1;
        out.pages = p.pages;
        out.checksum_ok = st.checksum_ok;
        if (out.rc)
            fprintf(stderr, "bench_initial_sync: device: %s\n", st.last_error);
        cstack_count(db, "Record", NULL, &out.rows);
        out.peak_mib = peak_of(getpid());
        if (write(up[1], &out, sizeof out) != (ssize_t)sizeof out)
            _exit(1);
        cstack_close(db);
        cstack_free(tok);
        cstack_schema_free(s);
        _exit(0);
    }
    close(up[1]);
    outcome out = {.rc = -1};
    if (read(up[0], &out, sizeof out) != (ssize_t)sizeof out)
        die("device", "reported nothing");
    close(up[0]);
    wait_ok(pid, "device");
    return out;
}

/* ---- main ------------------------------------------------------------------------ */

static const char USAGE[] =
    "usage: bench_initial_sync [--rows N] [--batch B] [--page-rows R] [--page-mib M] [--dir D]\n"
    "\n"
    "An initial sync of N rows (default 1000000) of about 330 bytes through a real\n"
    "server (a child process) to a fresh device (another child process): time, rows/s,\n"
    "the peak resident memory of both, and the device's row count and checksum\n"
    "against the server's.  Targets: client <= 256 MiB, server <= 512 MiB.\n"
    "  --batch B      rows per server transaction (version) when building (10000)\n"
    "  --page-rows R  the server's pull_page_rows (default: the server's default)\n"
    "  --page-mib M   the server's pull_page_bytes in MiB (default: the server's)\n"
    "  --dir D        where the databases go (default: a new temporary directory,\n"
    "                 removed at the end)\n";

static size_t count_arg(const char *v, const char *name)
{
    char *end = NULL;
    unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    if (!v || !*v || *end || n == 0 || n > 100000000ull)
        die(name, "needs a positive count");
    return (size_t)n;
}

int main(int argc, char **argv)
{
    bench_name = "bench_initial_sync";
    opts o = {.rows = 1000000, .batch = 10000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(USAGE, stdout);
            return 0;
        } else if (strcmp(a, "--rows") == 0) {
            o.rows = count_arg(v, a), i++;
        } else if (strcmp(a, "--batch") == 0) {
            o.batch = count_arg(v, a), i++;
        } else if (strcmp(a, "--page-rows") == 0) {
            o.page_rows = count_arg(v, a), i++;
        } else if (strcmp(a, "--page-mib") == 0) {
            o.page_mib = count_arg(v, a), i++;
        } else if (strcmp(a, "--dir") == 0 && v) {
            snprintf(o.dir, sizeof o.dir, "%s", v), i++;
        } else {
            fputs(USAGE, stderr);
            return 2;
        }
    }
    if (!o.dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(o.dir, sizeof o.dir, "%s/bench_initial_sync.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(o.dir))
            die("mkdtemp", strerror(errno));
        o.own_dir = true;
    }
    double t0 = now_ms();
    fflush(NULL);
    pid_t filler = fork();
    if (filler == 0) {
        fill(&o);
        _exit(0);
    }
    wait_ok(filler, "building the server's database");
    printf("server database: %zu rows of about 330 bytes in transactions of %zu, built in %.1f s\n",
           o.rows, o.batch, (now_ms() - t0) / 1e3);
    server sv = serve(&o);
    outcome out = sync_device(&o, sv.port);
    double server_peak = peak_of(sv.pid);
    close(sv.ctl);
    wait_ok(sv.pid, "server");
    if (out.rc)
        die("initial sync", "failed");
    printf("initial sync: %.2f s, %.0f rows/s, %" PRId64 " pages merged (first after %.2f s)\n",
           out.seconds, (double)out.rows / out.seconds, out.pages, out.first_page_s);
    printf("  rows on the device: %" PRId64 " of %zu, checksum %s the server's\n", out.rows,
           o.rows, out.checksum_ok == 1 ? "matches" : "DOES NOT match");
    printf("  client peak RSS %.0f MiB (target <= %.0f MiB) %s\n", out.peak_mib,
           CLIENT_TARGET_MIB, out.peak_mib <= CLIENT_TARGET_MIB ? "ok" : "MISSED");
    printf("  server peak RSS %.0f MiB (target <= %.0f MiB) %s\n", server_peak,
           SERVER_TARGET_MIB, server_peak <= SERVER_TARGET_MIB ? "ok" : "MISSED");
    if (o.own_dir) {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", o.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_initial_sync: could not remove %s\n", o.dir);
    }
    return out.rows == (int64_t)o.rows && out.checksum_ok == 1 ? 0 : 1;
}
