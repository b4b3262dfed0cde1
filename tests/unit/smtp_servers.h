/* smtp_servers.h — starting and stopping the SMTP servers the smtp/pool unit tests talk to:
 * Postfix's smtp-sink (a real, permissive server) and tests/world/tarpit.py (the hostile
 * cases). Each server is a child process on a free loopback port, killed by the test. */
#ifndef VALIDORA_TEST_SMTP_SERVERS_H
#define VALIDORA_TEST_SMTP_SERVERS_H
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
