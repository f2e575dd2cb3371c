#!/bin/sh
# make-test-ca.sh OUTDIR [NAME...] -- a throw-away CA and one server
# certificate, for tests and local development only (never for production).
#
# Writes OUTDIR/ca.crt, ca.key, server.crt, server.key: EC P-256 keys, the
# server certificate signed by the CA, its subjectAltName made of the NAMEs
# (DNS names; "ip:1.2.3.4" for an IP address). Default NAME: localhost.
# Idempotent: when the files exist and the certificate already carries exactly
# these names, nothing is done; otherwise the server certificate is re-issued
# (the CA is kept). Quiet: prints nothing unless something fails.
set -eu

if [ $# -lt 1 ]; then
	echo "usage: $0 OUTDIR [NAME|ip:ADDR...]" >&2
	exit 2
fi
out=$1
shift
[ $# -gt 0 ] || set -- localhost

san=""
for n in "$@"; do
	case "$n" in
	ip:* | IP:*) e="IP:${n#*:}" ;;
	*) e="DNS:$n" ;;
	esac
	san="${san:+$san,}$e"
done

mkdir -p "$out"
umask 077

if [ -s "$out/ca.crt" ] && [ -s "$out/server.crt" ] && [ -s "$out/server.key" ] &&
	[ -s "$out/san.txt" ] && [ "$(cat "$out/san.txt")" = "$san" ]; then
	exit 0
fi

if ! [ -s "$out/ca.key" ] || ! [ -s "$out/ca.crt" ]; then
	openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca.key" 2>/dev/null
	openssl req -x509 -new -key "$out/ca.key" -sha256 -days 3650 \
		-subj "/CN=egressd test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$out/ca.crt" 2>/dev/null
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/server.key" 2>/dev/null
openssl req -new -key "$tmp/server.key" -subj "/CN=$1" -out "$tmp/server.csr" 2>/dev/null
cat >"$tmp/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
EXT
openssl x509 -req -in "$tmp/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
	-CAcreateserial -CAserial "$tmp/ca.srl" -sha256 -days 825 \
	-extfile "$tmp/ext.cnf" -out "$tmp/server.crt" 2>/dev/null
mv "$tmp/server.key" "$out/server.key"
mv "$tmp/server.crt" "$out/server.crt"
printf '%s\n' "$san" >"$out/san.txt"
chmod 644 "$out/ca.crt" "$out/server.crt"
