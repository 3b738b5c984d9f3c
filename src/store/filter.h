/* filter.h -- the filter tree behind the public cstack_filter handle. */
#ifndef CS_FILTER_H
#define CS_FILTER_H

#include <stdbool.h>

#include "cstack.h"

typedef enum cs_filter_kind {
    CS_F_CMP,  /* field op vals[0] */
    CS_F_IN,   /* field [NOT] IN vals */
    CS_F_NULL, /* field IS [NOT] NULL (negate: IS NOT) */
    CS_F_AND,
    CS_F_OR,
    CS_F_NOT,
    CS_F_REL   /* relation relop kids[0] (optional) */
} cs_filter_kind;

struct cstack_filter {
    cs_filter_kind kind;
    char *field;
    cstack_op op;
    int flags;
    bool negate;
    cstack_relop relop;
    cstack_value *vals;
    char **owned; /* copies of text/blob values, one per value (or NULL) */
    size_t nvals;
    cstack_filter **kids;
    size_t nkids;
};

#endif
