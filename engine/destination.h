/* destination.h — which addresses the engine may open a connection to (SSRF protection).
 *
 * Owns: the list of special-purpose ranges refused by default (loopback, private, link-local,
 * unique-local, CGNAT, multicast, documentation, benchmarking, reserved, "this network", and
 * IPv6 forms that embed one of those IPv4 addresses), and the process-wide switch that allows
 * them (--allow-private-destinations, set by the engine at start).
 * Does not own: where the check is made (job.c filters MX addresses and literals; smtp.c and
 * http.c check the socket address they are about to connect to), error names (smtp.c,
 * http.c), the option (options.c). */
#ifndef VALIDORA_DESTINATION_H
#define VALIDORA_DESTINATION_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* The reason and error name of a refused destination (records and rules). */
#define VD_FORBIDDEN_DESTINATION "forbidden_destination"

/* Allows (true) or refuses (false, the state at process start) the special ranges, for the
 * whole process: the engine sets it from its config (vd_engine_new). */
void vd_destination_allow_private(bool allow);
bool vd_destination_private_allowed(void);

/* Whether addr is an address of a special range (true whatever the switch says). An address
 * family other than IPv4/IPv6 is special. */
bool vd_destination_special(const struct sockaddr *addr);

/* Whether a connection to addr may be opened now: not special, or special ones allowed. */
bool vd_destination_ok(const struct sockaddr *addr);

/* addr as text ("10.0.0.5", "fe80::1") into buf, for messages. */
const char *vd_destination_text(const struct sockaddr *addr, char *buf, size_t len);

#endif
