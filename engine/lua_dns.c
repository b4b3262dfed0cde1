/* lua_dns.c — the `dns` table rules get (dns.mx, dns.txt, dns.ptr, dns.addrs; each yields
 * until the answer) and the small utilities sleep() and now().
 * Failures return nil and the status name ("nxdomain", "nodata", "servfail", "timeout"). */
#include <arpa/inet.h>
#include <string.h>
#include <sys/time.h>
#include <lauxlib.h>
#include "engine_internal.h"

int vd_lua_sleep(lua_State *L); /* lua_job.c */

static vd_job *io_job(lua_State *L, const char *what)
{
    vd_job *j = vd_lua_job_of(L);
    if (!j || L != j->co) luaL_error(L, "%s: only inside a job's probe", what);
    return j;
}

void vd_lua_push_sockaddr(lua_State *L, const struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN] = "";
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, sizeof buf);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, sizeof buf);
    lua_pushstring(L, buf);
}

/* A failed lookup returns nil and the status name to the rule. */
static bool resumed_with_failure(vd_job *j, vd_dns_status status)
{
    if (status == VD_DNS_OK) return false;
    lua_pushnil(j->co);
    lua_pushstring(j->co, vd_dns_status_name(status));
    vd_job_resume(j, 2);
    return true;
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
            vd_lua_push_sockaddr(L, &h->addrs[k]);
            lua_rawseti(L, -2, (lua_Integer)k + 1);
        }
        lua_setfield(L, -2, "addrs");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static void on_mx(const vd_mx_result *r, void *arg)
{
    vd_job *j = vd_waiter_take(arg);
    if (!j || resumed_with_failure(j, r->status)) return;
    lua_State *L = j->co;
    lua_createtable(L, 0, 4);
    lua_pushboolean(L, r->null_mx);
    lua_setfield(L, -2, "null_mx");
    lua_pushboolean(L, r->implicit);
    lua_setfield(L, -2, "implicit");
    lua_pushinteger(L, r->ttl);
    lua_setfield(L, -2, "ttl");
    vd_lua_push_mx_hosts(L, r);
    lua_setfield(L, -2, "hosts");
    vd_job_resume(j, 1);
}

static void on_records(const vd_dns_records *r, void *arg)
{
    vd_job *j = vd_waiter_take(arg);
    if (!j || resumed_with_failure(j, r->status)) return;
    lua_State *L = j->co;
    lua_createtable(L, (int)r->n, 0);
    for (size_t i = 0; i < r->n; i++) {
        lua_pushstring(L, r->items[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    vd_job_resume(j, 1);
}

static void on_addrs(const vd_dns_addr_list *r, void *arg)
{
    vd_job *j = vd_waiter_take(arg);
    if (!j || resumed_with_failure(j, r->status)) return;
    lua_State *L = j->co;
    lua_createtable(L, (int)r->n, 0);
    for (size_t i = 0; i < r->n; i++) {
        vd_lua_push_sockaddr(L, &r->addrs[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    vd_job_resume(j, 1);
}

static const char *check_name(lua_State *L, const char *what)
{
    size_t n;
    const char *name = luaL_checklstring(L, 1, &n);
    if (n == 0 || n > 253 || strlen(name) != n) luaL_error(L, "%s: bad name", what);
    return name;
}

/* dns.mx / dns.txt / dns.addrs (name): start the lookup and yield until its answer. */
static int name_lookup(lua_State *L, const char *what, int type)
{
    const char *name = check_name(L, what);
    vd_job *j = io_job(L, what);
    vd_waiter *w = vd_job_wait_begin(j, VD_WAIT_DNS);
    if (!w) return luaL_error(L, "out of memory");
    vd_dns_req *req;
    if (type == 'm')
        req = vd_dns_mx(j->e->dns, name, on_mx, w);
    else if (type == 't')
        req = vd_dns_txt(j->e->dns, name, on_records, w);
    else
        req = vd_dns_addrs(j->e->dns, name, on_addrs, w);
    if (j->sync_nargs < 0) j->wait_handle = req;
    return vd_job_wait_end(L, j);
}

static int l_mx(lua_State *L)
{
    return name_lookup(L, "dns.mx", 'm');
}

static int l_txt(lua_State *L)
{
    return name_lookup(L, "dns.txt", 't');
}

static int l_addrs(lua_State *L)
{
    return name_lookup(L, "dns.addrs", 'a');
}

static int l_ptr(lua_State *L)
{
    const char *ip = luaL_checkstring(L, 1);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        ss.ss_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        ss.ss_family = AF_INET6;
    else
        return luaL_error(L, "dns.ptr: not an IP address: '%s'", ip);
    vd_job *j = io_job(L, "dns.ptr");
    vd_waiter *w = vd_job_wait_begin(j, VD_WAIT_DNS);
    if (!w) return luaL_error(L, "out of memory");
    vd_dns_req *req = vd_dns_ptr(j->e->dns, (struct sockaddr *)&ss, on_records, w);
    if (j->sync_nargs < 0) j->wait_handle = req;
    return vd_job_wait_end(L, j);
}

void vd_lua_dns_open(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"mx", l_mx}, {"txt", l_txt}, {"ptr", l_ptr}, {"addrs", l_addrs}, {NULL, NULL}};
    luaL_newlib(L, fns);
}

static int l_now(lua_State *L)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (lua_Number)tv.tv_sec + (lua_Number)tv.tv_usec / 1e6);
    return 1;
}

void vd_lua_util_open(lua_State *L)
{
    lua_pushcfunction(L, vd_lua_sleep);
    lua_setfield(L, -2, "sleep");
    lua_pushcfunction(L, l_now);
    lua_setfield(L, -2, "now");
}
