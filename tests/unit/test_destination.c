/* test_destination.c — engine/destination.c: which addresses are special-purpose (refused as
 * SMTP and HTTP destinations unless --allow-private-destinations), and the switch.
 * Does not test: where the check is made (test_engine: literals; test_smtp and test_http:
 * the connect-time check). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include "check.h"
#include "destination.h"

static bool special(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    return vd_destination_special((struct sockaddr *)&ss);
}

int main(void)
{
    static const char *const yes[] = {"0.0.0.0",
                                      "0.1.2.3",
                                      "10.0.0.5",
                                      "10.255.255.255",
                                      "100.64.0.1",
                                      "100.127.255.255",
                                      "127.0.0.1",
                                      "127.255.0.9",
                                      "169.254.169.254",
                                      "172.16.0.1",
                                      "172.31.255.255",
                                      "192.0.0.8",
                                      "192.0.2.1",
                                      "192.168.0.1",
                                      "198.18.0.1",
                                      "198.19.255.255",
                                      "198.51.100.7",
                                      "203.0.113.9",
                                      "224.0.0.1",
                                      "239.1.1.1",
                                      "240.0.0.1",
                                      "255.255.255.255",
                                      "::",
                                      "::1",
                                      "::ffff:127.0.0.1",
                                      "::ffff:10.0.0.1",
                                      "::10.0.0.1",
                                      "64:ff9b::a00:1",
                                      "64:ff9b:1::1",
                                      "2002:a00:1::",
                                      "2002:7f00:1::1",
                                      "fc00::1",
                                      "fd12:3456::1",
                                      "fe80::1",
                                      "febf::1",
                                      "fec0::1",
                                      "ff02::1",
                                      "2001:db8::1",
                                      "2001::1",
                                      "100::1"};
    static const char *const no[] = {"1.1.1.1",          "8.8.8.8",         "100.63.255.255",
                                     "100.128.0.0",      "172.15.255.255",  "172.32.0.0",
                                     "192.0.43.10",      "192.169.0.1",     "198.17.255.255",
                                     "198.20.0.0",       "223.255.255.255", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808", "2002:808:808::1", "2001:4860::8888",
                                     "2a00:1450::1",     "fbff::1"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        CHECK_MSG(special(yes[i]), "%s should be special", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        CHECK_MSG(!special(no[i]), "%s should not be special", no[i]);

    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    struct sockaddr_in pub = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x08080808)};
    CHECK(!vd_destination_private_allowed()); /* refused from the start */
    CHECK(!vd_destination_ok((struct sockaddr *)&lo));
    CHECK(vd_destination_ok((struct sockaddr *)&pub));
    vd_destination_allow_private(true);
    CHECK(vd_destination_ok((struct sockaddr *)&lo));
    vd_destination_allow_private(false);
    CHECK(!vd_destination_ok((struct sockaddr *)&lo));
    struct sockaddr un = {.sa_family = AF_UNIX};
    CHECK(vd_destination_special(&un));
    char buf[64];
    CHECK_STR(vd_destination_text((struct sockaddr *)&lo, buf, sizeof buf), "127.0.0.1");
    return check_done();
}
