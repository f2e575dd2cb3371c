#!/bin/sh
# make-client-cert.sh OUTDIR NAME [SAN...] -- a TLS client certificate signed
# by the throw-away CA that make-test-ca.sh made in OUTDIR, for tests and
# local development only (never for production).
#
# Writes OUTDIR/NAME.crt and OUTDIR/NAME.key: an EC P-256 key and a
# certificate with subject CN=NAME, extendedKeyUsage clientAuth, and a
# subjectAltName made of the SANs, if any: "dns:NAME" (or a bare name) for a
# DNS name, "uri:URI" for a URI (spiffe://cluster.local/ns/agents/sa/agent-1),
# "ip:ADDR" for an address, "email:ADDR" for an e-mail address. Without SANs
# the certificate names its holder by its CN alone. NAME is used as a file
# name: letters, digits, '.', '_' and '-'. Re-issues the certificate on every
# run. Quiet: prints nothing unless something fails.
set -eu

if [ $# -lt 2 ]; then
	echo "usage: $0 OUTDIR NAME [dns:NAME|uri:URI|ip:ADDR|email:ADDR|NAME...]" >&2
	exit 2
fi
out=$1
name=$2
shift 2

case "$name" in
"" | *[!A-Za-z0-9._-]* | .*)
	echo "$0: NAME must be letters, digits, '.', '_' and '-' (got '$name')" >&2
	exit 2
	;;
esac
if ! [ -s "$out/ca.crt" ] || ! [ -s "$out/ca.key" ]; then
	echo "$0: no CA in $out (make it with make-test-ca.sh $out)" >&2
	exit 1
fi

san=""
for n in "$@"; do
	case "$n" in
	dns:* | DNS:*) e="DNS:${n#*:}" ;;
	uri:* | URI:*) e="URI:${n#*:}" ;;
	ip:* | IP:*) e="IP:${n#*:}" ;;
	email:* | EMAIL:*) e="email:${n#*:}" ;;
	*) e="DNS:$n" ;;
	esac
	case "$e" in
	*,*)
		echo "$0: a SAN may not contain ',' (got '$n')" >&2
		exit 2
		;;
	esac
	san="${san:+$san,}$e"
done

umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/client.key" 2>"$tmp/err" ||
	{ cat "$tmp/err" >&2; exit 1; }
openssl req -new -key "$tmp/client.key" -subj "/CN=$name" -out "$tmp/client.csr" 2>"$tmp/err" ||
	{ cat "$tmp/err" >&2; exit 1; }
cat >"$tmp/ext.cnf" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EXT
[ -z "$san" ] || echo "subjectAltName=$san" >>"$tmp/ext.cnf"
openssl x509 -req -in "$tmp/client.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
	-CAcreateserial -CAserial "$tmp/ca.srl" -sha256 -days 825 \
	-extfile "$tmp/ext.cnf" -out "$tmp/client.crt" 2>"$tmp/err" ||
	{ cat "$tmp/err" >&2; exit 1; }
mv "$tmp/client.key" "$out/$name.key"
mv "$tmp/client.crt" "$out/$name.crt"
chmod 644 "$out/$name.crt"
