"""egressd watch (issue 15): following a real egressd's decision log through
rotation and truncation, garbage in the stream, --once's exit status, and
alerts: to a dead Alertmanager (nothing lost, nothing blocked) and, live, to
a real one beside a real Prometheus that scrapes egressd with the shipped
alert rules.

Prometheus and Alertmanager are Debian's packages (scripts/deps.sh), run by
this module on loopback in run.sh's namespace."""

import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

import harness as H
import service as S

ROOT = os.path.abspath(os.path.join(H.HERE, "..", ".."))


def _watch(*args, stdin=None, timeout=20):
    return subprocess.run([os.environ["EGRESSD"], "watch"] + list(args), input=stdin,
                          capture_output=True, text=True, timeout=timeout)


class Follower:
    """egressd watch --plain FILE, running; its output lines as they come."""

    def __init__(self, *args):
        self.p = subprocess.Popen([os.environ["EGRESSD"], "watch", "--plain"] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.set_blocking(self.p.stdout.fileno(), False)
        self.out = ""

    def wait_for(self, text, timeout=5.0):
        def seen():
            try:
                chunk = os.read(self.p.stdout.fileno(), 65536)
            except BlockingIOError:
                chunk = b""
            self.out += chunk.decode("utf-8", "replace")
            return text in self.out
        H.wait_until(seen, timeout=timeout, what="watch printing %r" % text)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            out, err = self.p.communicate(timeout=5)
            self.out += out.decode("utf-8", "replace")
            err = err.decode("utf-8", "replace")
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
        return self.p.returncode, err


@pytest.fixture
def ew(world, egressd_factory):
    """An egressd with an admin listener, and a way to make it deny."""
    admin_port = H.free_port()

    def config(port, log):
        return S.render(port, log, world.policy, admin_port=admin_port)
    e = egressd_factory("watch", config)
    e.admin_port = admin_port
    S.Admin(admin_port).wait_up(timeout=10 * H.SLOW)

    def deny(host="denied.test"):
        rc, _, code, _ = H.curl(e.port, "https://%s/" % host)
        assert code == 403, (host, code)
    e.deny = deny
    return e


def _deny_line(host, identity="aider", ts="2026-12-03T23:17:28.098Z"):
    return json.dumps({"ts": ts, "event": "deny", "identity": identity, "policy": "agent",
                       "mode": "enforce", "method": "CONNECT", "host": host, "port": 443,
                       "reason": "host_not_allowed", "status": 403})


def test_once_summarises_and_exits_1_on_a_denial(ew):
    ew.deny()
    ew.deny()
    ew.log.wait(event="deny", host="denied.test")
    p = _watch("--once", ew.log_path)
    assert p.returncode == 1, p.stderr
    assert "denied 2 in 1 groups" in p.stdout or "2 denied in 1 groups" in p.stdout, p.stdout
    assert "host_not_allowed  denied.test:443  policy agent" in p.stdout, p.stdout
    assert "egressd --explain 'denied.test:443' --policy 'agent'" in p.stdout, p.stdout
    # No denial: 0.
    clean = os.path.join(ew.dir, "clean.log")
    with open(clean, "w") as f:
        f.write('{"ts":"2026-12-03T23:17:28.098Z","event":"allow","host":"a.test","port":443}\n')
    p = _watch("--once", clean)
    assert p.returncode == 0 and "1 allowed, 0 denied" in p.stdout, p.stdout


def test_follows_the_log_through_rotation_and_truncation(ew):
    f = Follower(ew.log_path)
    try:
        time.sleep(0.5)  # from the end: what came before is not shown
        ew.deny("denied.test")
        f.wait_for("host_not_allowed CONNECT denied.test:443")
        # Rotation as logrotate does it: rename, then SIGUSR1 makes egressd
        # open a new file at the path.
        os.rename(ew.log_path, ew.log_path + ".1")
        ew.proc.send_signal(signal.SIGUSR1)
        H.wait_until(lambda: os.path.exists(ew.log_path), what="a new log file")
        ew.deny("git.denied.test")
        f.wait_for("git.denied.test:443")
        # Truncation (copytruncate): the file starts again from nothing.
        with open(ew.log_path, "w"):
            pass
        time.sleep(0.5)
        ew.deny("pypi.denied.test")
        f.wait_for("pypi.denied.test:443")
    finally:
        rc, err = f.stop()
    assert f.out.count("denied.test:443") == 3, f.out
    assert "3 denied in 3 groups" in err, err


def test_garbage_and_huge_lines_are_counted_and_skipped():
    stream = "\n".join([
        "not json at all",
        '{"event":"deny","host":5}',
        "{" + "x" * 100000,
        _deny_line("evil\x1b]0;owned\x07.test"),  # json.dumps writes \u001b
        '{"event":"deny","identity":"a\\u001b[2J","host":"b.test","port":443,'
        '"reason":"host_not_allowed"}',
        "\x00\xff\xfe binary",
        _deny_line("ok.test"),
    ]) + "\n"
    p = _watch("--once", "-", stdin=stream)
    assert p.returncode == 1
    assert "3 denied in 3 groups" in p.stdout and "4 skipped" in p.stdout, p.stdout
    assert "\x1b" not in p.stdout and "\x07" not in p.stdout
    assert "evil?]0;owned?.test:443" in p.stdout, p.stdout


def test_a_dead_alertmanager_neither_blocks_nor_loses_the_log():
    dead = H.free_port()
    stream = "\n".join(_deny_line("h%d.test" % i) for i in range(50)) + "\n"
    t0 = time.monotonic()
    p = _watch("--plain", "--alertmanager", "http://127.0.0.1:%d" % dead, "-", stdin=stream,
               timeout=30)
    took = time.monotonic() - t0
    assert p.stdout.count("host_not_allowed CONNECT") == 50, p.stdout
    assert "50 denied in 50 groups" in p.stderr, p.stderr
    assert "50 alerts not delivered to http://127.0.0.1:%d" % dead in p.stderr, p.stderr
    assert took < 8 * H.SLOW, "watch hung on a dead Alertmanager (%.1fs)" % took


# --- live: Prometheus and Alertmanager ------------------------------------------------


def _get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


class Service:
    def __init__(self, name, args, log):
        self.name = name
        self.log = open(log, "w")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


@pytest.fixture
def monitoring(ew, tmp_path):
    """Alertmanager, and Prometheus scraping ew's /metrics every second with
    the shipped rules (extracted as tests/alerts does), alerting to it."""
    d = str(tmp_path)
    H.share_with_sandbox_user(d)
    am_port, prom_port = H.free_port(), H.free_port()
    rules = os.path.join(d, "rules.yml")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests/alerts/extract.py"),
                    os.path.join(ROOT, "k8s/components/monitoring/prometheusrule.yaml"), rules],
                   check=True)
    with open(os.path.join(d, "am.yml"), "w") as f:
        f.write("route: {receiver: none, group_wait: 1s, group_interval: 1s}\n"
                "receivers: [{name: none}]\n")
    with open(os.path.join(d, "prom.yml"), "w") as f:
        f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                "rule_files: [%s]\n"
                "alerting: {alertmanagers: [{static_configs: [{targets: ['127.0.0.1:%d']}]}]}\n"
                "scrape_configs:\n"
                "  - job_name: egressd\n"
                "    static_configs: [{targets: ['127.0.0.1:%d'], labels: {pod: egressd-test}}]\n"
                % (rules, am_port, ew.admin_port))
    started = []
    try:
        started.append(Service("alertmanager", [
            "prometheus-alertmanager", "--config.file", os.path.join(d, "am.yml"),
            "--storage.path", os.path.join(d, "am-data"),
            "--web.listen-address", "127.0.0.1:%d" % am_port,
            "--cluster.listen-address", ""], os.path.join(d, "am.log")))
        started.append(Service("prometheus", [
            "prometheus", "--config.file", os.path.join(d, "prom.yml"),
            "--storage.tsdb.path", os.path.join(d, "prom-data"),
            "--web.listen-address", "127.0.0.1:%d" % prom_port], os.path.join(d, "prom.log")))
        am = "http://127.0.0.1:%d" % am_port
        H.wait_until(lambda: _ready(am + "/-/ready"), timeout=20, what="alertmanager ready")
        H.wait_until(lambda: _ready("http://127.0.0.1:%d/-/ready" % prom_port), timeout=20,
                     what="prometheus ready")
        yield {"am": am, "prom": "http://127.0.0.1:%d" % prom_port, "dir": d}
    finally:
        for s in reversed(started):
            s.stop()


def _ready(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _alerts(am, name):
    return [a for a in _get_json(am + "/api/v2/alerts") if a["labels"].get("alertname") == name]


def test_denials_reach_alertmanager_from_prometheus_and_from_watch(ew, monitoring):
    am = monitoring["am"]
    # Prometheus has scraped egressd before the denials: the counter's
    # first sample is there, so its increase is seen.
    H.wait_until(lambda: _get_json(monitoring["prom"] + "/api/v1/query?query=egressd_ready")
                 ["data"]["result"], timeout=20, what="prometheus scraping egressd")
    ew.deny("denied.test")
    ew.deny("denied.test")
    ew.log.wait(event="deny", host="denied.test")
    # The shipped rule, evaluated by Prometheus, fires in Alertmanager.
    fired = H.wait_until(lambda: _alerts(am, "EgressdRequestDenied"), timeout=40,
                         what="EgressdRequestDenied in Alertmanager")
    assert fired[0]["labels"]["policy"] == "agent"
    assert fired[0]["labels"]["reason"] == "host_not_allowed"
    assert fired[0]["labels"]["severity"] == "warning"
    assert "egressd denied requests" in fired[0]["annotations"]["summary"]
    # egressd watch posts its own alert for the same denials.
    p = _watch("--once", "--from-start", "--alertmanager", am, ew.log_path, timeout=30)
    assert p.returncode == 1, p.stdout + p.stderr
    mine = H.wait_until(lambda: _alerts(am, "EgressdDenial"), timeout=10,
                        what="watch's EgressdDenial in Alertmanager")
    a = [x for x in mine if x["labels"].get("destination") == "denied.test:443"]
    assert a, mine
    assert a[0]["labels"]["reason"] == "host_not_allowed"
    assert a[0]["labels"]["policy"] == "agent"
    assert "egressd --explain 'denied.test:443' --policy 'agent'" == \
        a[0]["annotations"]["explain"]
    assert "denied.test:443" in a[0]["annotations"]["sample"]
    assert a[0]["status"]["state"] == "active"
