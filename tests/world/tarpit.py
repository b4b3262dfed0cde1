#!/usr/bin/env python3
"""tarpit.py - a hostile SMTP server for Validora's tests (stdlib only, asyncio).

Usage:
    tarpit.py --listen HOST:PORT --mode MODE [--listen HOST:PORT --mode MODE ...]
              [--pidfile FILE] [--log FILE]

One process serves any number of listeners: the i-th --mode applies to the i-th --listen
(a single --mode applies to every listener). The process does not daemonize; the caller
backgrounds it and stops it with SIGTERM. The pid file is written only after every
listener is bound, so its appearance means "ready". IPv6 hosts go in brackets: [::1]:2525.

Modes:
    silent          accept, never send anything, keep the connection open
    longline        "220-" then 1 MB without CRLF, then keep the connection open
    endless         "220-x\\r\\n" forever, about 1000 lines per second
    garbage         random bytes, 4 KB per second, forever
    slow            the `ok` dialogue, but every reply is written at 1 byte per second
    dropafterbanner "220 ..." then close
    mixedcodes      a multi-line banner whose lines carry different codes
    ok              a permissive ESMTP server: EHLO (PIPELINING, SIZE, SMTPUTF8,
                    ENHANCEDSTATUSCODES), HELO, MAIL, RCPT, RSET, NOOP, QUIT. RCPT answers
                    by local part: nobody*@ -> multi-line 550 5.1.1, full@ -> 452 4.2.2,
                    bye@ -> 421 4.7.0 and close; anything else 250 2.1.5.
    noehlo          like ok, but EHLO is answered 502 5.5.2 (for HELO fallback)
    tlsinject       like ok with STARTTLS offered, but the 220 to STARTTLS comes with a
                    pipelined "250" in the same write (a command-injection probe)
    dropper         like ok, but the second RCPT of a connection gets no reply: the server
                    closes the connection (a kept session dropped by a restart or a load
                    balancer's idle cut, without the 421 a polite server would send)

--tls-cert FILE --tls-key FILE make ok (and slow) offer STARTTLS and run the handshake
(asyncio start_tls); tlsinject offers STARTTLS with or without them. "notls" as --mode
answers STARTTLS with 454 4.7.0 (offered but refused); "badtls" answers 220 and then
sends plain text instead of a TLS handshake.

--log FILE appends "CONNECT host:port" for each connection and "C: <line>" for each line a
client sends (ok, noehlo, slow, silent), so tests can count connections and prove that a
command was not sent.
"""

import argparse
import asyncio
import os
import ssl
import sys

LOG = None
TLS = None  # ssl.SSLContext when --tls-cert/--tls-key are given


def log(msg):
    if LOG is None:
        return
    with open(LOG, "a", encoding="utf-8", errors="backslashreplace") as f:
        f.write(msg + "\n")


async def send(writer, data, slow=False):
    if not slow:
        writer.write(data)
        await writer.drain()
        return
    for i in range(len(data)):
        writer.write(data[i:i + 1])
        await writer.drain()
        await asyncio.sleep(1)


async def log_lines(reader):
    while True:
        line = await reader.readline()
        if not line:
            return
        log("C: " + line.decode("utf-8", "backslashreplace").rstrip("\r\n"))


async def dialogue(reader, writer, slow=False, noehlo=False, mode="ok"):
    await send(writer, b"220 tarpit ESMTP ready\r\n", slow)
    tls_on = False
    offer_tls = (TLS is not None or mode in ("tlsinject", "notls", "badtls"))
    rcpts = 0
    while True:
        raw = await reader.readline()
        if not raw:
            return
        line = raw.decode("utf-8", "backslashreplace").rstrip("\r\n")
        log("C: " + line)
        verb = line.split(" ", 1)[0].upper()
        if verb == "RCPT":
            rcpts += 1
            if mode == "dropper" and rcpts == 2:
                return
        if verb == "EHLO" and noehlo:
            reply = b"502 5.5.2 Error: command not recognized\r\n"
        elif verb == "EHLO":
            reply = (b"250-tarpit greets you\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                     b"250-SMTPUTF8\r\n")
            if offer_tls and not tls_on:
                reply += b"250-STARTTLS\r\n"
            reply += b"250 ENHANCEDSTATUSCODES\r\n"
        elif verb == "STARTTLS" and offer_tls and not tls_on:
            if mode == "tlsinject":
                await send(writer, b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n")
                continue
            if mode == "badtls":
                await send(writer, b"220 2.0.0 Ready to start TLS\r\n")
                await asyncio.sleep(0.2)
                await send(writer, b"this is not a TLS handshake\r\n" * 20)
                await log_lines(reader)
                return
            if mode == "notls" or TLS is None:
                reply = b"454 4.7.0 TLS not available due to local problem\r\n"
            else:
                await send(writer, b"220 2.0.0 Ready to start TLS\r\n", slow)
                await writer.start_tls(TLS)
                log("TLS")
                tls_on = True
                continue
        elif verb == "HELO":
            reply = b"250 tarpit\r\n"
        elif verb == "MAIL":
            reply = b"250 2.1.0 Ok\r\n"
        elif verb == "RCPT":
            low = line.lower()
            if "<nobody" in low:
                reply = (b"550-5.1.1 <nobody>: Recipient address rejected:\r\n"
                         b"550 5.1.1 User unknown in virtual mailbox table\r\n")
            elif "<full@" in low:
                reply = b"452 4.2.2 Mailbox full\r\n"
            elif "<bye@" in low:
                await send(writer, b"421 4.7.0 Too many errors, closing\r\n", slow)
                return
            else:
                reply = b"250 2.1.5 Ok\r\n"
        elif verb == "RSET":
            reply = b"250 2.0.0 Ok\r\n"
        elif verb == "NOOP":
            reply = b"250 2.0.0 Ok\r\n"
        elif verb == "QUIT":
            await send(writer, b"221 2.0.0 Bye\r\n", slow)
            return
        else:
            reply = b"502 5.5.2 Error: command not recognized\r\n"
        await send(writer, reply, slow)


async def handle(mode, reader, writer):
    peer = writer.get_extra_info("peername")
    log("CONNECT %s:%s" % (peer[0], peer[1]))
    try:
        if mode == "silent":
            await log_lines(reader)
        elif mode == "longline":
            writer.write(b"220-")
            chunk = b"x" * 65536
            for _ in range(16):
                writer.write(chunk)
                await writer.drain()
            await log_lines(reader)
        elif mode == "endless":
            await send(writer, b"220-x\r\n")
            while True:
                writer.write(b"220-x\r\n" * 100)
                await writer.drain()
                await asyncio.sleep(0.1)
        elif mode == "garbage":
            while True:
                writer.write(os.urandom(4096))
                await writer.drain()
                await asyncio.sleep(1)
        elif mode == "dropafterbanner":
            await send(writer, b"220 tarpit ESMTP\r\n")
        elif mode == "mixedcodes":
            await send(writer, b"220-tarpit\r\n250 surprise\r\n")
            await log_lines(reader)
        elif mode in ("ok", "slow", "noehlo", "tlsinject", "notls", "badtls", "dropper"):
            await dialogue(reader, writer, slow=(mode == "slow"), noehlo=(mode == "noehlo"),
                           mode=mode)
    except (ConnectionError, asyncio.IncompleteReadError, BrokenPipeError, ssl.SSLError):
        pass
    finally:
        log("CLOSE %s:%s" % (peer[0], peer[1]))
        try:
            writer.close()
        except Exception:  # pylint: disable=broad-except
            pass


def split_hostport(s):
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    return host, int(port)


MODES = ("silent", "longline", "endless", "garbage", "slow", "dropafterbanner", "mixedcodes",
         "ok", "noehlo", "tlsinject", "notls", "badtls", "dropper")


async def main():
    global LOG, TLS
    ap = argparse.ArgumentParser(description="hostile SMTP server for tests")
    ap.add_argument("--listen", action="append", required=True, help="HOST:PORT")
    ap.add_argument("--mode", action="append", required=True, choices=MODES)
    ap.add_argument("--pidfile")
    ap.add_argument("--log")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    a = ap.parse_args()
    if len(a.mode) != 1 and len(a.mode) != len(a.listen):
        ap.error("give one --mode, or one per --listen")
    LOG = a.log
    if a.tls_cert:
        TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        TLS.load_cert_chain(a.tls_cert, a.tls_key or None)
    servers = []
    for i, hp in enumerate(a.listen):
        mode = a.mode[0] if len(a.mode) == 1 else a.mode[i]
        host, port = split_hostport(hp)
        srv = await asyncio.start_server(
            lambda r, w, m=mode: handle(m, r, w), host, port, reuse_address=True)
        servers.append(srv)
    if a.pidfile:
        tmp = a.pidfile + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write("%d\n" % os.getpid())
        os.rename(tmp, a.pidfile)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
