#!/usr/bin/env bash
# Recreates the captures of examples/captures/: real traffic between two private network namespaces,
# through kernel tunnels, recorded with tcpdump.
#
#   ns A ("this host")                               ns B (a peer)
#   veth0 10.99.0.1/24  <======== veth ========>  veth0 10.99.0.2/24      (the underlay)
#   gre1    10.200.1.1/30  GRE, key 42              10.200.1.2/30
#   gretap1 10.200.5.1/30  Ethernet over GRE, key 7 10.200.5.2/30
#   vxlan1  10.200.2.1/30  VXLAN, VNI 100, UDP 4789 10.200.2.2/30
#   ipip1   10.200.3.1/30  IPv4 in IPv4              10.200.3.2/30
#   sit1    fd99:4::1/64   IPv6 in IPv4 (6in4)      fd99:4::2/64
#
# Each tunnel capture (tcpdump -i veth0 in A: the underlay, so every packet is the outer one) holds
# one TCP exchange (A connects to B:8000, sends a request, B answers, both close) and one UDP
# exchange (A sends a datagram to B:9000, B echoes it). Inner payloads name the tunnel.
#
#   gre.pcap gretap.pcap vxlan.pcap ipip.pcap sit.pcap   the tunnels above
#   loopback.pcap   client and server on `lo` of ns A (127.0.0.1:8000 TCP, 127.0.0.1:9000 UDP)
#   tfo.pcap        TCP Fast Open on the underlay: net.ipv4.tcp_fastopen=3 in both namespaces, the
#                   client connects twice with MSG_FASTOPEN: the first SYN asks for a cookie, the
#                   second carries its request in the SYN
#
# GRE, IPIP and 6in4 use the kernel's gre / gretap / ipip / sit devices when it has them; a kernel
# without those modules (the sandbox these files were made in has VXLAN only) gets a small
# userspace tunnel endpoint instead (tunnel.py below: a TUN device whose packets it sends through
# a raw IP socket of protocol 47, 4 or 41 with the RFC 2784/2890 GRE header, or none for IPIP and
# 6in4, and back). Either way the inner TCP and UDP traffic is the kernel's own; the Ethernet-over-
# GRE capture needs the kernel's gretap and is skipped without it.
#
# Needs root, iproute2, tcpdump and python3.
# Sends nothing outside the namespaces it creates, every client and server gives up after a few
# seconds, and the namespaces are deleted on exit. Usage: sudo examples/captures/make-captures.sh [DIR]
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
tag="wfpcap$$"
A="${tag}a"
B="${tag}b"
work="$(mktemp -d)"
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for tool in ip tcpdump python3; do
  command -v "$tool" >/dev/null || { echo "make-captures: $tool is required" >&2; exit 1; }
done

# The peer programs: a TCP server answering one request per connection, a UDP echo, and a client
# doing one exchange of each (or a Fast Open connection). Every socket has a timeout.
cat >"$work/peer.py" <<'EOF'
import socket, sys

MSG_FASTOPEN = 0x20000000
TCP_FASTOPEN = 23

def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET

def tcp_server(addr, port, conns, fastopen):
    s = socket.socket(family(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fastopen:
        s.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, 5)
    s.bind((addr, port))
    s.listen(4)
    s.settimeout(10)
    for _ in range(conns):
        c, _ = s.accept()
        c.settimeout(5)
        data = c.recv(4096)
        c.sendall(b"reply to " + data)
        c.close()

def udp_server(addr, port):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.bind((addr, port))
    s.settimeout(10)
    data, peer = s.recvfrom(4096)
    s.sendto(b"echo " + data, peer)

def client(addr, label, fastopen):
    msg = ("request over %s\n" % label).encode()
    for attempt in range(2 if fastopen else 1):
        s = socket.socket(family(addr), socket.SOCK_STREAM)
        if fastopen:
            # Blocking: a socket with a timeout is non-blocking and sendto would say EINPROGRESS.
            s.sendto(msg, MSG_FASTOPEN, (addr, 8000))
            s.settimeout(5)
        else:
            s.settimeout(5)
            s.connect((addr, 8000))
            s.sendall(msg)
        reply = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
        s.close()
        assert reply.startswith(b"reply to "), reply
    if not fastopen:
        u = socket.socket(family(addr), socket.SOCK_DGRAM)
        u.settimeout(5)
        u.sendto(("datagram over %s" % label).encode(), (addr, 9000))
        assert u.recvfrom(4096)[0].startswith(b"echo ")

mode = sys.argv[1]
if mode == "tcp":
    tcp_server(sys.argv[2], 8000, int(sys.argv[3]), sys.argv[4] == "fastopen")
elif mode == "udp":
    udp_server(sys.argv[2], 9000)
else:
    client(sys.argv[2], sys.argv[3], mode == "fastopen")
EOF

# Userspace tunnel endpoint: tunnel.py KIND LOCAL REMOTE TUN KEY SECONDS.
cat >"$work/tunnel.py" <<'EOF'
import fcntl, os, select, socket, struct, sys, time

kind, local, remote, name, key, seconds = sys.argv[1:7]
proto = {"gre": 47, "ipip": 4, "sit": 41}[kind]
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, 0x400454CA, struct.pack("16sH", name.encode(), 0x0001 | 0x1000))  # TUNSETIFF, IFF_TUN | IFF_NO_PI
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
raw.bind((local, 0))
end = time.time() + float(seconds)
while time.time() < end:
    ready, _, _ = select.select([tun, raw], [], [], 0.2)
    if tun in ready:
        inner = os.read(tun, 65535)
        if kind == "gre":
            ethertype = 0x86DD if inner[0] >> 4 == 6 else 0x0800
            inner = struct.pack("!HHI", 0x2000, ethertype, int(key)) + inner
        raw.sendto(inner, (remote, 0))
    if raw in ready:
        packet, (src, _) = raw.recvfrom(65535)
        if src != remote:
            continue
        payload = packet[(packet[0] & 0x0F) * 4:]
        if kind == "gre":
            flags = struct.unpack("!H", payload[:2])[0]
            payload = payload[4 + 4 * bin(flags & 0xB000).count("1"):]
        os.write(tun, payload)
EOF

ip netns add "$A"
ip netns add "$B"
for ns in "$A" "$B"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.router_solicitations=0 \
    net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.all.accept_dad=0 \
    net.ipv6.conf.default.accept_dad=0
  ip -n "$ns" link set lo up
done
ip link add "${tag}x" netns "$A" type veth peer name "${tag}y" netns "$B"
ip -n "$A" link set "${tag}x" name veth0
ip -n "$B" link set "${tag}y" name veth0
ip -n "$A" addr add 10.99.0.1/24 dev veth0
ip -n "$B" addr add 10.99.0.2/24 dev veth0
ip -n "$A" link set veth0 up
ip -n "$B" link set veth0 up

# wait_for TENTHS COMMAND...: runs COMMAND every 0.1 s until it succeeds, at most TENTHS times.
wait_for() {
  local n="$1"
  shift
  for _ in $(seq "$n"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "make-captures: gave up waiting for: $*" >&2
  return 1
}

# tunnel NAME "TYPE ARGS (A side)" "TYPE ARGS (B side)" ADDR_A ADDR_B [USERSPACE_KIND KEY]
tunnel() {
  local name="$1" a_args="$2" b_args="$3" addr_a="$4" addr_b="$5" user="${6:-}" key="${7:-0}"
  # shellcheck disable=SC2086
  if ip -n "$A" link add "$name" $a_args 2>/dev/null; then
    # shellcheck disable=SC2086
    ip -n "$B" link add "$name" $b_args
  elif [ -n "$user" ]; then
    echo "make-captures: no kernel $user device here; $name is a userspace tunnel endpoint"
    ip netns exec "$A" timeout 120 python3 "$work/tunnel.py" "$user" 10.99.0.1 10.99.0.2 "$name" "$key" 110 &
    pids+=("$!")
    ip netns exec "$B" timeout 120 python3 "$work/tunnel.py" "$user" 10.99.0.2 10.99.0.1 "$name" "$key" 110 &
    pids+=("$!")
    wait_for 100 ip -n "$A" link show "$name"
    wait_for 100 ip -n "$B" link show "$name"
    ip -n "$A" link set "$name" mtu 1400
    ip -n "$B" link set "$name" mtu 1400
  else
    echo "make-captures: no kernel support for $name; skipped"
    return 0
  fi
  ip -n "$A" addr add "$addr_a" dev "$name" nodad 2>/dev/null || ip -n "$A" addr add "$addr_a" dev "$name"
  ip -n "$B" addr add "$addr_b" dev "$name" nodad 2>/dev/null || ip -n "$B" addr add "$addr_b" dev "$name"
  ip -n "$A" link set "$name" up
  ip -n "$B" link set "$name" up
}

tunnel gre1 "type gre local 10.99.0.1 remote 10.99.0.2 key 42" \
  "type gre local 10.99.0.2 remote 10.99.0.1 key 42" 10.200.1.1/30 10.200.1.2/30 gre 42
tunnel gretap1 "type gretap local 10.99.0.1 remote 10.99.0.2 key 7" \
  "type gretap local 10.99.0.2 remote 10.99.0.1 key 7" 10.200.5.1/30 10.200.5.2/30
tunnel vxlan1 "type vxlan id 100 local 10.99.0.1 remote 10.99.0.2 dstport 4789 dev veth0" \
  "type vxlan id 100 local 10.99.0.2 remote 10.99.0.1 dstport 4789 dev veth0" \
  10.200.2.1/30 10.200.2.2/30
tunnel ipip1 "type ipip local 10.99.0.1 remote 10.99.0.2" \
  "type ipip local 10.99.0.2 remote 10.99.0.1" 10.200.3.1/30 10.200.3.2/30 ipip
tunnel sit1 "type sit local 10.99.0.1 remote 10.99.0.2" \
  "type sit local 10.99.0.2 remote 10.99.0.1" fd99:4::1/64 fd99:4::2/64 sit

# capture NS IFACE FILE MODE SERVER_NS SERVER_ADDR LABEL: record one exchange.
capture() {
  local ns="$1" iface="$2" file="$3" mode="$4" sns="$5" addr="$6" label="$7" conns=1 fo=plain
  if ! ip netns exec "$ns" ip route get "$addr" >/dev/null 2>&1; then
    echo "make-captures: no route to $addr; $file skipped"
    return 0
  fi
  if [ "$mode" = fastopen ]; then conns=2; fo=fastopen; fi
  ip netns exec "$ns" tcpdump -q -U --immediate-mode -n -s 0 -i "$iface" -w "$work/$file" >/dev/null 2>"$work/$file.log" &
  local dump=$!
  pids+=("$dump")
  wait_for 100 grep -q "listening on" "$work/$file.log"
  ip netns exec "$sns" timeout 15 python3 "$work/peer.py" tcp "$addr" "$conns" "$fo" &
  local tcp=$!
  local udp=
  if [ "$mode" = plain ]; then
    ip netns exec "$sns" timeout 15 python3 "$work/peer.py" udp "$addr" &
    udp=$!
  fi
  # The server listens (port 8000 = 0x1F40 in state 0A in /proc/net/tcp or tcp6).
  wait_for 100 ip netns exec "$sns" grep -qE ':1F40 [0-9A-F]+:[0-9A-F]+ 0A ' /proc/net/tcp /proc/net/tcp6
  ip netns exec "$ns" timeout 15 python3 "$work/peer.py" "$mode" "$addr" "$label"
  wait "$tcp"
  [ -z "$udp" ] || wait "$udp"
  # tcpdump hands packets over from its ring buffer in blocks: give it time before stopping it.
  sleep 1.5
  kill "$dump"
  wait "$dump" 2>/dev/null || true
  cp "$work/$file" "$out/$file"
  echo "make-captures: $out/$file ($(stat -c %s "$out/$file") bytes)"
}

# Let the tunnels' own chatter (IPv6 autoconfiguration on gretap/vxlan) settle before recording.
sleep 2
capture "$A" veth0 gre.pcap plain "$B" 10.200.1.2 GRE
capture "$A" veth0 gretap.pcap plain "$B" 10.200.5.2 "Ethernet over GRE"
capture "$A" veth0 vxlan.pcap plain "$B" 10.200.2.2 VXLAN
capture "$A" veth0 ipip.pcap plain "$B" 10.200.3.2 IPIP
capture "$A" veth0 sit.pcap plain "$B" fd99:4::2 6in4
capture "$A" lo loopback.pcap plain "$A" 127.0.0.1 loopback
for ns in "$A" "$B"; do ip netns exec "$ns" sysctl -qw net.ipv4.tcp_fastopen=3; done
capture "$A" veth0 tfo.pcap fastopen "$B" 10.99.0.2 "TCP Fast Open"
