/* smtp_servers.h — starting and stopping the SMTP servers the smtp/pool unit tests talk to:
 * Postfix's smtp-sink (a real, permissive server), tests/world/tarpit.py (the hostile
 * cases) and a small stub for a 421 that leaves the connection open (start_stub421). Each
 * server is a child process on a free loopback port, killed by the test. */
#ifndef VALIDORA_TEST_SMTP_SERVERS_H
#define VALIDORA_TEST_SMTP_SERVERS_H
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct sockaddr_in sin_of(const char *host, int port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &sa.sin_addr);
    return sa;
}

/* A port nobody listens on at the moment (on host). */
static int free_port(const char *host)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = sin_of(host, 0);
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("free_port");
        exit(2);
    }
    close(fd);
    return ntohs(sa.sin_port);
}

static bool can_connect(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = sin_of(host, port);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static pid_t spawn(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0 && !getenv("VALIDORA_TEST_VERBOSE")) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static void stop_server(pid_t pid)
{
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static const char *source_dir(void)
{
    static char dir[4096];
    const char *e = getenv("VALIDORA_SOURCE_DIR");
    if (e && *e) return e;
    /* __FILE__ is absolute in CMake builds: strip "tests/unit/<file>" */
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *p = strstr(dir, "/tests/unit/");
    if (p) *p = '\0';
    return dir;
}

/* Starts tarpit.py in mode on host:port, logging to log (may be NULL), with extra options
 * (NULL-terminated, may be NULL); waits until ready. */
static pid_t start_tarpit_ex(const char *host, int port, const char *mode, const char *log,
                             const char *const *extra)
{
    char listen[64], script[4200], pidfile[128];
    snprintf(listen, sizeof listen, "%s:%d", host, port);
    snprintf(script, sizeof script, "%s/tests/world/tarpit.py", source_dir());
    snprintf(pidfile, sizeof pidfile, "/tmp/vd-tarpit-%d-%d.pid", (int)getpid(), port);
    unlink(pidfile);
    char *argv[24] = {"python3",    script,      "--listen", listen, "--mode",
                      (char *)mode, "--pidfile", pidfile,    NULL};
    int n = 8;
    if (log) {
        argv[n++] = "--log";
        argv[n++] = (char *)log;
    }
    for (int i = 0; extra && extra[i] && n < 22; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    pid_t pid = spawn(argv);
    for (int i = 0; i < 500; i++) {
        struct stat st;
        if (stat(pidfile, &st) == 0) {
            unlink(pidfile);
            return pid;
        }
        sleep_ms(10);
    }
    fprintf(stderr, "tarpit did not start\n");
    stop_server(pid);
    exit(2);
}

static pid_t start_tarpit(const char *host, int port, const char *mode, const char *log)
{
    return start_tarpit_ex(host, port, mode, log, NULL);
}

/* Starts smtp-sink on host:port with extra options (NULL-terminated); waits until ready. */
static pid_t start_sink(const char *host, int port, const char *const *opts)
{
    char listen[64];
    snprintf(listen, sizeof listen, "%s:%d", host, port);
    char *argv[32];
    int n = 0;
    argv[n++] = "/usr/sbin/smtp-sink";
    if (geteuid() == 0) {
        argv[n++] = "-u";
        argv[n++] = "nobody";
    }
    for (int i = 0; opts && opts[i] && n < 28; i++)
        argv[n++] = (char *)opts[i];
    argv[n++] = listen;
    argv[n++] = "64";
    argv[n] = NULL;
    pid_t pid = spawn(argv);
    for (int i = 0; i < 500; i++) {
        if (can_connect(host, port)) return pid;
        sleep_ms(10);
    }
    fprintf(stderr, "smtp-sink did not start\n");
    stop_server(pid);
    exit(2);
}

static void stub_log(const char *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stub_log(const char *log, const char *fmt, ...)
{
    if (!log) return;
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return;
    char line[4200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n > 0) {
        size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
        line[len++] = '\n';
        ssize_t w = write(fd, line, len); /* a lost line shows up as a wrong count */
        (void)w;
    }
    close(fd);
}

static void stub_reply(int fd, const char *r)
{
    if (write(fd, r, strlen(r)) < 0) _exit(0);
}

/* One connection of start_stub421's server; never returns. */
static void stub_session(int fd, const char *log)
{
    alarm(30); /* whatever the client does, this process ends */
    stub_reply(fd, "220 stub ESMTP\r\n");
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0) _exit(0);
        have += (size_t)n;
        buf[have] = '\0';
        char *nl;
        while ((nl = strchr(buf, '\n')) != NULL) {
            *nl = '\0';
            if (nl > buf && nl[-1] == '\r') nl[-1] = '\0';
            stub_log(log, "C: %s", buf);
            if (strncasecmp(buf, "EHLO", 4) == 0)
                stub_reply(fd, "250-stub\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n");
            else if (strncasecmp(buf, "HELO", 4) == 0)
                stub_reply(fd, "250 stub\r\n");
            else if (strncasecmp(buf, "MAIL", 4) == 0)
                stub_reply(fd, "250 2.1.0 Ok\r\n");
            else if (strncasecmp(buf, "RCPT", 4) == 0 && strcasestr(buf, "<bye@"))
                stub_reply(fd, "421 4.7.0 stub: closing transmission channel\r\n");
            else if (strncasecmp(buf, "RCPT", 4) == 0)
                stub_reply(fd, "250 2.1.5 Ok\r\n");
            else if (strncasecmp(buf, "RSET", 4) == 0 || strncasecmp(buf, "NOOP", 4) == 0)
                stub_reply(fd, "250 2.0.0 Ok\r\n");
            else if (strncasecmp(buf, "QUIT", 4) == 0) {
                stub_reply(fd, "221 2.0.0 Bye\r\n");
                _exit(0);
            } else
                stub_reply(fd, "502 5.5.2 Error: command not recognized\r\n");
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, nl + 1, have - used + 1);
            have -= used;
        }
        if (have == sizeof buf - 1) _exit(0); /* an over-long line: not what tests send */
    }
}

/* A small SMTP server in a child process for a case tarpit.py does not have: RCPT to bye@...
 * is answered 421 and the connection stays open, as from a server that announces it is
 * closing but waits for QUIT, so only the reply can tell the client the session is over.
 * Otherwise like tarpit's ok mode: EHLO 250, MAIL/RCPT/RSET/NOOP 250, QUIT 221 and close.
 * Logs "CONNECT ip:port" and "C: <line>" to log like tarpit.py. One process per connection,
 * each ending at EOF, QUIT or after 30 s; all in one process group that stop_stub() ends.
 * The listener is bound before the fork: the server is ready on return. */
static pid_t start_stub421(const char *host, int port, const char *log)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = sin_of(host, port);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 16) != 0) {
        perror("start_stub421");
        exit(2);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGCHLD, SIG_IGN); /* connection processes reap themselves */
        for (;;) {
            struct sockaddr_in peer;
            socklen_t plen = sizeof peer;
            int fd = accept(l, (struct sockaddr *)&peer, &plen);
            if (fd < 0) {
                if (errno == EINTR) continue;
                _exit(1);
            }
            char ip[INET_ADDRSTRLEN] = "?";
            inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
            stub_log(log, "CONNECT %s:%d", ip, ntohs(peer.sin_port));
            pid_t c = fork();
            if (c == 0) {
                close(l);
                stub_session(fd, log);
            }
            close(fd);
        }
    }
    setpgid(pid, pid);
    close(l);
    return pid;
}

static void stop_stub(pid_t pid)
{
    if (pid <= 0) return;
    kill(-pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* Lines of file that start with prefix. */
static int count_lines(const char *file, const char *prefix)
{
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, prefix, strlen(prefix)) == 0) n++;
    fclose(f);
    return n;
}

#endif
