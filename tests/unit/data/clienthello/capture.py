#!/usr/bin/python3
"""Capture real TLS ClientHellos as test vectors for test_clienthello.c.

Each client in CLIENTS is pointed at a listener on 127.0.0.1 (an ephemeral
port) that records the first bytes it sends and closes: the handshake never
completes, so nothing but the ClientHello is sent.  A client that speaks to a
proxy first (wget) gets "200" for its CONNECT, and what follows is recorded,
as egressd would see it.  The bytes go to NAME.bin beside this script.

Run from the top of the tree when the vectors need refreshing:

    /usr/bin/python3 tests/unit/data/clienthello/capture.py [NAME...]

Nothing leaves the machine: every client connects to 127.0.0.1.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
LIMIT = 65536  # bytes recorded at most
IDLE = 1.0  # seconds without a byte that end a recording
CLIENT_TIMEOUT = 20  # seconds a client may run

# A long ALPN list makes a large hello: n protocol names of 200 bytes.
def alpn(n):
    return ",".join("p%03d-" % i + "x" * 195 for i in range(n))


GROUPS = "X25519:X448:P-256:P-384:P-521:ffdhe2048:ffdhe3072:ffdhe4096:" \
    "ffdhe6144:ffdhe8192"

JAVA = """
import javax.net.ssl.*;
import java.net.*;
import java.util.*;
public class Hello {
  public static void main(String[] a) throws Exception {
    SSLSocket s = (SSLSocket) SSLSocketFactory.getDefault()
        .createSocket("127.0.0.1", Integer.parseInt(a[0]));
    SSLParameters p = s.getSSLParameters();
    p.setServerNames(List.of(new SNIHostName("java.example.test")));
    s.setSSLParameters(p);
    s.setSoTimeout(5000);
    try { s.startHandshake(); } catch (Exception e) { }
    s.close();
  }
}
"""

PYTHON = """
import socket, ssl, sys
port, name, top = int(sys.argv[1]), sys.argv[2] or None, sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if top == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
s = socket.create_connection(("127.0.0.1", port), timeout=5)
try:
    ctx.wrap_socket(s, server_hostname=name)
except (OSError, ssl.SSLError):
    pass
"""

S_CLIENT = ["openssl", "s_client", "-connect", "127.0.0.1:{port}"]


def curl(*args):
    return ["curl", "-sk", "--max-time", "5", *args]


# name → command ({port} is the listener's port)
CLIENTS = {
    "openssl-tls13-sni": S_CLIENT + ["-tls1_3", "-servername",
                                     "api.example.test"],
    "openssl-tls12-sni": S_CLIENT + ["-tls1_2", "-servername",
                                     "git.example.test"],
    "openssl-mixedcase-dot": S_CLIENT + ["-servername", "Api.Example.TEST."],
    "openssl-nosni": S_CLIENT + ["-noservername"],
    "openssl-bugs-padding": S_CLIENT + ["-bugs", "-servername",
                                        "pad.example.test"],
    "openssl-large-10k": S_CLIENT + ["-servername", "big.example.test",
                                     "-groups", GROUPS, "-alpn", alpn(50)],
    "openssl-large-20k": S_CLIENT + ["-servername", "huge.example.test",
                                     "-groups", GROUPS, "-alpn", alpn(100)],
    "openssl-frag512": S_CLIENT + ["-servername", "frag.example.test",
                                   "-max_send_frag", "512", "-alpn",
                                   alpn(10)],
    "curl-tls13": curl("--resolve", "api.example.test:{port}:127.0.0.1",
                       "https://api.example.test:{port}/"),
    "curl-tls12": curl("--tlsv1.2", "--tls-max", "1.2", "--resolve",
                       "git.example.test:{port}:127.0.0.1",
                       "https://git.example.test:{port}/"),
    "curl-ip-nosni": curl("https://127.0.0.1:{port}/"),
    "python-tls13": ["/usr/bin/python3", "-c", PYTHON, "{port}",
                     "pypi.example.test", "1.3"],
    "python-tls12": ["/usr/bin/python3", "-c", PYTHON, "{port}",
                     "pypi.example.test", "1.2"],
    "python-nosni": ["/usr/bin/python3", "-c", PYTHON, "{port}", "", "1.3"],
    "wget-gnutls-connect": ["wget", "-q", "-t", "1", "-T", "5",
                            "--no-check-certificate", "-O", "/dev/null",
                            "-e", "use_proxy=on", "-e",
                            "https_proxy=http://127.0.0.1:{port}/",
                            "https://files.example.test/"],
    "java-jsse": ["java", "{java}", "{port}"],
}


def record(conn):
    """The first bytes the client sends (after a CONNECT, if any)."""
    conn.settimeout(IDLE)
    data = b""
    while len(data) < LIMIT:
        try:
            chunk = conn.recv(LIMIT - len(data))
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
        if data.startswith(b"CONNECT ") and b"\r\n\r\n" in data:
            data = data.split(b"\r\n\r\n", 1)[1]
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    return data


def capture(name, argv, java):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(CLIENT_TIMEOUT)
    port = ls.getsockname()[1]
    argv = [a.format(port=port, java=java) for a in argv]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    result = {}

    def serve():
        try:
            conn, _ = ls.accept()
        except socket.timeout:
            return
        with conn:
            result["data"] = record(conn)

    t = threading.Thread(target=serve)
    t.start()
    t.join(CLIENT_TIMEOUT + IDLE)
    ls.close()
    try:
        proc.wait(timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    data = result.get("data", b"")
    if not data:
        print("%s: nothing recorded" % name, file=sys.stderr)
        return False
    with open(os.path.join(HERE, name + ".bin"), "wb") as f:
        f.write(data)
    print("%s: %d bytes" % (name, len(data)))
    return True


def main():
    names = sys.argv[1:] or list(CLIENTS)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        java = os.path.join(tmp, "Hello.java")
        with open(java, "w") as f:
            f.write(JAVA)
        for name in names:
            ok = capture(name, CLIENTS[name], java) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
