/*
 * repair.c -- self-repair when a checkpoint's checksum differs from the
 * server's (docs/sync.md, "Self-repair").
 *
 * The merge converges by construction, so a difference means something
 * outside it went wrong: a program wrote the file behind cstack's back, a
 * bug, a restored backup.  A warning is no end state, so the client:
 *
 *  1. pulls again asking for the checksum of each model (`sums=1`,
 *     X-Cstack-Model-Sums) and compares each with its own: the models that
 *     differ are the ones to repair (all of them when the server's list is
 *     missing or cut off);
 *  2. forgets every row of those models, as a server's drops would, except
 *     rows written locally after the pending queue was last seen empty
 *     (they stay and win or lose by the normal merge once pushed), in one
 *     transaction (a crash leaves a device whose next checkpoint differs
 *     again, and repairs again);
 *  3. pulls from its cursor with resend=<those models> and echoes=1, so the
 *     server sends every row of those models this user may read whole,
 *     including what the device wrote itself, and only the usual changes of
 *     the others; rows the server does not send stay forgotten;
 *  4. compares again: still differing, the sync fails with
 *     CSTACK_EDIVERGED and the status says `diverged`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "store/store.h"
#include "sync/sync_ext.h"
#include "util/hex.h"

/* The server's checksum of `model` from "Model=<hex>,...": false when the
 * list does not name it. */
static bool server_model_sum(const cs_buf *list, const char *model, uint64_t *sum)
{
    size_t n = strlen(model);
    const char *p = list->data, *end = p ? p + list->len : NULL;
    while (p && p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        if ((size_t)(item_end - p) == n + 17 && memcmp(p, model, n) == 0 && p[n] == '=')
            return cs_hex_u64(p + n + 1, 16, sum) == 0;
        p = comma ? comma + 1 : end;
    }
    return false;
}

/* Flags the synced models (`synced`) and those whose checksums differ or
 * that the server's list lacks (`diff`); *count receives how many differ,
 * names their list. */
static int differing_models(cs_client *c, bool *synced, bool *diff, int64_t *count, char *names,
                            size_t cap)
{
    const cstack_schema *schema = cstack_schema_of(c->db);
    size_t nmodels = cstack_schema_model_count(schema);
    *count = 0;
    names[0] = '\0';
    for (size_t mi = 0; mi < nmodels; mi++) {
        const char *name = cstack_schema_model_name(schema, mi);
        uint64_t local = 0, server = 0;
        int rc = cs_sync_model_checksum(c->db, (int)mi, &synced[mi], &local);
        if (rc)
            return rc;
        bool listed = server_model_sum(&c->model_sums, name, &server);
        diff[mi] = synced[mi] && (!listed || local != server);
        if (diff[mi]) {
            size_t used = strlen(names);
            snprintf(names + used, cap - used, "%s%s", used ? "," : "", name);
            ++*count;
        }
    }
    return 0;
}

static void report_repair(cs_client *c, int64_t models, int64_t rows, const char *names)
{
    pthread_mutex_lock(&c->st_mu);
    c->st.repaired_models += models;
    c->st.repaired_rows += rows;
    snprintf(c->st.repaired_names, sizeof c->st.repaired_names, "%s", names);
    c->st.diverged = c->need_repair;
    pthread_mutex_unlock(&c->st_mu);
    cs_client_report(c, CSTACK_SYNC_EV_REPAIRED);
}

/* The flagged models' names into c->resend; false when they do not fit. */
static bool resend_list(cs_client *c, const bool *diff)
{
    const cstack_schema *schema = cstack_schema_of(c->db);
    size_t used = 0;
    c->resend[0] = '\0';
    for (size_t mi = 0; mi < cstack_schema_model_count(schema); mi++) {
        if (!diff[mi])
            continue;
        int n = snprintf(c->resend + used, sizeof c->resend - used, "%s%s", used ? "," : "",
                         cstack_schema_model_name(schema, mi));
        if (n < 0 || (size_t)n >= sizeof c->resend - used) {
            c->resend[0] = '\0';
            return false;
        }
        used += (size_t)n;
    }
    return true;
}

/* Steps 2-4 for the flagged models.  The pull keeps the device's cursor and
 * asks for the forgotten models again from the start (resend=): the other
 * models' rows are not downloaded again.  A list too long for a URL falls
 * back to pulling everything from cursor 0. */
static int repull(cs_client *c, const bool *diff, int64_t keep_after, int64_t *rows)
{
    bool listed = resend_list(c, diff);
    int rc = cs_state_forget_models(c, diff, keep_after, !listed, rows);
    if (rc)
        return rc;
    c->echoes = true;
    c->sum_valid = false;
    rc = cs_pull_all(c);
    c->resend[0] = '\0';
    return rc;
}

static int repair(cs_client *c)
{
    int64_t pending = 0, version = 0;
    int rc = cstack_upload_pending(c->db, &pending);
    rc = rc ? rc : cstack_sync_version(c->db, &version);
    if (rc)
        return cs_client_fail(c, rc, "repair: cannot read the upload queue: %s",
                              cstack_errmsg(c->db));
    if (pending > 0)
        return 0; /* the next checkpoint, once they are pushed, decides */
    /* 1: the server's checksum per model, at a cursor the device reaches
     * with the same pull. */
    c->want_sums = true;
    rc = cs_pull_all(c);
    c->want_sums = false;
    if (rc || !c->need_repair)
        return rc; /* it matches now, or could not be compared */
    size_t nmodels = cstack_schema_model_count(cstack_schema_of(c->db));
    bool *flags = calloc(2 * (nmodels ? nmodels : 1), sizeof *flags);
    if (!flags)
        return cs_client_fail(c, CSTACK_ENOMEM, "repair: out of memory");
    bool *synced = flags, *diff = flags + nmodels;
    int64_t count = 0, rows = 0;
    char names[128];
    rc = differing_models(c, synced, diff, &count, names, sizeof names);
    if (rc == 0 && count == 0) /* the total differs, no model does: all */
        memcpy(diff, synced, nmodels * sizeof *diff);
    if (rc)
        rc = cs_client_fail(c, rc, "repair: cannot compute the local checksums: %s",
                            cstack_errmsg(c->db));
    else
        rc = repull(c, diff, version, &rows);
    free(flags);
    if (rc)
        return rc;
    report_repair(c, count, rows, names);
    if (!c->need_repair)
        return 0;
    char why[sizeof c->st.last_error];
    pthread_mutex_lock(&c->st_mu);
    memcpy(why, c->st.last_error, sizeof why);
    pthread_mutex_unlock(&c->st_mu);
    return cs_client_fail(c, CSTACK_EDIVERGED,
                          "diverged: the data still differs from the server's after re-pulling "
                          "%s (%" PRId64 " rows forgotten): %.120s",
                          names[0] ? names : "every model", rows, why);
}

int cs_repair(cs_client *c)
{
    c->repairing = true;
    c->need_repair = false;
    int rc = repair(c);
    c->repairing = false;
    return rc;
}
