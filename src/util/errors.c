/* errors.c -- the one error table: names and descriptions of CSTACK_E*. */
#include <stdlib.h>

#include "cstack.h"

const char *cstack_errstr(int code)
{
    switch (code) {
#define CS_ERR_DESC_(name, val, wire, desc)                                                        \
    case val:                                                                                      \
        return desc;
        CSTACK_ERRNO_MAP(CS_ERR_DESC_)
#undef CS_ERR_DESC_
    }
    return "unknown error";
}

const char *cstack_errname(int code)
{
    switch (code) {
#define CS_ERR_NAME_(name, val, wire, desc)                                                        \
    case val:                                                                                      \
        return wire;
        CSTACK_ERRNO_MAP(CS_ERR_NAME_)
#undef CS_ERR_NAME_
    }
    return "error";
}

void cstack_free(void *p)
{
    free(p);
}
