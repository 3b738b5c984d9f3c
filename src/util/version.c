/* version.c -- cstack_version(): the version this library was built as. */
#include "cstack.h"

const char *cstack_version(void)
{
    return CSTACK_VERSION;
}
