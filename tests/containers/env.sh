# Sourced by tests/containers/*.sh: podman as this machine needs it, through
# a containers.conf of the test's own (CONTAINERS_CONF), never the machine's.
#   runc, not crun (crun fails here: cgroups in hybrid mode);
#   runc-wrapper, which drops RLIMIT_NPROC (container init cannot set it);
#   file limits within the hard limit; cgroupfs and a file event log (no
#   systemd here).
ct_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ct_root=$(cd "$ct_here/../.." && pwd)
ct_conf_dir=${CT_CONF_DIR:-/tmp/egressd-containers}
mkdir -p "$ct_conf_dir"
ct_nofile=$(ulimit -Hn)
[ "$ct_nofile" = unlimited ] && ct_nofile=65536
[ "$ct_nofile" -gt 65536 ] && ct_nofile=65536
cat >"$ct_conf_dir/containers.conf" <<EOC
[containers]
# The pods' resolver: an address of the test's own network where nothing
# listens (podman would copy the machine's, which is outside the test).
dns_servers = ["${CT_DNS:-198.51.100.53}"]
default_ulimits = ["nofile=$ct_nofile:$ct_nofile"]
log_driver = "k8s-file"

[engine]
runtime = "egressd-runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[engine.runtimes]
egressd-runc = ["$ct_here/runc-wrapper"]
EOC
export CONTAINERS_CONF=$ct_conf_dir/containers.conf
ct_version=$(cat "$ct_root/VERSION")
# The base image the Dockerfiles take as DEBIAN_IMAGE: no registry here, so
# it is made with mmdebstrap from the machine's own package sources.
ct_base=localhost/egressd-debian:bookworm
