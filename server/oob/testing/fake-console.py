#!/usr/bin/env python3
"""Fake serial console for ipmi_sim SOL (no VM): listens on 127.0.0.1:PORT, prints 'console-line N' every
0.5 s per connection (not with --quiet: a machine that prints nothing, e.g. one that is off) and answers every
received line with 'ECHO:<line>'. Usage: fake-console.py PORT [--quiet]"""
import socket, sys, threading

port = int(sys.argv[1])
quiet = "--quiet" in sys.argv[2:]

def serve(conn):
    stop = threading.Event()
    def ticker():
        i = 0
        while not stop.is_set():
            try:
                conn.sendall(f"console-line {i}\r\n".encode())
            except OSError:
                break
            i += 1
            stop.wait(0.5)
    if not quiet:
        threading.Thread(target=ticker, daemon=True).start()
    buf = b""
    try:
        while True:
            data = conn.recv(4096)
            if not data:
                break
            buf += data
            while b"\r" in buf or b"\n" in buf:
                i = min(x for x in (buf.find(b"\r"), buf.find(b"\n")) if x >= 0)
                line, buf = buf[:i], buf[i + 1:]
                if line:
                    conn.sendall(b"ECHO:" + line + b"\r\n")
    except OSError:
        pass
    stop.set()
    conn.close()

s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(4)
print("listening", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
