/* lua_dns.c — the `dns` table rules get: dns.mx, dns.txt, dns.ptr, dns.addrs, each yielding
 * until the answer. A failed lookup returns nil and the status name (docs/errors.md:
 * nxdomain, nodata, servfail, timeout, error).
 * Does not own: resolving, caching, parsing answers (dns.c). */
#include <arpa/inet.h>
#include <string.h>
#include <lauxlib.h>
#include "lua_bridge.h"

static void push_sockaddr(lua_State *L, const struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN] = "";
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, sizeof buf);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, sizeof buf);
    lua_pushstring(L, buf);
}

void vd_lua_push_mx_hosts(lua_State *L, const vd_mx_result *r)
{
    lua_createtable(L, r ? (int)r->nhosts : 0, 0);
    for (size_t i = 0; r && i < r->nhosts; i++) {
        const vd_mx_host *h = &r->hosts[i];
        lua_createtable(L, 0, 3);
        lua_pushstring(L, h->name);
        lua_setfield(L, -2, "name");
        lua_pushinteger(L, h->preference);
        lua_setfield(L, -2, "preference");
        lua_createtable(L, (int)h->naddrs, 0);
        for (size_t k = 0; k < h->naddrs; k++) {
            push_sockaddr(L, &h->addrs[k]);
            lua_rawseti(L, -2, (lua_Integer)k + 1);
        }
        lua_setfield(L, -2, "addrs");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* The task a completion belongs to, or NULL when it is stale or failed (then the failure has
 * been handed to the rule). */
static vd_task *answer_for(void *arg, vd_dns_status status)
{
    if (status == VD_DNS_OK) return vd_waiter_take(arg);
    vd_waiter_fail(arg, vd_dns_status_name(status), NULL);
    return NULL;
}

static void on_mx(const vd_mx_result *r, void *arg)
{
    vd_task *t = answer_for(arg, r->status);
    if (!t) return;
    lua_State *L = vd_task_thread(t);
    lua_createtable(L, 0, 4);
    lua_pushboolean(L, r->null_mx);
    lua_setfield(L, -2, "null_mx");
    lua_pushboolean(L, r->implicit);
    lua_setfield(L, -2, "implicit");
    lua_pushinteger(L, r->ttl);
    lua_setfield(L, -2, "ttl");
    vd_lua_push_mx_hosts(L, r);
    lua_setfield(L, -2, "hosts");
    vd_task_resume(t, 1);
}

static void on_records(const vd_dns_records *r, void *arg)
{
    vd_task *t = answer_for(arg, r->status);
    if (!t) return;
    lua_State *L = vd_task_thread(t);
    lua_createtable(L, (int)r->n, 0);
    for (size_t i = 0; i < r->n; i++) {
        lua_pushstring(L, r->items[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    vd_task_resume(t, 1);
}

static void on_addrs(const vd_dns_addr_list *r, void *arg)
{
    vd_task *t = answer_for(arg, r->status);
    if (!t) return;
    lua_State *L = vd_task_thread(t);
    lua_createtable(L, (int)r->n, 0);
    for (size_t i = 0; i < r->n; i++) {
        push_sockaddr(L, &r->addrs[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    vd_task_resume(t, 1);
}

static void cancel_dns(void *handle)
{
    vd_dns_cancel(handle);
}

static const char *check_name(lua_State *L, const char *what)
{
    size_t n;
    const char *name = luaL_checklstring(L, 1, &n);
    if (n == 0 || n > 253 || strlen(name) != n) luaL_error(L, "%s: bad name", what);
    return name;
}

/* Starts lookup type of the name (or IP, for 'p') at index 1 and yields until its answer. */
static int lookup(lua_State *L, const char *what, char type)
{
    struct sockaddr_storage ss;
    const char *name = NULL;
    if (type == 'p') {
        const char *ip = luaL_checkstring(L, 1);
        memset(&ss, 0, sizeof ss);
        if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
            ss.ss_family = AF_INET;
        else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
            ss.ss_family = AF_INET6;
        else
            return luaL_error(L, "%s: not an IP address: '%s'", what, ip);
    } else {
        name = check_name(L, what);
    }
    vd_run *run = vd_run_check(L, what);
    vd_dns *dns = run->gen->env.dns;
    vd_waiter *w = vd_task_wait_begin(run->task);
    if (!w) return luaL_error(L, "out of memory");
    vd_dns_req *req = type == 'm'   ? vd_dns_mx(dns, name, on_mx, w)
                      : type == 't' ? vd_dns_txt(dns, name, on_records, w)
                      : type == 'a' ? vd_dns_addrs(dns, name, on_addrs, w)
                                    : vd_dns_ptr(dns, (struct sockaddr *)&ss, on_records, w);
    if (req) vd_task_wait_cancel(run->task, req, cancel_dns);
    return vd_task_wait_end(L, run->task);
}

static int l_mx(lua_State *L)
{
    return lookup(L, "dns.mx", 'm');
}

static int l_txt(lua_State *L)
{
    return lookup(L, "dns.txt", 't');
}

static int l_addrs(lua_State *L)
{
    return lookup(L, "dns.addrs", 'a');
}

static int l_ptr(lua_State *L)
{
    return lookup(L, "dns.ptr", 'p');
}

void vd_lua_dns_open(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"mx", l_mx}, {"txt", l_txt}, {"ptr", l_ptr}, {"addrs", l_addrs}, {NULL, NULL}};
    luaL_newlib(L, fns);
}
