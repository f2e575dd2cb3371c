"""The rendered sidecar-lockdown overlay, made playable by podman 4.3
(each change is needed by podman, not by the test); stdin to stdout.

What changes, and nothing else:
  - the Job's pod template becomes a Pod (podman plays Pods; a Job's pod
    works as it is, restartPolicy Never);
  - the egressd native sidecar (an init container with restartPolicy
    Always and probes, which podman refuses) becomes the first container,
    without the kubelet's probes;
  - the clone init container is dropped (there is no git server here) and
    the Aider image is replaced by the test agent image, sleeping;
  - $(VAR) references in env values are expanded (podman does not);
  - Secret volumes become ConfigMap volumes with test values (podman's
    secret volumes hold base64 and ignore items);
  - one proxy rule is added to egressd.conf for the test's upstream
    (plain HTTP GET to its address, port 8080): the shipped policy allows
    no proxy destination at all.  By address: podman 4.3 ignores a pod's
    hostAliases and dnsConfig, and the test runs no DNS server (the pods'
    resolver is an address of the test network where nothing listens,
    set in tests/containers/env.sh).

usage: transform.py AGENT_IMAGE EGRESSD_IMAGE LOCKDOWN_IMAGE UPSTREAM_IP

transform.py shared-service EGRESSD_IMAGE: the shared-service overlay's
egressd Deployment as a Pod (podman restarts a Deployment's pod badly), its
projected volume (which podman refuses) as one ConfigMap holding both
egressd.conf and the credentials file (the example credentials: not
secret), its Secret volumes as ConfigMaps with test values, without the
kubelet's probes and the preStop sleep (podman ignores it).
"""

import base64
import re
import sys

import yaml


def expand(env):
    values = {}
    for e in env:
        if "value" in e:
            e["value"] = re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)),
                                e["value"])
            values[e["name"]] = e["value"]
    return env


def main(agent, egressd, lockdown, upstream_ip):
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    out = []
    job = next(d for d in docs if d["kind"] == "Job")
    spec = job["spec"]["template"]["spec"]
    for d in docs:
        if d["kind"] == "ConfigMap":
            if "egressd.conf" in d.get("data", {}):
                d["data"]["egressd.conf"] = d["data"]["egressd.conf"].replace(
                    "    rules = ( );",
                    '    rules = ( { name = "ct-upstream"; ports = [ 8080 ]; methods = [ "GET" ];\n'
                    '                networks = [ "%s/32" ]; } );' % upstream_ip)
            out.append(d)
    inits = spec.pop("initContainers")
    lock = next(c for c in inits if c["name"] == "egress-lockdown")
    lock["image"] = lockdown
    sidecar = next(c for c in inits if c["name"] == "egressd")
    sidecar["image"] = egressd
    for k in ("restartPolicy", "livenessProbe", "readinessProbe", "startupProbe"):
        sidecar.pop(k, None)
    main_c = next(c for c in spec["containers"] if c["name"] == "aider")
    main_c["image"] = agent
    main_c["command"] = ["sleep", "900"]
    main_c.pop("args", None)
    main_c["workingDir"] = "/workspace"
    expand(main_c.get("env", []))
    spec["initContainers"] = [lock]
    spec["containers"] = [sidecar, main_c]
    secret_volumes_to_configmaps(spec, job["metadata"]["namespace"], out)
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "egressd-ct", "namespace": job["metadata"]["namespace"],
                        "labels": job["spec"]["template"]["metadata"].get("labels", {})},
           "spec": spec}
    out.append(pod)
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)


def secret_volumes_to_configmaps(spec, ns, out):
    for v in spec["volumes"]:
        if "secret" in v:
            name = "ct-" + v["secret"]["secretName"]
            keys = [i["key"] for i in v["secret"].get("items", [])]
            out.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "namespace": ns},
                        "data": {k: "ct-test-value-%s\n" % k for k in keys}})
            v["configMap"] = {"name": name, "items": v["secret"].get("items", [])}
            del v["secret"]


def shared_service(egressd):
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "egressd")
    ns = dep["metadata"]["namespace"]
    spec = dep["spec"]["template"]["spec"]
    out = []
    c = spec["containers"][0]
    c["image"] = egressd
    for k in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
        c.pop(k, None)
    for v in spec["volumes"]:
        if "projected" in v:
            data = {}
            for src in v["projected"]["sources"]:
                if "configMap" in src:
                    cm = next(d for d in docs if d["kind"] == "ConfigMap"
                              and d["metadata"]["name"] == src["configMap"]["name"])
                    data.update(cm["data"])
                else:
                    sec = next(d for d in docs if d["kind"] == "Secret"
                               and d["metadata"]["name"] == src["secret"]["name"])
                    data.update({k: base64.b64decode(x).decode()
                                 for k, x in sec.get("data", {}).items()})
                    data.update(sec.get("stringData", {}))
            out.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "ct-egressd-config", "namespace": ns},
                        "data": data})
            v["configMap"] = {"name": "ct-egressd-config"}
            del v["projected"]
    secret_volumes_to_configmaps(spec, ns, out)
    spec["restartPolicy"] = "OnFailure"
    spec.pop("affinity", None)
    spec.pop("topologySpreadConstraints", None)
    out.append({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "egressd-ss", "namespace": ns,
                             "labels": dep["spec"]["template"]["metadata"].get("labels", {})},
                "spec": spec})
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "shared-service":
        shared_service(sys.argv[2])
    elif len(sys.argv) == 5:
        main(*sys.argv[1:])
    else:
        sys.exit(__doc__)
