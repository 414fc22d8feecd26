#!/usr/bin/env bash
# Recreates examples/replay/capture.pcap: real traffic between two private network namespaces
# joined by a veth pair, captured on the client ("this host") with `tcpdump -i any`, which writes
# LINUX_SLL2 frames whose packet type tells each packet's direction.
#
#   client ns (this host)                      server ns
#   10.77.0.1/24, fd77::1/64  <== veth ==>  10.77.0.2/24, fd77::2/64
#
# Traffic, in order: DNS queries over UDP (v4: www.example.test, ads.blocked.example; v6: AAAA),
# an HTTP download over IPv4, an HTTP request carrying "X-Block-Me", an HTTP download over IPv6, a
# telnet attempt (TCP 23, nothing listening -> RST), two TLS ClientHellos (SNI www.blocked.example
# and ok.example.test), UDP to a closed port (-> ICMP port unreachable), ICMP and ICMPv6 echo, an
# inbound SSH-like connection from the server, and an inbound attempt to a closed port.
#
# Needs root, iproute2, tcpdump, python3 and curl. Sends nothing outside the two namespaces it
# creates, and deletes them on exit. Usage: sudo examples/replay/make-capture.sh [OUT.pcap]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/capture.pcap}"
tag="wfpreplay$$"
C="${tag}c"
S="${tag}s"
work="$(mktemp -d)"
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$C" 2>/dev/null || true
  ip netns del "$S" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for tool in ip tcpdump python3 curl; do
  command -v "$tool" >/dev/null || { echo "make-capture: $tool is required" >&2; exit 1; }
done

ip netns add "$C"
ip netns add "$S"
for ns in "$C" "$S"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.router_solicitations=0 \
    net.ipv6.conf.default.router_solicitations=0
done
ip link add "${tag}a" netns "$C" type veth peer name "${tag}b" netns "$S"
ip -n "$C" link set lo up
ip -n "$S" link set lo up
ip -n "$C" link set "${tag}a" name veth0
ip -n "$S" link set "${tag}b" name veth0
ip -n "$C" addr add 10.77.0.1/24 dev veth0
ip -n "$S" addr add 10.77.0.2/24 dev veth0
ip -n "$C" addr add fd77::1/64 dev veth0 nodad
ip -n "$S" addr add fd77::2/64 dev veth0 nodad
ip -n "$C" link set veth0 up
ip -n "$S" link set veth0 up

# Server side: a web server (dual stack), a DNS-like responder (v4 and v6), a TCP sink on 443.
mkdir -p "$work/www"
python3 -c "import sys; sys.stdout.write(''.join('line %05d of a small download\n' % i for i in range(500)))" \
  > "$work/www/file.txt"
(cd "$work/www" && exec ip netns exec "$S" python3 -m http.server 8080 --bind :: >/dev/null 2>&1) &
pids+=($!)
ip netns exec "$S" python3 - >/dev/null 2>&1 <<'EOF' &
import select, socket, struct, threading
def dns(family, addr):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((addr, 53))
    while True:
        q, peer = s.recvfrom(512)
        qtype = struct.unpack('!H', q[-4:-2])[0]
        rdata = socket.inet_pton(socket.AF_INET6, 'fd77::2') if qtype == 28 else socket.inet_aton('10.77.0.2')
        ans = b'\xc0\x0c' + struct.pack('!HHIH', qtype, 1, 60, len(rdata)) + rdata
        s.sendto(q[:2] + b'\x81\x80' + q[4:6] + b'\x00\x01\x00\x00\x00\x00' + q[12:] + ans, peer)
def sink():
    l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(('10.77.0.2', 443)); l.listen(8)
    while True:
        c, _ = l.accept()
        c.settimeout(2)
        try:
            while c.recv(4096): pass
        except OSError: pass
        c.close()
threading.Thread(target=dns, args=(socket.AF_INET, '10.77.0.2'), daemon=True).start()
threading.Thread(target=dns, args=(socket.AF_INET6, 'fd77::2'), daemon=True).start()
sink()
EOF
pids+=($!)
# Client side: an SSH-like banner service on 22 for the inbound connection.
ip netns exec "$C" python3 - >/dev/null 2>&1 <<'EOF' &
import socket
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('10.77.0.1', 22)); l.listen(4)
while True:
    c, _ = l.accept()
    c.sendall(b'SSH-2.0-wfp-example\r\n')
    c.recv(256)
    c.close()
EOF
pids+=($!)
sleep 1.5   # servers up, link-local chatter over before the capture starts

ip netns exec "$C" tcpdump -i any -U -s 0 -w "$out" >/dev/null 2>&1 &
tcpdump_pid=$!
pids+=($tcpdump_pid)
sleep 1

client() { ip netns exec "$C" python3 - "$@"; }

# 1. DNS: an allowed name, a blocked name (wfp.dns-blocker default list), an AAAA query over IPv6.
client <<'EOF'
import socket, struct
def query(family, server, name, qtype):
    s = socket.socket(family, socket.SOCK_DGRAM); s.settimeout(1)
    q = struct.pack('!HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)
    q += b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\0'
    q += struct.pack('!HH', qtype, 1)
    s.sendto(q, (server, 53))
    try: s.recvfrom(512)
    except OSError: pass
    s.close()
query(socket.AF_INET, '10.77.0.2', 'www.example.test', 1)
query(socket.AF_INET, '10.77.0.2', 'ads.blocked.example', 1)
query(socket.AF_INET6, 'fd77::2', 'www.example.test', 28)
EOF
sleep 0.2
# 2. HTTP over IPv4: a download, then a request carrying the stream pattern blocker's pattern.
ip netns exec "$C" curl -sS -o /dev/null http://10.77.0.2:8080/file.txt
ip netns exec "$C" curl -sS -o /dev/null -H 'X-Block-Me: please' http://10.77.0.2:8080/
# 3. HTTP over IPv6.
ip netns exec "$C" curl -sS -o /dev/null -g 'http://[fd77::2]:8080/file.txt'
sleep 0.2
# 4. telnet attempt (nothing listens on 23: RST), TLS ClientHellos, UDP to a closed port, pings.
client <<'EOF'
import os, socket, ssl, struct, time
try:
    socket.create_connection(('10.77.0.2', 23), timeout=1)
except OSError:
    pass
def hello(name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, outg = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, outg, server_hostname=name)
    try: obj.do_handshake()
    except ssl.SSLWantReadError: pass
    c = socket.create_connection(('10.77.0.2', 443), timeout=1)
    c.sendall(outg.read())
    time.sleep(0.1)
    c.close()
hello('www.blocked.example')
hello('ok.example.test')
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b'anyone there?', ('10.77.0.2', 9999))
time.sleep(0.2)
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
p4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
body = struct.pack('!HH', 0x77, 1) + b'wfp-example-ping'
p4.sendto(struct.pack('!BBH', 8, 0, csum(b'\x08\x00\x00\x00' + body)) + body, ('10.77.0.2', 0))
p6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
p6.sendto(b'\x80\x00\x00\x00' + body, ('fd77::2', 0))   # the kernel fills the ICMPv6 checksum
time.sleep(0.3)
EOF
# 5. Inbound: the server connects to the client's SSH-like service, then to a closed port.
ip netns exec "$S" python3 - <<'EOF'
import socket, time
c = socket.create_connection(('10.77.0.1', 22), timeout=2)
c.recv(256); c.sendall(b'SSH-2.0-client\r\n'); time.sleep(0.1); c.close()
try:
    socket.create_connection(('10.77.0.1', 9000), timeout=1)
except OSError:
    pass
EOF
sleep 1
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
echo "wrote $out ($(stat -c %s "$out") bytes)"
