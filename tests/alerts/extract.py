"""Write the PrometheusRule's groups as a Prometheus rules file (what the
Prometheus Operator hands Prometheus), for promtool and the live test.

usage: extract.py PROMETHEUSRULE.yaml OUT.yml"""

import sys

import yaml


def main(src, out):
    with open(src) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    rules = [d for d in docs if d.get("kind") == "PrometheusRule"]
    if len(rules) != 1:
        sys.exit("extract: %s: want one PrometheusRule, found %d" % (src, len(rules)))
    groups = rules[0]["spec"]["groups"]
    with open(out, "w") as f:
        f.write("# Generated from %s by tests/alerts/extract.py\n" % src)
        yaml.safe_dump({"groups": groups}, f, sort_keys=False)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
