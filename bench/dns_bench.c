/* dns_bench.c — uncached MX lookups per second through engine/dns.c (the engine side of
 * bench/dns_bench.sh, which sets up the server and runs dnsperf beside it).
 *
 *   dns_bench SERVER NAMES INFLIGHT SECONDS
 *
 * Keeps INFLIGHT vd_dns_mx lookups of h<i>.bench.test (i cycling over 0..NAMES-1) in flight
 * for SECONDS on one loop, with no_cache so every lookup reaches the server. A lookup is
 * three queries (MX, then A and AAAA of its host); it counts as good only when the answer is
 * the one the zone holds (one host m<i>.bench.test with address 127.0.0.10); the run fails
 * when more than 1% are not. Prints one
 * line: "lookups L good G queries Q seconds S lookups_per_s X queries_per_s Y". */
#include "dns.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct event_base *base;
static vd_dns *dns;
static long names, next_name, inflight, done, good;
static bool stopping;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void start_one(void);

static void on_mx(const vd_mx_result *r, void *arg)
{
    long i = (long)(intptr_t)arg;
    char want[64];
    snprintf(want, sizeof want, "m%ld.bench.test", i);
    const struct sockaddr_in *sin =
        r->nhosts == 1 && r->hosts[0].naddrs == 1 && r->hosts[0].addrs[0].ss_family == AF_INET
            ? (const struct sockaddr_in *)&r->hosts[0].addrs[0]
            : NULL;
    if (r->status == VD_DNS_OK && sin && strcmp(r->hosts[0].name, want) == 0 &&
        ntohl(sin->sin_addr.s_addr) == 0x7f00000a)
        good++;
    else if (done - good < 5)
        fprintf(stderr, "h%ld.bench.test: %s %s (%zu hosts, addr %s)\n", i,
                vd_dns_status_name(r->status), r->error, r->nhosts,
                r->nhosts ? vd_dns_status_name(r->hosts[0].addr_status) : "-");
    done++;
    inflight--;
    if (!stopping) start_one();
    if (stopping && inflight == 0) event_base_loopbreak(base);
}

static void start_one(void)
{
    char name[64];
    long i = next_name++ % names;
    snprintf(name, sizeof name, "h%ld.bench.test", i);
    inflight++;
    vd_dns_mx(dns, name, on_mx, (void *)(intptr_t)i);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what, (void)arg;
    stopping = true;
    if (inflight == 0) event_base_loopbreak(base);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s SERVER NAMES INFLIGHT SECONDS\n", argv[0]);
        return 2;
    }
    names = atol(argv[2]);
    long want_inflight = atol(argv[3]);
    double seconds = atof(argv[4]);
    if (names <= 0 || want_inflight <= 0 || seconds <= 0) {
        fprintf(stderr, "NAMES, INFLIGHT and SECONDS must be positive\n");
        return 2;
    }
    base = event_base_new();
    char err[256];
    vd_dns_opts o = {.servers = argv[1], .timeout_ms = 2000, .tries = 2, .no_cache = true};
    dns = vd_dns_new(base, &o, err, sizeof err);
    if (!dns) {
        fprintf(stderr, "vd_dns_new: %s\n", err);
        return 1;
    }
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6)};
    struct event *stop = evtimer_new(base, on_stop, NULL);
    evtimer_add(stop, &tv);
    double t0 = now();
    for (long i = 0; i < want_inflight; i++)
        start_one();
    event_base_dispatch(base);
    double t = now() - t0;
    size_t queries = 0, hits = 0;
    vd_dns_stats(dns, &queries, &hits);
    printf("lookups %ld good %ld queries %zu seconds %.2f lookups_per_s %.0f queries_per_s %.0f\n",
           done, good, queries, t, (double)done / t, (double)queries / t);
    event_free(stop);
    vd_dns_free(dns);
    event_base_free(base);
    /* Under overload a few lookups may time out (lost datagrams); wrong answers may not. */
    return done > 0 && good >= done - done / 100 ? 0 : 1;
}
