/* checksum.c -- a checksum of the visible state, order-independent.
 *
 * Server checkpoints carry the checksum of what a user may see; the client
 * computes the same over its own rows to prove it holds exactly that.  Each
 * visible row contributes FNV-1a-64 of "Model\0<row JSON>" (the canonical
 * JSON of cstack_row_json), summed modulo 2^64, so neither side needs any
 * particular order. */
#include <stdlib.h>
#include <string.h>

#include "sync/sync_ext.h"
#include "util/hash.h"

uint64_t cs_row_checksum(const char *model, const char *json, size_t len)
{
    /* The model's name with its NUL, then the row. */
    return cs_fnv1a64(cs_fnv1a64(CS_FNV64_INIT, model, strlen(model) + 1), json, len);
}

#define PAGE 4096

/* Adds the checksums of one model's rows, a page at a time (keyset on the
 * primary key). */
static int model_sum(cstack *db, const cs_model *m, uint64_t *sum)
{
    cstack_field_value key[16];
    cstack_query q = {.take = PAGE};
    cstack_rows *prev = NULL;
    int rc = 0;
    for (;;) {
        cstack_rows *rows = NULL;
        rc = cstack_find_many(db, m->name, &q, &rows);
        cstack_rows_free(prev);
        prev = NULL;
        if (rc)
            break;
        size_t n = cstack_rows_count(rows);
        for (size_t i = 0; i < n && !rc; i++) {
            char *json = cstack_row_json(cstack_rows_get(rows, i));
            if (!json) {
                rc = CSTACK_ENOMEM;
                break;
            }
            *sum += cs_row_checksum(m->name, json, strlen(json));
            free(json);
        }
        if (rc || n < PAGE) {
            cstack_rows_free(rows);
            break;
        }
        /* Continue after the last row of this page; its values stay valid
         * while `rows` lives (freed after the next page is read). */
        const cstack_row *last = cstack_rows_get(rows, n - 1);
        for (size_t k = 0; k < m->npk && k < 16; k++) {
            key[k].field = m->fields[m->pk[k]].name;
            cstack_row_get(last, key[k].field, &key[k].value);
        }
        q.cursor = (cstack_data){key, m->npk};
        prev = rows;
    }
    return rc;
}

int cstack_sync_checksum(cstack *db, uint64_t *sum)
{
    cs_enter(db);
    cs_sync *s = NULL;
    int rc = cs_sync_require(db, &s);
    if (rc || !sum)
        return rc ? rc : CSTACK_EMISUSE;
    *sum = 0;
    for (size_t i = 0; !rc && i < s->schema->nmodels; i++)
        if (s->models[i].synced)
            rc = model_sum(db, &s->schema->models[i], sum);
    return rc;
}

int cs_sync_model_checksum(cstack *db, int model, bool *synced, uint64_t *sum)
{
    cs_enter(db);
    cs_sync *s = NULL;
    int rc = cs_sync_require(db, &s);
    if (rc || !sum || !synced || model < 0 || (size_t)model >= s->schema->nmodels)
        return rc ? rc : CSTACK_EMISUSE;
    *sum = 0;
    *synced = s->models[model].synced;
    return *synced ? model_sum(db, &s->schema->models[model], sum) : 0;
}
