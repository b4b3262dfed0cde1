/* test_probe.c — a probe's verdict (engine/probe.c): the status comes from validora/record.h's
 * one table, by enum or by name; an unknown status or a reason that is not one lower-case
 * word is refused and leaves the verdict as it was. */
#include <string.h>

#include "probe.h"
#include "check.h"

static void test_decide(void)
{
    vd_probe p;
    vd_probe_init(&p);
    CHECK(p.status == NULL);
    for (int k = 0; k < VD_STATUS_COUNT; k++) {
        CHECK(vd_probe_decide(&p, (vd_status)k, "some_reason") == 0);
        CHECK(p.status == vd_status_name((vd_status)k)); /* the table's own string */
        CHECK_STR(p.reason, "some_reason");
    }
    CHECK(vd_probe_decide(&p, VD_STATUS_COUNT, "x") == -1);
    CHECK(vd_probe_decide(&p, (vd_status)-1, "x") == -1);
    CHECK(vd_probe_decide(&p, VD_STATUS_RISKY, "Not_lower") == -1);
    CHECK(vd_probe_decide(&p, VD_STATUS_RISKY, "") == -1);
    CHECK(vd_probe_decide(&p, VD_STATUS_RISKY, NULL) == -1);
    char long_reason[VD_REASON_MAX + 1];
    memset(long_reason, 'a', sizeof long_reason - 1);
    long_reason[VD_REASON_MAX] = '\0';
    CHECK(vd_probe_decide(&p, VD_STATUS_RISKY, long_reason) == -1);
    long_reason[VD_REASON_MAX - 1] = '\0'; /* 47 letters: the longest */
    CHECK(vd_probe_decide(&p, VD_STATUS_RISKY, long_reason) == 0);
    CHECK(vd_probe_decide(&p, VD_STATUS_UNKNOWN, VD_REASON_INTERNAL_ERROR) == 0);
    CHECK(vd_probe_decide(&p, VD_STATUS_DELIVERABLE, "bad word") == -1);
    CHECK_STR(p.status, "unknown"); /* the refusals changed nothing */
    CHECK_STR(p.reason, "internal_error");
    vd_probe_clear(&p);
}

static void test_method_names(void)
{
    for (vd_method m = VD_METHOD_SKIPPED; m <= VD_METHOD_HTTP; m++)
        CHECK(vd_probe_method_parse(vd_probe_method_name(m)) == m);
    CHECK(vd_probe_method_name(VD_METHOD_NONE) == NULL);
    CHECK(vd_probe_method_parse("ftp") == VD_METHOD_NONE);
    CHECK(vd_probe_method_parse(NULL) == VD_METHOD_NONE);
}

int main(void)
{
    test_decide();
    test_method_names();
    return check_done();
}
