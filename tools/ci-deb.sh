#!/usr/bin/env bash
# CI step for the Debian package: builds it (tools/build-deb.sh), installs it with `dpkg -i` on
# this machine, runs the installed binaries from their installed paths — `wfpd --check` with the
# installed default configuration, `wfpctl --version` — checks the headers, pkg-config file, man
# pages, completions and unit are where the package says, builds a callout driver with the
# installed headers, then purges the package (also on failure).
#
# Usage: tools/ci-deb.sh            (needs root and dpkg; skips with a note otherwise)
#   WFP_DEB_PROFILE=release|debug   binaries to package (default debug: CI has just built them
#                                   for `cargo test`, so packaging costs no second build)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null 2>&1; then
  echo "ci-deb: skipped (needs root and dpkg)"
  exit 0
fi
profile=${WFP_DEB_PROFILE:-debug}
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)

deb=$(bash tools/build-deb.sh --profile "$profile" --out target/deb | tail -n 1)
echo "ci-deb: built $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'
contents=$(dpkg-deb --contents "$deb")
for path in ./usr/sbin/wfpd ./usr/bin/wfpctl ./usr/include/wfp-ddk/fwpsk.h ./usr/include/wfp-ddk/wfp/km.h \
  ./usr/lib/systemd/system/wfpd.service ./usr/lib/systemd/system/wfpd-boottime.service \
  ./usr/share/doc/wfp-engine/boottime.md ./etc/wfpd/wfpd.toml ./etc/wfpd/policy.toml \
  ./usr/share/man/man1/wfpctl.1.gz ./usr/share/man/man1/wfpctl-top.1.gz ./usr/share/man/man8/wfpd.8.gz \
  ./usr/share/bash-completion/completions/wfpctl ./usr/share/zsh/vendor-completions/_wfpctl \
  ./usr/share/fish/vendor_completions.d/wfpctl.fish; do
  grep -q " $path\$" <<<"$contents" || { echo "ci-deb: $path is not in the package" >&2; exit 1; }
done
for f in pkgconfig/wfp-ddk.pc pkgconfig/wfp-fwpmu.pc libwfp_fwpmu.so libwfp_fwpmu.a; do
  grep -q "/$f\$" <<<"$contents" || { echo "ci-deb: no $f in the package" >&2; exit 1; }
done

if dpkg -s wfp-engine >/dev/null 2>&1; then
  echo "ci-deb: wfp-engine is already installed on this machine; not touching it" >&2
  exit 1
fi
scratch=$(mktemp -d)
cleanup() {
  dpkg --purge wfp-engine >/dev/null 2>&1 || true
  rm -rf "$scratch"
}
trap cleanup EXIT
dpkg -i "$deb"

# The installed daemon checks the installed configuration and policy.
/usr/sbin/wfpd --config /etc/wfpd/wfpd.toml --check
got=$(/usr/bin/wfpctl --version)
[ "$got" = "wfpctl $version" ] || { echo "ci-deb: wfpctl --version said '$got'" >&2; exit 1; }
echo "ci-deb: $got"

# The unit runs the installed binary; headers and pkg-config agree.
grep -q '^ExecStart=/usr/sbin/wfpd --config /etc/wfpd/wfpd.toml$' /usr/lib/systemd/system/wfpd.service
grep -q '^ExecStart=/usr/sbin/nft -f /var/lib/wfpd/boottime.nft$' /usr/lib/systemd/system/wfpd-boottime.service
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
pc=/usr/lib/$multiarch/pkgconfig/wfp-ddk.pc
grep -q '^includedir=${prefix}/include/wfp-ddk$' "$pc"
if command -v pkg-config >/dev/null 2>&1; then
  pkg-config --cflags wfp-ddk | grep -q -- '-I/usr/include/wfp-ddk'
fi
[ -d /var/lib/wfpd ] || { echo "ci-deb: postinst did not create /var/lib/wfpd" >&2; exit 1; }

# Man pages and bash completion work from their installed places.
if command -v man >/dev/null 2>&1; then
  MANPAGER=cat man -l /usr/share/man/man1/wfpctl-decide.1.gz | grep -q 'wfpctl-decide'
  MANPAGER=cat man -l /usr/share/man/man8/wfpd.8.gz | grep -q -- '--check'
fi
bash -c 'source /usr/share/bash-completion/completions/wfpctl && complete -p wfpctl' | grep -q '_wfpctl'

# A user-mode management program builds against the installed fwpmu.h and library, links from
# the installed path, and gets EPT_S_NOT_REGISTERED (daemon unreachable) for an absent socket.
if command -v gcc >/dev/null 2>&1; then
  printf '%s\n' '#include "initguid.h"' '#include "fwpmu.h"' '#include <stdio.h>' \
    'int main(void) {' \
    '    HANDLE h = NULL;' \
    '    DWORD rc = FwpmEngineOpen0(L"/nonexistent/wfpd.sock", RPC_C_AUTHN_DEFAULT, NULL, NULL, &h);' \
    '    printf("FwpmEngineOpen0 = %lu\n", (unsigned long)rc);' \
    '    return rc == EPT_S_NOT_REGISTERED ? 0 : 1;' \
    '}' > "$scratch/open.c"
  if command -v pkg-config >/dev/null 2>&1; then
    read -r -a flags <<<"$(pkg-config --cflags --libs wfp-fwpmu)"
  else
    flags=(-I/usr/include/wfp-ddk -fshort-wchar -lwfp_fwpmu)
  fi
  gcc -std=gnu11 "$scratch/open.c" "${flags[@]}" -o "$scratch/open"
  "$scratch/open"
fi

# A WDK-style driver builds against the installed headers (profile.d names them).
if command -v gcc >/dev/null 2>&1; then
  (. /etc/profile.d/wfp-ddk.sh && /usr/bin/wfpctl driver build examples/drivers/flowmon/flowmon.c -o "$scratch/flowmon.so")
  [ -s "$scratch/flowmon.so" ]
fi

dpkg --purge wfp-engine
[ ! -e /usr/bin/wfpctl ] && [ ! -e /usr/sbin/wfpd ] && [ ! -e /var/lib/wfpd ] \
  && [ ! -e "/usr/lib/$multiarch/libwfp_fwpmu.so" ] \
  || { echo "ci-deb: purge left files behind" >&2; exit 1; }
echo "ci-deb: 1 passed, 0 failed"
