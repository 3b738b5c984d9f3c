/*
 * store_sqlite_precheck.c -- a push its merge would refuse, found before the
 * merge.
 *
 * The merge checks the write policies on every row it changes, so a batch
 * refused at its last row used to be refused after merging all the others
 * under the write lock, then rolled back: a 60 MiB batch held the lock for
 * 3.8 s to change nothing.  Before taking the lock, the push now reads its
 * rows in the read snapshot it already has (for the site's owner) and
 * refuses the batch when one row is refused whatever commits between the
 * snapshot and the merge:
 *
 *   - the row is alive and new to the server: no clock row, so the merge
 *     creates it (in its table or parked) from exactly the pushed values,
 *     and checks the create rules on them (docs/server.md, push semantics);
 *   - every column field is in the row (the merge leaves a missing one
 *     NULL; a device always sends all of them for a new row, but a value
 *     that is not known is not judged here);
 *   - the model's create rules read only the row and auth(), so nothing
 *     else in the database, not even earlier rows of the same batch, can
 *     change their answer.
 *
 * A refusal found here is one the merge would make on the snapshot's state,
 * and a refused push changes nothing, so answering it at the snapshot is a
 * valid order of the concurrent pushes.  A row that exists on the server,
 * deletions, and rules through relations are left to the merge, which
 * stays the authoritative check; only rows the rules refuse cost a clock
 * lookup, so an accepted batch pays one prepared policy statement per row.
 */
#include <stdlib.h>
#include <string.h>

#include "server/policy.h"
#include "server/store_int.h"

typedef struct precheck {
    cs_srv_store *st;
    cs_conn *c;
    const cs_srv_push *req;
    /* Per model: its create check once opened, and whether it is usable
     * (0 not yet decided, 1 local create rules, -1 not checked here). */
    cs_policy_check **checks;
    signed char *usable;
    cstack_value *vals; /* the row's values by field (largest model) */
    bool *present;
    bool refused;
    char *msg;
    size_t cap;
} precheck;

/* The model's create check, opened on first use; NULL when the model's
 * create rules are not decided by the row alone. */
static int check_of(precheck *p, int mi, cs_policy_check **out)
{
    const cs_model *m = &p->st->schema->models[mi];
    *out = NULL;
    if (!p->usable[mi])
        p->usable[mi] = !m->local && cs_policy_model_is_local(m, CS_POL_CREATE) ? 1 : -1;
    if (p->usable[mi] < 0)
        return 0;
    int rc = 0;
    if (!p->checks[mi])
        rc = cs_policy_values_check_open(p->st->schema, p->c->db, p->req->auth, mi,
                                         CS_POL_CREATE, &p->checks[mi]);
    *out = p->checks[mi];
    return rc;
}

/* The row's values by field, from its key and columns; false when a column
 * field is missing (the merged row is then not known here). */
static bool row_values(precheck *p, const cs_model *m, const cs_cs_row *row)
{
    memset(p->present, 0, m->nfields * sizeof *p->present);
    for (size_t i = 0; i < m->npk && i < row->npk; i++) {
        p->vals[m->pk[i]] = cs_cs_value_get(&row->pk[i]);
        p->present[m->pk[i]] = true;
    }
    for (size_t i = 0; i < row->ncols; i++) {
        p->vals[row->cols[i].field] = cs_cs_value_get(&row->cols[i].value);
        p->present[row->cols[i].field] = true;
    }
    for (size_t f = 0; f < m->nfields; f++)
        if (cs_field_is_column(&m->fields[f]) && !p->present[f])
            return false;
    return true;
}

static int precheck_row(void *ctx, const cs_cs_row *row)
{
    precheck *p = ctx;
    const cs_model *m = &p->st->schema->models[row->model];
    cs_policy_check *chk = NULL;
    /* A deletion (or a drop) is checked on the state before the batch,
     * under the lock: the row may change until then. */
    int rc = row->cl & 1 ? check_of(p, row->model, &chk) : 0;
    if (rc || !chk || !row_values(p, m, row))
        return rc;
    bool allowed = false;
    rc = cs_policy_check_values(chk, p->vals, &allowed);
    if (rc || allowed)
        return rc;
    /* Refused as a new row: only one the server has never had is one. */
    uint64_t cl = 0;
    cs_clk clk;
    cs_clk_init(&clk);
    rc = cs_clkrow_load(p->c, &cs_sync_of(p->st->db)->models[row->model], m, row->pk, &cl, &clk);
    cs_clk_free(&clk);
    if (rc || cl)
        return rc;
    cs_srv_refusal(p->msg, p->cap, m, row->pk, p->req->auth, CS_CHECK_CREATE, CS_CHECK_AFTER);
    p->refused = true;
    return cs_err(CSTACK_EVALIDATION, "%s", p->msg);
}

int cs_srv_precheck(cs_srv_store *st, cs_conn *c, const cs_srv_push *req, bool *refused,
                    char *msg, size_t cap)
{
    const cstack_schema *s = st->schema;
    size_t maxf = 1;
    for (size_t i = 0; i < s->nmodels; i++)
        if (s->models[i].nfields > maxf)
            maxf = s->models[i].nfields;
    precheck p = {.st = st, .c = c, .req = req, .msg = msg, .cap = cap};
    p.checks = calloc(s->nmodels ? s->nmodels : 1, sizeof *p.checks);
    p.usable = calloc(s->nmodels ? s->nmodels : 1, sizeof *p.usable);
    p.vals = calloc(maxf, sizeof *p.vals);
    p.present = calloc(maxf, sizeof *p.present);
    int rc = p.checks && p.usable && p.vals && p.present
                 ? cs_srv_each_row(s, req, precheck_row, &p)
                 : cs_err(CSTACK_ENOMEM, "out of memory");
    /* The statements are the snapshot connection's: finalized before the
     * caller hands it back. */
    for (size_t i = 0; p.checks && i < s->nmodels; i++)
        cs_policy_check_close(p.checks[i]);
    free(p.checks);
    free(p.usable);
    free(p.vals);
    free(p.present);
    *refused = p.refused;
    return rc;
}
