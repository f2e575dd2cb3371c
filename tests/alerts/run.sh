#!/bin/sh
# The alert rules of k8s/components/monitoring/prometheusrule.yaml, as
# Prometheus reads them: extracted to a rules file, checked by promtool,
# and unit-tested (rules.test.yml: series in, alerts out).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d /tmp/egressd-alerts.XXXXXX)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 "$here/extract.py" \
	"$root/k8s/components/monitoring/prometheusrule.yaml" "$work/rules.yml"
cp "$here/rules.test.yml" "$work/"
promtool check rules "$work/rules.yml"
(cd "$work" && promtool test rules rules.test.yml)
