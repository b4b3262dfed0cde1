/* transcript.h — SMTP session transcripts: one readable text file per session, in the
 * manner of Postfix's smtp_chat (the commands, the server's replies and their timings).
 *
 * Owns: the transcript format (docs/transcripts.md, a contract: `validora rules test` plays
 * these files back as the server side of a dialogue): the header and trailer lines, one
 * record per line sent or received, the escaping of bytes that are not printable text, the
 * redaction of AUTH arguments, the size bound of a file; the files themselves (names,
 * creating, buffering, closing) and the directory they go to; what happens when writing
 * fails (reported once through the log callback, then no more transcripts); reading a
 * transcript back into the script playback serves (one unescaping for both directions).
 * Does not own: SMTP (smtp.c reports each line, the TLS result and the end through this API
 * and knows nothing of the format), which MX host a session goes to (pool.c names it), the
 * --transcript option (options.c) or when the sink is made (engine.c), playing a script
 * (playback_smtp.c). No Lua. */
#ifndef VALIDORA_TRANSCRIPT_H
#define VALIDORA_TRANSCRIPT_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "smtp.h"              /* vd_smtp_trace */
#include "validora/validora.h" /* vd_log_cb */

/* Bytes of records one file may hold; past it a "# truncated" line is written and the rest
 * of the session is not (the "# end:" line still is). A full session of the pool (100
 * transactions of 50 RCPTs, VD_POOL_*) is about 600 KB of text; 1 MiB keeps that whole and
 * stops a hostile server from filling the disk through us. */
#define VD_TRANSCRIPT_MAX_BYTES (1024 * 1024)

/* The end reasons that are not an SMTP error name (vd_smtp_err_name gives those). */
#define VD_TRANSCRIPT_CLOSED_BY_CLIENT "closed by client" /* QUIT, or we closed it */
#define VD_TRANSCRIPT_CLOSED_BY_SERVER "closed by server" /* with no command waiting */

/* A directory transcripts are written to. It is shared by every session; it holds the log
 * callback and whether transcripts are still on. */
typedef struct vd_transcript_sink vd_transcript_sink;
/* The transcript of one SMTP session: an open file. */
typedef struct vd_transcript vd_transcript;

/* A sink writing to dir, which must exist and be writable now. NULL with a message naming
 * dir in err otherwise (or when out of memory). log/log_arg (may be NULL) get the first
 * write error, once, as VD_LOG_WARNING; after it transcripts are off for good. */
vd_transcript_sink *vd_transcript_sink_new(const char *dir, vd_log_cb log, void *log_arg, char *err,
                                           size_t errlen);
/* The owner is done with the sink: the log callback is forgotten at once (it is never
 * called after this), the memory goes when the last open transcript has ended, so sessions
 * still closing (QUIT) finish their files. NULL is fine. */
void vd_transcript_sink_free(vd_transcript_sink *k);
/* Is the sink still writing (no write error yet)? false for NULL. */
bool vd_transcript_sink_on(const vd_transcript_sink *k);
/* The directory, as given. */
const char *vd_transcript_sink_dir(const vd_transcript_sink *k);
/* The trace that gives each SMTP session using it (vd_smtp_opts.trace, trace_mx = the MX
 * host name) its transcript: start = vd_transcript_open, line = vd_transcript_sent or
 * _received, tls = vd_transcript_tls, end = vd_transcript_end with "closed by client",
 * "closed by server" or vd_smtp_err_name(err). It lives as long as k; NULL for NULL. */
const vd_smtp_trace *vd_transcript_sink_trace(vd_transcript_sink *k);

/* Starts the transcript of a session to mx (the MX host name; NULL or "": the address is
 * used) at addr (IPv4 or IPv6, with its port): creates DIR/YYYYMMDDTHHMMSS.mmmZ-SEQ-MX.txt
 * and writes the header. Times in the file count from this call. NULL when k is NULL or
 * off, or when the file cannot be made (the first such error is reported and switches the
 * sink off). Every function below accepts NULL and then does nothing. */
vd_transcript *vd_transcript_open(vd_transcript_sink *k, const char *mx,
                                  const struct sockaddr *addr, socklen_t addrlen);
/* A line sent to the server (without CRLF; len bytes, NULs allowed). The argument of AUTH
 * and the client's lines of the SASL exchange that follows (until a reply other than 334)
 * are written as "***". */
void vd_transcript_sent(vd_transcript *t, const char *line, size_t len);
/* A line received from the server, exactly as read, without its line end. */
void vd_transcript_received(vd_transcript *t, const char *line, size_t len);
/* A TLS handshake completed: protocol ("TLSv1.3"), cipher, whether the peer verified. */
void vd_transcript_tls(vd_transcript *t, const char *protocol, const char *cipher, bool verified);
/* Writes the "# end:" line with reason (VD_TRANSCRIPT_CLOSED_BY_* or an error name),
 * flushes and closes the file, and frees t. */
void vd_transcript_end(vd_transcript *t, const char *reason);
/* The file's path, for tests and messages; valid until vd_transcript_end. */
const char *vd_transcript_path(const vd_transcript *t);

/* The escaping of the format, for writers and readers of transcripts alike.
 * vd_transcript_escape writes len bytes of in to out as text: printable ASCII and valid,
 * non-control UTF-8 as they are, a backslash as "\\", every other byte as "\xHH" (lower-case
 * hex). Returns the length it needs (at most 4 * len); writes at most outlen - 1 bytes and a
 * terminating NUL when outlen > 0.
 * vd_transcript_unescape undoes it in place: "\\" and "\xHH" (either case) become their
 * byte; returns the new length, or -1 when s holds a backslash that starts neither (s is
 * then partly rewritten). */
size_t vd_transcript_escape(char *out, size_t outlen, const char *in, size_t len);
long vd_transcript_unescape(char *s, size_t len);

/* ---- reading transcripts back: the scripts `validora rules test` plays ---- */

/* Bounds of what is read (a transcript may come from a hostile server's capture: a file
 * that breaks one is refused with its line, never truncated). */
#define VD_TRANSCRIPT_READ_MAX  (8u << 20) /* bytes of a transcript */
#define VD_TRANSCRIPT_MAX_LINE  65536      /* bytes of one line (after unescaping) */
#define VD_TRANSCRIPT_MAX_STEPS 100000     /* commands in one script */
#define VD_TRANSCRIPT_MAX_LINES 100000     /* reply lines in one script */

typedef enum vd_transcript_then {
    VD_TRANSCRIPT_GO_ON = 0, /* wait for the next command */
    VD_TRANSCRIPT_CLOSE,     /* close the connection once the lines are out */
    VD_TRANSCRIPT_HANG,      /* stop answering; the client's timeout ends it */
} vd_transcript_then;

/* Lines sent as one reply (each followed by CRLF), then what the server does. */
typedef struct vd_transcript_reply {
    char **lines;
    size_t *lens;
    size_t nlines;
    vd_transcript_then then;
} vd_transcript_reply;

/* A client command the script expects, and the server's answer to it. */
typedef struct vd_transcript_step {
    char verb[16]; /* upper case: EHLO, MAIL, RCPT, ... (vd_transcript_verb) */
    char *cmd;     /* the line as captured, for messages */
    int lineno;    /* in the transcript */
    vd_transcript_reply reply;
} vd_transcript_step;

/* A transcript, as played: the banner, then one step per command in order. */
typedef struct vd_transcript_script {
    vd_transcript_reply banner;
    vd_transcript_step *steps;
    size_t nsteps;
    char end[64]; /* the REASON of "# end:", "" when the transcript has none */
} vd_transcript_script;

/* Parses a transcript (len bytes, need not end in NUL): "# validora transcript 1", entries
 * "SECONDS < LINE" / "SECONDS > LINE" with the escaping above (vd_transcript_unescape),
 * "# end: SECONDS REASON". STARTTLS is taken out (the EHLO keyword, the STARTTLS exchange
 * and, when it was accepted, the EHLO before it) since playback has no certificate. The end
 * becomes the last reply's `then`: "closed by server" and connection_closed close, timeout
 * hangs. Returns 0, or -1 with "line N: what" in err. */
int vd_transcript_parse(const char *text, size_t len, vd_transcript_script *s, char *err,
                        size_t errlen);
void vd_transcript_script_clear(vd_transcript_script *s);
/* Reply text written by hand ("550-a\n550 b", or "close", "timeout": a rule test's inline
 * session) into r. Returns 0, or -1 with err. */
int vd_transcript_reply_parse(const char *text, size_t len, vd_transcript_reply *r, char *err,
                              size_t errlen);
void vd_transcript_reply_clear(vd_transcript_reply *r);
/* Takes the STARTTLS keyword out of an EHLO reply (the line before becomes the last; the
 * first line is the greeting, never a keyword): playback has no certificate. */
void vd_transcript_strip_starttls_keyword(vd_transcript_reply *r);
/* The verb of a command line: its first word (at most 15 bytes), upper case ("MAIL FROM:<a>"
 * is MAIL), as a script's steps are matched. */
void vd_transcript_verb(const char *line, size_t len, char verb[16]);

#endif
