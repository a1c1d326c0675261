#!/usr/bin/env python3
"""Socket roles for the real-traffic kernel tests (stdlib only).

Every server prints "ready" on stdout once all its sockets listen, answers each TCP connection with
one line of JSON (each UDP datagram with one JSON datagram), and exits on SIGTERM. Every client
prints exactly one line of JSON: the server's answer, or {"error": "..."}.

    listen-redirect --port P [--family 4|6|46] --name NAME [--uid U] [--gid G]  # reports SO_ORIGINAL_DST as origDst
    listen-tproxy   --port P [--family 4|6|46] --name NAME [--uid U] [--gid G]  # IP_TRANSPARENT / IPV6_TRANSPARENT
    listen-plain    --port P [--family 4|6|46] --name NAME [--uid U] [--gid G]
    listen-udp      --port P [--family 4|6|46] --name NAME [--uid U] [--gid G]  # replies from the address it was sent to
    connect --dst ADDR --port P [--src ADDR] [--uid U] [--gid G] [--mark M] [--transparent] [--timeout S]
    udp     --dst ADDR --port P [--src ADDR] [--uid U] [--gid G] [--mark M] [--timeout S]

Family 46 (the default) listens on 0.0.0.0 and on [::] (IPV6_V6ONLY) in one process. IPv4-mapped
IPv6 addresses are reported as plain IPv4.

Clients and servers drop privileges (setgroups([]), setgid, setuid) BEFORE creating their sockets:
iptables' owner match reads the credentials the socket's file was opened with, so a socket made as
root and used after setuid would still count as root. --mark, --transparent and listen-tproxy need
CAP_NET_ADMIN (ports below 1024 CAP_NET_BIND_SERVICE), which a non-root uid then keeps through
PR_SET_KEEPCAPS + capset, as a proxy container granted NET_ADMIN does. Clients add clientUid and
clientGid (the ids they ran as) to what they print.
"""

import argparse
import ctypes
import ipaddress
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

SOL_IP = 0
SOL_IPV6 = 41
SO_ORIGINAL_DST = 80  # SOL_IP; IP6T_SO_ORIGINAL_DST is also 80 at SOL_IPV6
IP_TRANSPARENT = 19
IPV6_TRANSPARENT = 75
SO_MARK = 36
IP_PKTINFO = 8
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
PR_SET_KEEPCAPS = 8
CAP_NET_BIND_SERVICE = 10
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
LINUX_CAPABILITY_VERSION_3 = 0x20080522


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def norm_addr(addr):
    """Plain IPv4 for IPv4-mapped IPv6 addresses, canonical text otherwise."""
    try:
        ip = ipaddress.ip_address(addr.split("%")[0])
    except ValueError:
        return addr
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def sockaddr(sa):
    return [norm_addr(sa[0]), sa[1]]


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def families(spec):
    return {"4": [socket.AF_INET], "6": [socket.AF_INET6], "46": [socket.AF_INET, socket.AF_INET6]}[spec]


def wildcard(fam):
    return "::" if fam == socket.AF_INET6 else "0.0.0.0"


def original_dst(conn):
    """SO_ORIGINAL_DST: the destination before NAT, from conntrack; None without a conntrack entry."""
    try:
        if conn.family == socket.AF_INET6:
            raw = conn.getsockopt(SOL_IPV6, SO_ORIGINAL_DST, 28)
            # struct sockaddr_in6: family u16, port be16, flowinfo u32, addr[16], scope_id u32
            port = struct.unpack("!H", raw[2:4])[0]
            return [norm_addr(socket.inet_ntop(socket.AF_INET6, raw[8:24])), port]
        raw = conn.getsockopt(SOL_IP, SO_ORIGINAL_DST, 16)
        # struct sockaddr_in: family u16, port be16, addr[4], zero[8]
        port = struct.unpack("!H", raw[2:4])[0]
        return [socket.inet_ntop(socket.AF_INET, raw[4:8]), port]
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# servers


def tcp_socket(fam, port, transparent):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    if transparent:
        set_transparent(s, fam)
    s.bind((wildcard(fam), port))
    s.listen(128)
    return s


def set_transparent(s, fam):
    if fam == socket.AF_INET6:
        s.setsockopt(SOL_IPV6, IPV6_TRANSPARENT, 1)
    else:
        s.setsockopt(SOL_IP, IP_TRANSPARENT, 1)


def serve_tcp(sockets, reply):
    def handle(conn):
        try:
            conn.settimeout(5)
            conn.sendall((json.dumps(reply(conn)) + "\n").encode())
        except OSError:
            pass
        finally:
            conn.close()

    def accept_loop(s):
        while True:
            try:
                conn, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    for s in sockets:
        threading.Thread(target=accept_loop, args=(s,), daemon=True).start()


def base_reply(name, conn):
    local = conn.getsockname()
    return {"who": name, "localPort": local[1], "local": sockaddr(local), "peer": sockaddr(conn.getpeername())}


def cmd_listen_tcp(args, kind):
    drop_privileges(args.uid, args.gid, kind == "tproxy" or args.port < 1024)
    socks = [tcp_socket(f, args.port, kind == "tproxy") for f in families(args.family)]

    def reply(conn):
        r = base_reply(args.name, conn)
        if kind == "redirect":
            r["origDst"] = original_dst(conn)
        return r

    serve_tcp(socks, reply)
    ready_and_wait()


def cmd_listen_udp(args):
    drop_privileges(args.uid, args.gid, args.port < 1024)
    socks = []
    for fam in families(args.family):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.setsockopt(SOL_IPV6, IPV6_RECVPKTINFO, 1)
        else:
            s.setsockopt(SOL_IP, IP_PKTINFO, 1)
        s.bind((wildcard(fam), args.port))
        socks.append(s)

    def loop(s):
        while True:
            try:
                _data, anc, _flags, peer = s.recvmsg(2048, 256)
            except OSError:
                return
            local_addr, cmsgs = None, []
            for level, typ, data in anc:
                if level == SOL_IP and typ == IP_PKTINFO:
                    # struct in_pktinfo: ifindex int, spec_dst[4], addr[4] (the header destination)
                    local_addr = socket.inet_ntop(socket.AF_INET, data[8:12])
                    cmsgs = [(SOL_IP, IP_PKTINFO, struct.pack("i4s4s", 0, data[8:12], b"\0" * 4))]
                elif level == SOL_IPV6 and typ == IPV6_PKTINFO:
                    # struct in6_pktinfo: addr[16], ifindex int
                    local_addr = socket.inet_ntop(socket.AF_INET6, data[0:16])
                    cmsgs = [(SOL_IPV6, IPV6_PKTINFO, data[0:16] + struct.pack("i", 0))]
            reply = {"who": args.name, "peer": sockaddr(peer), "local": [norm_addr(local_addr) if local_addr else None, args.port]}
            try:
                # Answer from the address the datagram was sent to, as a DNS server must.
                s.sendmsg([json.dumps(reply).encode()], cmsgs, 0, peer)
            except OSError:
                pass

    for s in socks:
        threading.Thread(target=loop, args=(s,), daemon=True).start()
    ready_and_wait()


def ready_and_wait():
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        signal.pause()


# ---------------------------------------------------------------------------------------------
# clients


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges(uid, gid, keep_net_admin):
    """setgroups([]), setgid, setuid; optionally keep NET_ADMIN, NET_RAW, NET_BIND_SERVICE afterwards."""
    if uid is None and gid is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if keep_net_admin and uid is not None and uid != 0:
        if libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    if gid is not None:
        os.setgid(gid)
    if uid is not None:
        os.setuid(uid)
    if keep_net_admin and uid is not None and uid != 0:
        caps = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << CAP_NET_BIND_SERVICE)
        hdr = CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
        data = (CapData * 2)()
        data[0].effective = caps
        data[0].permitted = caps
        if libc.capset(ctypes.byref(hdr), ctypes.byref(data)) != 0:
            raise OSError(ctypes.get_errno(), "capset")


def client_socket(args, kind):
    fam = family_of(args.dst)
    drop_privileges(args.uid, args.gid, bool(args.mark is not None or getattr(args, "transparent", False)))
    s = socket.socket(fam, kind)
    s.settimeout(args.timeout)
    if args.mark is not None:
        s.setsockopt(socket.SOL_SOCKET, SO_MARK, args.mark)
    if getattr(args, "transparent", False):
        set_transparent(s, fam)
    if args.src:
        s.bind((args.src, 0))
    return s


def error_text(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ConnectionResetError):
        return "reset"
    return f"{type(e).__name__}: {e}"


def with_ids(reply):
    reply["clientUid"] = os.getuid()
    reply["clientGid"] = os.getgid()
    return reply


def cmd_connect(args):
    try:
        s = client_socket(args, socket.SOCK_STREAM)
    except OSError as e:
        out({"error": f"setup: {error_text(e)}"})
        return
    deadline = time.monotonic() + args.timeout
    try:
        s.connect((args.dst, args.port))
        client_local = sockaddr(s.getsockname())
        buf = b""
        while not buf.endswith(b"\n"):
            s.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
        if not buf:
            out({"error": "closed without a reply", "clientLocal": client_local})
            return
        reply = json.loads(buf.decode())
        reply["clientLocal"] = client_local
        out(with_ids(reply))
    except (OSError, ValueError) as e:
        out({"error": error_text(e)})
    finally:
        s.close()


def cmd_udp(args):
    try:
        s = client_socket(args, socket.SOCK_DGRAM)
    except OSError as e:
        out({"error": f"setup: {error_text(e)}"})
        return
    try:
        s.sendto(b"query", (args.dst, args.port))
        data, sender = s.recvfrom(4096)
        reply = json.loads(data.decode())
        reply["from"] = sockaddr(sender)
        out(with_ids(reply))
    except (OSError, ValueError) as e:
        out({"error": error_text(e)})
    finally:
        s.close()


def main():
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    p = argparse.ArgumentParser(prog="agent.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("listen-redirect", "listen-tproxy", "listen-plain", "listen-udp"):
        sp = sub.add_parser(name)
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--family", choices=["4", "6", "46"], default="46")
        sp.add_argument("--name", required=True)
        sp.add_argument("--uid", type=int)
        sp.add_argument("--gid", type=int)
    for name in ("connect", "udp"):
        sp = sub.add_parser(name)
        sp.add_argument("--dst", required=True)
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--src")
        sp.add_argument("--uid", type=int)
        sp.add_argument("--gid", type=int)
        sp.add_argument("--mark", type=int)
        sp.add_argument("--timeout", type=float, default=2.0)
        if name == "connect":
            sp.add_argument("--transparent", action="store_true")
    args = p.parse_args()
    if args.cmd == "listen-redirect":
        cmd_listen_tcp(args, "redirect")
    elif args.cmd == "listen-tproxy":
        cmd_listen_tcp(args, "tproxy")
    elif args.cmd == "listen-plain":
        cmd_listen_tcp(args, "plain")
    elif args.cmd == "listen-udp":
        cmd_listen_udp(args)
    elif args.cmd == "connect":
        cmd_connect(args)
    elif args.cmd == "udp":
        cmd_udp(args)


if __name__ == "__main__":
    main()
