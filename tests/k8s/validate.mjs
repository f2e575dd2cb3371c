// Offline validation of egressd's rendered Kubernetes manifests.
//
//   node validate.mjs --repo ROOT NAME=RENDERED.yaml ...
//   node validate.mjs --repo ROOT --self-test SHARED.yaml LOCKDOWN.yaml MONITORING.yaml
//   node validate.mjs --repo ROOT --materialize SHARED.yaml DIR    (service-test.sh)
//   node validate.mjs --repo ROOT --rule-metrics MONITORING.yaml   (service-test.sh)
//
// For every rendered overlay:
//   schema   each object against Kubernetes' OpenAPI schemas, through the
//            typed model classes of the kubernetes-models npm package
//            (validate()), the PrometheusRule and PodMonitor through their
//            @kubernetes-models/prometheus-operator models;
//   fields   each object as a typed TypeScript object literal of the same
//            package's interfaces, compiled with tsc: excess-property checks
//            catch misspelled fields (readOnlyRootFilesytem), which JSON
//            schema validation lets through;
//   policy   the Pod Security Standard "restricted" (v1.30) on every pod
//            template, with one documented exception; the project's own
//            hardening; the agent namespace's egress (egressd's pods on its
//            port, nothing else, no DNS) and its proxy URL (with the identity
//            when egressd asks for one); egressd's own NetworkPolicies (agents
//            on the proxy port, the monitoring namespace on the admin port);
//            probes on the admin listener; the sidecar and lockdown wiring;
//            the alerts and the PodMonitor against egressd's metrics;
//   config   `$EGRESSD -t -c` on every egressd config volume, written out as
//            the pod mounts it (egressd.conf and the credentials file beside it).
// --self-test mutates rendered manifests in ways each check must catch.
//
// Prints "ok - ..." / "not ok - ..." / "skip - ..." lines; run.sh counts them.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import ts from "typescript";

const here = path.dirname(fileURLToPath(import.meta.url));

// ---------------------------------------------------------------- output

function report(name, problems) {
	if (problems.length === 0) {
		console.log(`ok - ${name}`);
	} else {
		console.log(`not ok - ${name}`);
		for (const p of problems) console.log(`#   ${p}`);
	}
	return problems.length === 0;
}

// ---------------------------------------------------------------- loading

function loadRendered(file) {
	const text = fs.readFileSync(file, "utf8");
	const docs = YAML.parseAllDocuments(text);
	const objs = [];
	const errors = [];
	for (const d of docs) {
		if (d.errors.length) errors.push(...d.errors.map((e) => e.message));
		const o = d.toJS();
		if (o !== null && o !== undefined) objs.push(o);
	}
	return { objs, errors };
}

const id = (o) =>
	`${o.kind}/${o.metadata?.namespace ? o.metadata.namespace + "/" : ""}${o.metadata?.name}`;

// ---------------------------------------------------------------- schema

function modelSpecifier(apiVersion, kind) {
	if (apiVersion.startsWith("monitoring.coreos.com/"))
		return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
	return `kubernetes-models/${apiVersion}/${kind}`;
}

async function schemaProblems(objs) {
	const problems = [];
	for (const o of objs) {
		if (!o.apiVersion || !o.kind) {
			problems.push(`object without apiVersion/kind: ${JSON.stringify(o).slice(0, 80)}`);
			continue;
		}
		let mod;
		try {
			mod = await import(modelSpecifier(o.apiVersion, o.kind));
		} catch {
			problems.push(`${id(o)}: no schema for ${o.apiVersion} ${o.kind}`);
			continue;
		}
		const Model = mod[o.kind];
		// kustomize writes long base64 Secret data wrapped over lines; the API
		// server decodes with Go's encoding/base64, which skips \r and \n,
		// while the model's "byte" format does not: unwrap before validating.
		const obj = o.kind === "Secret" && o.data
			? { ...o, data: Object.fromEntries(Object.entries(o.data).map(([k, v]) => [k, typeof v === "string" ? v.replace(/[\r\n]/g, "") : v])) }
			: o;
		try {
			new Model(obj).validate();
		} catch (e) {
			problems.push(`${id(o)}: ${String(e.message).replace(/\s+/g, " ")}`);
		}
	}
	return problems;
}

// ---------------------------------------------------------------- fields (tsc)

// Every object becomes `const oN: IKind = {...}` in one .mts file, compiled
// against the model package's interfaces. TypeScript reports any property an
// interface does not declare, at any depth ("Object literal may only specify
// known properties"), and wrong literal types the schema may also catch.
function fieldProblems(objs) {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egressd-k8s-tsc-"));
	try {
		fs.symlinkSync(path.join(here, "node_modules"), path.join(dir, "node_modules"), "dir");
		const imports = new Map();
		const lines = [];
		const spans = [];
		for (const o of objs) {
			if (!o.apiVersion || !o.kind) continue;
			const spec = modelSpecifier(o.apiVersion, o.kind);
			if (!imports.has(spec)) imports.set(spec, `T${imports.size}`);
		}
		for (const [spec, alias] of imports) {
			const kind = spec.split("/").pop();
			lines.push(`import type { I${kind} as ${alias} } from ${JSON.stringify(spec)};`);
		}
		objs.forEach((o, i) => {
			if (!o.apiVersion || !o.kind) return;
			const alias = imports.get(modelSpecifier(o.apiVersion, o.kind));
			const start = lines.length;
			const body = JSON.stringify(o, null, 2).split("\n");
			body[0] = `export const o${i}: ${alias} = ${body[0]}`;
			body[body.length - 1] += ";";
			lines.push(...body);
			spans.push({ start, end: lines.length, obj: o });
		});
		const file = path.join(dir, "manifests.mts");
		fs.writeFileSync(file, lines.join("\n") + "\n");
		const program = ts.createProgram([file], {
			strict: true,
			noEmit: true,
			target: ts.ScriptTarget.ES2022,
			module: ts.ModuleKind.NodeNext,
			moduleResolution: ts.ModuleResolutionKind.NodeNext,
			skipLibCheck: true,
			types: [],
		});
		const problems = [];
		for (const d of ts.getPreEmitDiagnostics(program)) {
			const msg = ts.flattenDiagnosticMessageText(d.messageText, " ");
			if (!d.file || path.resolve(d.file.fileName) !== path.resolve(file)) {
				problems.push(`tsc: ${msg}`);
				continue;
			}
			const { line } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
			const span = spans.find((s) => line >= s.start && line < s.end);
			const text = lines[line].trim();
			problems.push(`${span ? id(span.obj) : "?"}: ${msg} (at ${text})`);
		}
		return problems;
	} finally {
		fs.rmSync(dir, { recursive: true, force: true });
	}
}

// ---------------------------------------------------------------- pods

function podTemplates(objs) {
	const out = [];
	for (const o of objs) {
		let tpl = null;
		if (["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"].includes(o.kind))
			tpl = o.spec?.template;
		else if (o.kind === "CronJob") tpl = o.spec?.jobTemplate?.spec?.template;
		else if (o.kind === "Pod") tpl = { metadata: o.metadata, spec: o.spec };
		if (tpl) out.push({ obj: o, ns: o.metadata?.namespace, labels: tpl.metadata?.labels ?? {}, spec: tpl.spec ?? {} });
	}
	return out;
}

function containersOf(spec) {
	const out = [];
	for (const c of spec.initContainers ?? []) out.push({ c, where: "initContainers" });
	for (const c of spec.containers ?? []) out.push({ c, where: "containers" });
	for (const c of spec.ephemeralContainers ?? []) out.push({ c, where: "ephemeralContainers" });
	return out;
}

function labelsMatch(selector, labels) {
	// A LabelSelector against a label map. {} (or missing) matches all.
	if (!selector) return true;
	for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
	for (const e of selector.matchExpressions ?? []) {
		const has = Object.prototype.hasOwnProperty.call(labels, e.key);
		const val = labels[e.key];
		if (e.operator === "In" && !(has && e.values.includes(val))) return false;
		if (e.operator === "NotIn" && has && e.values.includes(val)) return false;
		if (e.operator === "Exists" && !has) return false;
		if (e.operator === "DoesNotExist" && has) return false;
	}
	return true;
}
const selectorIsEmpty = (s) =>
	!s || (Object.keys(s.matchLabels ?? {}).length === 0 && (s.matchExpressions ?? []).length === 0);

function namespaceLabels(objs) {
	const m = new Map();
	for (const o of objs)
		if (o.kind === "Namespace")
			m.set(o.metadata.name, { ...(o.metadata.labels ?? {}), "kubernetes.io/metadata.name": o.metadata.name });
	// Namespaces every cluster has, with the label the API server sets.
	for (const n of ["kube-system", "default"])
		if (!m.has(n)) m.set(n, { "kubernetes.io/metadata.name": n });
	return m;
}

// ---------------------------------------------------------------- Pod Security Standard

const BASELINE_CAPS = new Set([
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
]);
const RESTRICTED_VOLUMES = ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
const SAFE_SYSCTLS = new Set([
	"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
	"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
]);
const SELINUX_TYPES = new Set(["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"]);

// The one documented exception: the sidecar-lockdown component's init
// container, root with NET_ADMIN and nothing more. Its deviations are these
// codes, and only these; everything else about it is checked as usual.
const EXEMPT_CONTAINER = "egress-lockdown";
const EXEMPT_CODES = new Set(["cap-add:NET_ADMIN", "runAsNonRoot", "runAsUser0"]);

// Returns [{container, code, msg}] for every violation of "restricted".
function pssViolations(spec, podMeta = {}) {
	const v = [];
	const add = (container, code, msg) => v.push({ container, code, msg });
	const psc = spec.securityContext ?? {};
	// baseline
	for (const f of ["hostNetwork", "hostPID", "hostIPC"]) if (spec[f]) add(null, f, `${f}: true`);
	if (psc.windowsOptions?.hostProcess) add(null, "hostProcess", "hostProcess");
	for (const s of psc.sysctls ?? []) if (!SAFE_SYSCTLS.has(s.name)) add(null, "sysctl", `unsafe sysctl ${s.name}`);
	if (psc.seccompProfile?.type === "Unconfined") add(null, "seccomp", "pod seccompProfile Unconfined");
	if (psc.appArmorProfile?.type === "Unconfined") add(null, "apparmor", "pod appArmorProfile Unconfined");
	const se = psc.seLinuxOptions;
	if (se && (!SELINUX_TYPES.has(se.type ?? "") || se.user || se.role)) add(null, "selinux", "pod seLinuxOptions");
	for (const [k, val] of Object.entries(podMeta.annotations ?? {}))
		if (k.startsWith("container.apparmor.security.beta.kubernetes.io/") && val === "unconfined")
			add(null, "apparmor", `annotation ${k}=unconfined`);
	for (const vol of spec.volumes ?? []) {
		if (vol.hostPath) add(null, "hostPath", `hostPath volume ${vol.name}`);
		const type = Object.keys(vol).find((k) => k !== "name");
		if (!RESTRICTED_VOLUMES.includes(type)) add(null, "volume", `volume ${vol.name} of type ${type}`);
	}
	// restricted, pod level
	const podNonRoot = psc.runAsNonRoot === true;
	const podSeccomp = ["RuntimeDefault", "Localhost"].includes(psc.seccompProfile?.type);
	if (psc.runAsUser === 0) add(null, "runAsUser0", "pod runAsUser 0");
	for (const { c } of containersOf(spec)) {
		const sc = c.securityContext ?? {};
		const n = c.name;
		if (sc.privileged) add(n, "privileged", "privileged");
		for (const p of c.ports ?? []) if (p.hostPort) add(n, "hostPort", `hostPort ${p.hostPort}`);
		if (sc.procMount && sc.procMount !== "Default") add(n, "procMount", `procMount ${sc.procMount}`);
		if (sc.seccompProfile?.type === "Unconfined") add(n, "seccomp", "seccompProfile Unconfined");
		if (sc.appArmorProfile?.type === "Unconfined") add(n, "apparmor", "appArmorProfile Unconfined");
		if (sc.windowsOptions?.hostProcess) add(n, "hostProcess", "hostProcess");
		const cse = sc.seLinuxOptions;
		if (cse && (!SELINUX_TYPES.has(cse.type ?? "") || cse.user || cse.role)) add(n, "selinux", "seLinuxOptions");
		const caps = sc.capabilities ?? {};
		for (const cap of caps.add ?? []) {
			if (cap !== "NET_BIND_SERVICE") add(n, `cap-add:${cap}`, `adds capability ${cap}${BASELINE_CAPS.has(cap) ? "" : " (beyond baseline too)"}`);
		}
		if (!(caps.drop ?? []).includes("ALL")) add(n, "cap-drop", "capabilities.drop does not include ALL");
		if (sc.allowPrivilegeEscalation !== false) add(n, "ape", "allowPrivilegeEscalation is not false");
		if (sc.runAsNonRoot === false) add(n, "runAsNonRoot", "runAsNonRoot: false");
		else if (!podNonRoot && sc.runAsNonRoot !== true) add(n, "runAsNonRoot", "runAsNonRoot not set (pod or container)");
		if (sc.runAsUser === 0) add(n, "runAsUser0", "runAsUser 0");
		const cSeccomp = sc.seccompProfile?.type;
		if (!podSeccomp && !["RuntimeDefault", "Localhost"].includes(cSeccomp))
			add(n, "seccomp", "seccompProfile not RuntimeDefault/Localhost (pod or container)");
	}
	return v;
}

function isExempt(spec, viol) {
	if (viol.container !== EXEMPT_CONTAINER || !EXEMPT_CODES.has(viol.code)) return false;
	const c = (spec.initContainers ?? []).find((x) => x.name === EXEMPT_CONTAINER);
	if (!c || c.restartPolicy) return false; // a plain init container, not a sidecar
	const adds = c.securityContext?.capabilities?.add ?? [];
	return adds.length === 1 && adds[0] === "NET_ADMIN";
}

function pssProblems(objs) {
	const problems = [];
	const nsl = namespaceLabels(objs);
	for (const p of podTemplates(objs)) {
		const tplMeta = p.obj.kind === "Pod" ? p.obj.metadata : (p.obj.spec.template ?? p.obj.spec.jobTemplate.spec.template).metadata;
		const viols = pssViolations(p.spec, tplMeta);
		const hard = viols.filter((v) => !isExempt(p.spec, v));
		const exempt = viols.filter((v) => isExempt(p.spec, v));
		for (const v of hard) problems.push(`${id(p.obj)}${v.container ? ` container ${v.container}` : ""}: ${v.msg}`);
		const labels = nsl.get(p.ns) ?? {};
		const enforce = labels["pod-security.kubernetes.io/enforce"];
		if (exempt.length && enforce !== "privileged")
			problems.push(`${id(p.obj)}: has the NET_ADMIN lockdown container, so namespace ${p.ns} must enforce "privileged" (it enforces ${enforce}): the pod would be rejected`);
		if (!exempt.length && enforce !== "restricted")
			problems.push(`${id(p.obj)}: meets "restricted", but namespace ${p.ns} enforces ${enforce}: enforce restricted`);
	}
	return problems;
}

function namespaceProblems(objs) {
	const problems = [];
	const namespaces = new Set(objs.filter((o) => o.kind === "Namespace").map((o) => o.metadata.name));
	const clusterScoped = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass", "StorageClass"]);
	for (const o of objs) {
		if (clusterScoped.has(o.kind)) continue;
		const ns = o.metadata?.namespace;
		if (!ns) problems.push(`${id(o)}: no namespace`);
		else if (!namespaces.has(ns)) problems.push(`${id(o)}: namespace ${ns} is not defined by this overlay`);
	}
	for (const o of objs.filter((x) => x.kind === "Namespace")) {
		const l = o.metadata.labels ?? {};
		const enf = l["pod-security.kubernetes.io/enforce"];
		if (!["restricted", "privileged", "baseline"].includes(enf)) problems.push(`${id(o)}: no pod-security enforce label`);
		if (!/^v1\.\d+$/.test(l["pod-security.kubernetes.io/enforce-version"] ?? ""))
			problems.push(`${id(o)}: enforce-version not pinned (got ${l["pod-security.kubernetes.io/enforce-version"]})`);
		for (const m of ["warn", "audit"])
			if (l[`pod-security.kubernetes.io/${m}`] !== "restricted") problems.push(`${id(o)}: ${m} is not restricted`);
	}
	return problems;
}

// ---------------------------------------------------------------- hardening

function hardeningProblems(objs) {
	const problems = [];
	const sas = new Map(objs.filter((o) => o.kind === "ServiceAccount").map((o) => [`${o.metadata.namespace}/${o.metadata.name}`, o]));
	for (const p of podTemplates(objs)) {
		const s = p.spec;
		const pid = id(p.obj);
		if (s.automountServiceAccountToken !== false) problems.push(`${pid}: automountServiceAccountToken is not false`);
		if (s.enableServiceLinks !== false) problems.push(`${pid}: enableServiceLinks is not false`);
		const sa = sas.get(`${p.ns}/${s.serviceAccountName ?? "default"}`);
		if (!sa) problems.push(`${pid}: ServiceAccount ${s.serviceAccountName ?? "default"} is not in the overlay`);
		else if (sa.automountServiceAccountToken !== false) problems.push(`${id(sa)}: automountServiceAccountToken is not false`);
		if (s.securityContext?.seccompProfile?.type !== "RuntimeDefault") problems.push(`${pid}: pod seccompProfile is not RuntimeDefault`);
		for (const vol of s.volumes ?? []) {
			if (vol.emptyDir && !vol.emptyDir.sizeLimit) problems.push(`${pid}: emptyDir ${vol.name} has no sizeLimit`);
		}
		for (const { c } of containersOf(s)) {
			const cn = `${pid} container ${c.name}`;
			const sc = c.securityContext ?? {};
			if (sc.readOnlyRootFilesystem !== true) problems.push(`${cn}: readOnlyRootFilesystem is not true`);
			if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory) problems.push(`${cn}: no cpu/memory requests`);
			if (!c.resources?.limits?.memory) problems.push(`${cn}: no memory limit`);
			const tag = (c.image ?? "").split("@")[0].split("/").pop().split(":")[1];
			if (!c.image?.includes("@") && (!tag || tag === "latest")) problems.push(`${cn}: image ${c.image} is not pinned`);
			const uid = sc.runAsUser ?? s.securityContext?.runAsUser;
			if (uid === undefined) problems.push(`${cn}: no numeric runAsUser (pod or container)`);
		}
	}
	return problems;
}

// ---------------------------------------------------------------- env

function effectiveEnv(c) {
	// $(VAR) expansion as the kubelet does it: earlier variables only. A
	// variable from a Secret stands as <secret:NAME/KEY>.
	const env = {};
	for (const e of c.env ?? []) {
		if (e.value === undefined) {
			const sk = e.valueFrom?.secretKeyRef;
			env[e.name] = sk ? `<secret:${sk.name}/${sk.key}>` : e.valueFrom ? "<from>" : "";
			continue;
		}
		env[e.name] = e.value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v) =>
			m === "$$" ? "$" : Object.prototype.hasOwnProperty.call(env, v) ? env[v] : m,
		);
	}
	return env;
}

// The files a configMap, secret or projected volume shows: { files: {path:
// text}, missing: [sources not in the render], sources: {path: "Kind/name"} }.
function volumeFiles(objs, ns, vol) {
	const files = {};
	const sources = {};
	const missing = [];
	const add = (kind, name, ref) => {
		const o = objs.find((x) => x.kind === kind && x.metadata.namespace === ns && x.metadata.name === name);
		if (!o) {
			if (!ref.optional) missing.push(`${kind}/${ns}/${name}`);
			return;
		}
		const data = {};
		if (kind === "Secret") {
			for (const [k, v] of Object.entries(o.data ?? {})) data[k] = Buffer.from(v, "base64").toString("utf8");
			Object.assign(data, o.stringData ?? {});
		} else Object.assign(data, o.data ?? {});
		const items = ref.items?.length ? ref.items : Object.keys(data).map((k) => ({ key: k, path: k }));
		for (const it of items) {
			if (it.key in data) {
				files[it.path] = data[it.key];
				sources[it.path] = id(o);
			} else if (!ref.optional) missing.push(`${id(o)} key ${it.key}`);
		}
	};
	if (vol?.configMap) add("ConfigMap", vol.configMap.name, vol.configMap);
	if (vol?.secret) add("Secret", vol.secret.secretName, vol.secret);
	for (const src of vol?.projected?.sources ?? []) {
		if (src.configMap) add("ConfigMap", src.configMap.name, src.configMap);
		if (src.secret) add("Secret", src.secret.name, src.secret);
	}
	return { files, missing, sources };
}

// egressd's configuration as its container sees it: the file named by -c,
// and every file of the volume mounted on that file's directory (so that a
// "credentials" file beside egressd.conf is found, as egressd finds it).
function egressdConfOf(objs, ns, spec, c) {
	const argv = [...(c.command ?? []), ...(c.args ?? [])];
	const ci = argv.indexOf("-c");
	const file = ci >= 0 ? argv[ci + 1] : "/etc/egressd/egressd.conf";
	const dir = path.posix.dirname(file);
	const mount = (c.volumeMounts ?? []).find((m) => m.mountPath.replace(/\/$/, "") === dir);
	const vol = mount && (spec.volumes ?? []).find((v) => v.name === mount.name);
	const { files, missing, sources } = volumeFiles(objs, ns, vol);
	return { file, base: path.posix.basename(file), vol, files, missing, sources, conf: files[path.posix.basename(file)] };
}

// Enough of libconfig for the wiring checks (egressd -t is the real parser):
// comments out, then the listen groups, admin, workers, credentials.
function stripComments(conf) {
	return (conf ?? "").replace(/\/\*[\s\S]*?\*\//g, "").replace(/("(?:[^"\\]|\\.)*")|(#|\/\/)[^\n]*/g, (m, str) => str ?? "");
}
function confListeners(conf) {
	const m = /(?:^|[;\s])listen\s*=\s*\(([\s\S]*?)\)\s*;/.exec(stripComments(conf));
	if (!m) return [];
	return [...m[1].matchAll(/\{([^}]*)\}/g)].map((g) => {
		const a = /address\s*=\s*"([^"]+)"/.exec(g[1]);
		const p = /port\s*=\s*(\d+)/.exec(g[1]);
		const idf = /identify\s*=\s*\[([^\]]*)\]/.exec(g[1]);
		const pol = /policy\s*=\s*"([^"]+)"/.exec(g[1]);
		return {
			address: a?.[1], port: p ? Number(p[1]) : undefined, policy: pol?.[1],
			identify: idf ? [...idf[1].matchAll(/"([^"]+)"/g)].map((x) => x[1]) : [],
		};
	});
}
function confAdmin(conf) {
	const m = /(?:^|[;\s])admin\s*=\s*\{([^}]*)\}/.exec(stripComments(conf));
	if (!m) return null;
	const a = /address\s*=\s*"([^"]+)"/.exec(m[1]);
	const p = /port\s*=\s*(\d+)/.exec(m[1]);
	return { address: a?.[1], port: p ? Number(p[1]) : undefined };
}
function confScalar(conf, key) {
	const m = new RegExp(`(?:^|[;\\s{])${key}\\s*=\\s*("([^"]*)"|\\d+)`).exec(stripComments(conf));
	return m ? (m[2] ?? Number(m[1])) : undefined;
}
function confDrainMs(conf) {
	return confScalar(conf, "drain_timeout_ms") ?? 30000;
}
const isLoopback = (a) => /^127\./.test(a ?? "") || a === "::1";

// The port number a probe (httpGet or tcpSocket) reaches, named ports resolved.
function probePort(c, pb) {
	const p = pb?.httpGet?.port ?? pb?.tcpSocket?.port;
	return typeof p === "string" ? (c.ports ?? []).find((x) => x.name === p)?.containerPort : p;
}

// Probes on egressd's admin listener: httpGet, /readyz for readiness (and
// startup), /healthz for liveness, on a port where egressd.conf has its admin
// listener on an address the kubelet reaches (not loopback).
function adminProbeProblems(c, conf, names) {
	const pr = [];
	const adm = confAdmin(conf);
	if (!adm) pr.push("egressd.conf has no admin listener (admin = { address; port; })");
	else if (isLoopback(adm.address)) pr.push(`admin listener on ${adm.address}: the kubelet probes the pod address, not its loopback`);
	const named = (c.ports ?? []).find((p) => p.name === "admin");
	if (!named) pr.push("no container port named admin");
	else if (adm && named.containerPort !== adm.port) pr.push(`container port admin is ${named.containerPort}, egressd.conf's admin port ${adm.port}`);
	for (const pname of names) {
		const pb = c[pname];
		const want = pname === "livenessProbe" ? "/healthz" : "/readyz";
		if (!pb) { pr.push(`no ${pname}`); continue; }
		if (!pb.httpGet) { pr.push(`${pname} is not an httpGet on the admin listener`); continue; }
		if (pb.httpGet.path !== want) pr.push(`${pname} GETs ${pb.httpGet.path}, not ${want}`);
		if (!adm || probePort(c, pb) !== adm.port) pr.push(`${pname} probes port ${probePort(c, pb)}, not the admin listener's ${adm?.port}`);
	}
	return pr;
}

// workers set, and no more than the CPU limit allows: the default (one per
// online CPU) counts the node's CPUs, not the container's limit.
function workersProblems(c, conf) {
	const w = confScalar(conf, "workers");
	const lim = c.resources?.limits?.cpu;
	const cpus = lim === undefined ? undefined : /m$/.test(String(lim)) ? parseInt(lim, 10) / 1000 : Number(lim);
	if (!(w >= 1)) return [`egressd.conf does not set workers (the default counts the node's CPUs, not the limit ${lim})`];
	if (cpus !== undefined && w > Math.max(1, Math.ceil(cpus))) return [`workers = ${w} exceeds the container's CPU limit ${lim}`];
	return [];
}

// ---------------------------------------------------------------- topology

function findEgressd(objs) {
	const dep = objs.find((o) => o.kind === "Deployment" && o.spec?.template?.metadata?.labels?.["app.kubernetes.io/name"] === "egressd");
	if (!dep) return null;
	const c = dep.spec.template.spec.containers.find((x) => x.name === "egressd");
	const port = (c?.ports ?? []).find((p) => p.name === "proxy");
	const admin = (c?.ports ?? []).find((p) => p.name === "admin");
	const svc = objs.find((o) => o.kind === "Service" && o.metadata.namespace === dep.metadata.namespace && labelsMatch({ matchLabels: o.spec?.selector }, dep.spec.template.metadata.labels));
	const cfg = c ? egressdConfOf(objs, dep.metadata.namespace, dep.spec.template.spec, c) : null;
	return { dep, ns: dep.metadata.namespace, labels: dep.spec.template.metadata.labels, container: c, port, admin, svc, cfg, conf: cfg?.conf };
}

const agentTemplates = (objs) => podTemplates(objs).filter((p) => p.labels["app.kubernetes.io/name"] === "aider");

function policiesSelecting(objs, ns, labels) {
	return objs.filter((o) => o.kind === "NetworkPolicy" && o.metadata.namespace === ns && labelsMatch(o.spec.podSelector, labels));
}
const policyTypes = (np) => np.spec.policyTypes ?? (np.spec.egress ? ["Ingress", "Egress"] : ["Ingress"]);

function defaultDenyProblems(objs, ns) {
	const dd = objs.find(
		(o) => o.kind === "NetworkPolicy" && o.metadata.namespace === ns && selectorIsEmpty(o.spec.podSelector) &&
			policyTypes(o).includes("Ingress") && policyTypes(o).includes("Egress") &&
			!(o.spec.ingress ?? []).length && !(o.spec.egress ?? []).length,
	);
	return dd ? [] : [`namespace ${ns}: no default-deny NetworkPolicy (podSelector {}, Ingress+Egress, no rules)`];
}

const CIDR_V4_EXCEPT = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"];
const CIDR_V6_EXCEPT = ["fc00::/7", "fe80::/10"];

// Egress rules of a pod that holds egressd itself: DNS to kube-dns pods, and
// port 443 of ipBlocks; the catch-all blocks must leave out private space.
function proxyEgressRuleProblems(nps, nsl, who) {
	const problems = [];
	for (const np of nps) {
		for (const [i, r] of (np.spec.egress ?? []).entries()) {
			const where = `${id(np)} egress[${i}]`;
			if (!(r.to ?? []).length) { problems.push(`${where}: no "to": allows every destination`); continue; }
			if (!(r.ports ?? []).length) { problems.push(`${where}: no "ports": allows every port`); continue; }
			const ports = r.ports.map((p) => `${p.protocol ?? "TCP"}/${p.port}${p.endPort ? "-" + p.endPort : ""}`).sort();
			const ipb = r.to.filter((t) => t.ipBlock);
			const sel = r.to.filter((t) => !t.ipBlock);
			if (ipb.length && sel.length) problems.push(`${where}: mixes ipBlock and selectors`);
			if (sel.length) {
				for (const t of sel) {
					const nsMatched = [...nsl].filter(([, l]) => labelsMatch(t.namespaceSelector, l)).map(([n]) => n);
					if (!t.namespaceSelector || selectorIsEmpty(t.namespaceSelector) || nsMatched.join() !== "kube-system")
						problems.push(`${where}: selector peer is not kube-system only (${nsMatched.join(",") || "its own namespace"})`);
					if (t.podSelector?.matchLabels?.["k8s-app"] !== "kube-dns") problems.push(`${where}: selector peer is not the kube-dns pods`);
				}
				if (ports.join() !== "TCP/53,UDP/53") problems.push(`${where}: DNS rule opens ${ports.join(",")}, not exactly 53/UDP+TCP`);
			}
			if (ipb.length) {
				if (ports.join() !== "TCP/443") problems.push(`${where}: ipBlock rule opens ${ports.join(",")}, not only TCP/443`);
				for (const t of ipb) {
					const ex = t.ipBlock.except ?? [];
					const need = t.ipBlock.cidr === "0.0.0.0/0" ? CIDR_V4_EXCEPT : t.ipBlock.cidr === "::/0" ? CIDR_V6_EXCEPT : [];
					for (const n of need) if (!ex.includes(n)) problems.push(`${where}: ${t.ipBlock.cidr} does not except ${n}`);
				}
			}
		}
		for (const [i, r] of (np.spec.ingress ?? []).entries())
			if (who === "agent") problems.push(`${id(np)} ingress[${i}]: agent pods accept no connections`);
	}
	return problems;
}

// ---------------------------------------------------------------- shared-service checks

function sharedServiceChecks(objs, E) {
	const out = [];
	const nsl = namespaceLabels(objs);
	const agents = agentTemplates(objs);
	const agentNs = [...new Set(agents.map((a) => a.ns))];

	// egressd: the Deployment's availability and draining.
	{
		const pr = [];
		const d = E.dep;
		const s = d.spec.template.spec;
		if (!(d.spec.replicas >= 2)) pr.push(`replicas ${d.spec.replicas} < 2`);
		if (!(s.topologySpreadConstraints ?? []).length) pr.push("no topologySpreadConstraints");
		for (const t of s.topologySpreadConstraints ?? [])
			if (!labelsMatch(t.labelSelector, E.labels)) pr.push(`topology spread ${t.topologyKey} does not select egressd's pods`);
		if (!E.container) pr.push("no container named egressd");
		else {
			const conf = E.conf;
			if (!conf) pr.push(`the config volume has no ${E.cfg?.base ?? "egressd.conf"} (${E.cfg?.file})`);
			pr.push(...adminProbeProblems(E.container, conf, ["readinessProbe", "livenessProbe"]));
			if (E.admin && E.port && E.admin.containerPort === E.port.containerPort) pr.push("the admin port is the proxy port");
			pr.push(...workersProblems(E.container, conf));
			const pre = E.container.lifecycle?.preStop?.sleep?.seconds ?? 0;
			if (!pre) pr.push("no preStop sleep");
			const need = pre + Math.ceil(confDrainMs(conf) / 1000);
			if (!(s.terminationGracePeriodSeconds >= need))
				pr.push(`terminationGracePeriodSeconds ${s.terminationGracePeriodSeconds} < preStop ${pre} s + drain ${confDrainMs(conf) / 1000} s`);
			if (E.port && !confListeners(conf).some((l) => l.port === E.port.containerPort && ["0.0.0.0", "::"].includes(l.address)))
				pr.push(`egressd.conf does not listen on 0.0.0.0:${E.port.containerPort}`);
		}
		const pdb = objs.find((o) => o.kind === "PodDisruptionBudget" && o.metadata.namespace === E.ns && labelsMatch(o.spec.selector, E.labels));
		if (!pdb) pr.push("no PodDisruptionBudget selects egressd's pods");
		if (!E.svc) pr.push("no Service selects egressd's pods");
		else {
			const sp = E.svc.spec.ports?.[0];
			if (![E.port?.name, E.port?.containerPort].includes(sp?.targetPort)) pr.push("Service targetPort is not the proxy port");
			if ((E.svc.spec.ports ?? []).length !== 1) pr.push(`the Service has ${(E.svc.spec.ports ?? []).length} ports: the agents' Service carries the proxy port only (Prometheus scrapes the pods)`);
			if (!/^\d+\.\d+\.\d+\.\d+$|:/.test(E.svc.spec.clusterIP ?? "")) pr.push(`Service has no fixed clusterIP (${E.svc.spec.clusterIP})`);
		}
		out.push(["egressd Deployment: ≥2 replicas, spread, httpGet probes on the admin listener, workers, preStop, grace ≥ drain, PDB, Service (proxy port only)", pr]);
	}

	// The agent's one way out.
	{
		const pr = [];
		if (!agents.length) pr.push("no agent pod templates (app.kubernetes.io/name=aider)");
		for (const ns of agentNs) {
			pr.push(...defaultDenyProblems(objs, ns));
			if (ns === E.ns) pr.push(`agents run in egressd's own namespace ${ns}`);
		}
		const egressNsOnly = (sel) => [...nsl].filter(([, l]) => labelsMatch(sel, l)).map(([n]) => n);
		const otherPodsInEgressNs = podTemplates(objs).filter((p) => p.ns === E.ns && p.obj !== E.dep);
		for (const a of agents) {
			const nps = policiesSelecting(objs, a.ns, a.labels);
			for (const np of nps) {
				for (const [i, r] of (np.spec.ingress ?? []).entries()) pr.push(`${id(np)} ingress[${i}]: agent pods accept no connections`);
				for (const [i, r] of (np.spec.egress ?? []).entries()) {
					const where = `${id(np)} egress[${i}]`;
					if (!(r.to ?? []).length) { pr.push(`${where}: no "to": allows every destination`); continue; }
					for (const t of r.to) {
						if (t.ipBlock) { pr.push(`${where}: ipBlock ${t.ipBlock.cidr}: only egressd's pods are allowed`); continue; }
						if (!t.namespaceSelector || selectorIsEmpty(t.namespaceSelector)) { pr.push(`${where}: peer without a namespaceSelector naming egressd's namespace`); continue; }
						const nss = egressNsOnly(t.namespaceSelector);
						if (nss.join() !== E.ns) pr.push(`${where}: namespaceSelector matches ${nss.join(",") || "nothing"}, not only ${E.ns}`);
						if (!t.podSelector || selectorIsEmpty(t.podSelector)) pr.push(`${where}: no podSelector: every pod of ${E.ns}`);
						else {
							if (!labelsMatch(t.podSelector, E.labels)) pr.push(`${where}: podSelector does not match egressd's pods`);
							for (const o of otherPodsInEgressNs) if (labelsMatch(t.podSelector, o.labels)) pr.push(`${where}: podSelector also matches ${id(o.obj)}`);
						}
					}
					const ports = r.ports ?? [];
					if (!ports.length) pr.push(`${where}: no ports: every port of egressd's pods`);
					for (const p of ports) {
						if ((p.protocol ?? "TCP") !== "TCP" || p.endPort || ![E.port?.containerPort, E.port?.name].includes(p.port))
							pr.push(`${where}: port ${p.protocol ?? "TCP"}/${p.port}${p.endPort ? "-" + p.endPort : ""} is not egressd's proxy port TCP/${E.port?.containerPort}`);
						if (p.port === 53) pr.push(`${where}: DNS (53) is open`);
					}
				}
			}
			if (!nps.some((np) => policyTypes(np).includes("Egress"))) pr.push(`${id(a.obj)}: no NetworkPolicy restricts its egress`);
		}
		out.push(["agent namespace: default-deny, egress only to egressd's pods on TCP/3128 (no DNS, no ipBlock)", pr]);
	}

	// The agent finds egressd without DNS, and names itself when the proxy
	// listener identifies clients by proxy-auth.
	{
		const pr = [];
		const hostPort = `${E.svc?.spec.clusterIP}:${E.svc?.spec.ports?.[0]?.port}`;
		const listener = confListeners(E.conf).find((l) => l.port === E.port?.containerPort);
		const auth = (listener?.identify ?? []).includes("proxy-auth");
		const esc = (x) => x.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
		const want = auth
			? new RegExp(`^http://<secret:([^/>]+)/[^>]+>:<secret:\\1/[^>]+>@${esc(hostPort)}$`)
			: `http://${hostPort}`;
		const shown = auth ? `http://USER:TOKEN@${hostPort}, user and token from one Secret` : want;
		pr.push(...proxyEnvProblems(agents, want, shown));
		if (auth) {
			const cred = confScalar(E.conf, "credentials");
			if (!cred) pr.push("the proxy listener identifies by proxy-auth, but egressd.conf names no credentials file");
			else if (!/^Secret\//.test(E.cfg?.sources?.[cred] ?? "")) pr.push(`credentials file ${cred} is not beside egressd.conf from a Secret (from ${E.cfg?.sources?.[cred] ?? "nowhere"})`);
		}
		out.push([`agent containers: HTTPS_PROXY and friends = ${shown} (the Service's fixed clusterIP), NO_PROXY minimal; egressd's credentials from a Secret`, pr]);
	}

	// egressd's own namespace: the agents reach the proxy port, the
	// monitoring namespace the admin port, nobody anything else.
	{
		const pr = [...defaultDenyProblems(objs, E.ns)];
		const nps = policiesSelecting(objs, E.ns, E.labels);
		const portIs = (p, cp) => cp && [cp.containerPort, cp.name].includes(p.port) && (p.protocol ?? "TCP") === "TCP" && !p.endPort;
		let agentsIn = false;
		let monitoringIn = false;
		for (const np of nps) {
			for (const [i, r] of (np.spec.ingress ?? []).entries()) {
				const where = `${id(np)} ingress[${i}]`;
				const ports = r.ports ?? [];
				const toProxy = ports.length === 1 && portIs(ports[0], E.port);
				const toAdmin = ports.length === 1 && portIs(ports[0], E.admin);
				if (!toProxy && !toAdmin) {
					pr.push(`${where}: ports ${ports.map((p) => `${p.protocol ?? "TCP"}/${p.port}`).join(",") || "all"}: not the proxy port alone, nor the admin port alone`);
					continue;
				}
				if (!(r.from ?? []).length) pr.push(`${where}: no "from": every source`);
				for (const f of r.from ?? []) {
					if (f.ipBlock) { pr.push(`${where}: ipBlock source`); continue; }
					if (!f.namespaceSelector || selectorIsEmpty(f.namespaceSelector)) { pr.push(`${where}: source without a namespaceSelector`); continue; }
					const m = [...nsl].filter(([, l]) => labelsMatch(f.namespaceSelector, l)).map(([n]) => n).sort();
					if (toProxy) {
						if (m.join() !== [...agentNs].sort().join()) pr.push(`${where}: admits namespaces ${m.join(",")}, agents are in ${agentNs.join(",")}`);
						else agentsIn = true;
					} else {
						const bad = m.filter((n) => agentNs.includes(n));
						if (bad.length) pr.push(`${where}: admits agent namespace(s) ${bad.join(",")} to the admin port`);
						else monitoringIn = true;
					}
				}
			}
		}
		if (!agentsIn) pr.push("no ingress rule admits the agents to the proxy port");
		if (!monitoringIn) pr.push("no ingress rule admits a monitoring namespace (label-selected) to the admin port");
		pr.push(...proxyEgressRuleProblems(nps, nsl, "egressd"));
		out.push(["egressd namespace: default-deny, ingress from agent namespaces on the proxy port only, from the monitoring namespace on the admin port only, egress DNS + public 443", pr]);
	}
	return out;
}

function proxyEnvProblems(agents, want, shown = want) {
	const pr = [];
	const ok = (v) => (want instanceof RegExp ? want.test(v ?? "") : v === want);
	for (const a of agents) {
		for (const { c } of containersOf(a.spec)) {
			if (!String(c.image).split("@")[0].split("/").pop().startsWith("aider")) continue;
			const env = effectiveEnv(c);
			const cn = `${id(a.obj)} container ${c.name}`;
			for (const k of ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"])
				if (!ok(env[k])) pr.push(`${cn}: ${k}=${env[k]} (want ${shown})`);
			if (new Set(["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"].map((k) => env[k])).size !== 1)
				pr.push(`${cn}: the four proxy variables differ`);
			for (const k of ["NO_PROXY", "no_proxy"])
				if (env[k] !== "localhost,127.0.0.1") pr.push(`${cn}: ${k}=${env[k]} (want localhost,127.0.0.1)`);
		}
	}
	return pr;
}

// ---------------------------------------------------------------- agent workload

function agentChecks(objs) {
	const pr = [];
	const agents = agentTemplates(objs);
	for (const a of agents) {
		const s = a.spec;
		const pid = id(a.obj);
		const vols = new Map((s.volumes ?? []).map((v) => [v.name, v]));
		const main = (s.containers ?? []).find((c) => c.name === "aider");
		if (!main) { pr.push(`${pid}: no container named aider`); continue; }
		const env = effectiveEnv(main);
		if (env.LITELLM_LOCAL_MODEL_COST_MAP !== "True") pr.push(`${pid}: LITELLM_LOCAL_MODEL_COST_MAP is not True`);
		const argv = [...(main.command ?? []), ...(main.args ?? [])];
		const isAiderCmd = argv[0] === "aider";
		const flags = {
			"--no-check-update": ["AIDER_CHECK_UPDATE", "false"],
			"--analytics-disable": ["AIDER_ANALYTICS_DISABLE", "true"],
			"--no-suggest-shell-commands": ["AIDER_SUGGEST_SHELL_COMMANDS", "false"],
		};
		for (const [flag, [ev, val]] of Object.entries(flags)) {
			if (isAiderCmd ? !argv.includes(flag) : env[ev] !== val) pr.push(`${pid}: aider runs without ${flag} (${ev}=${val})`);
		}
		// Writable places are volumes, never the image.
		const mounts = new Map((main.volumeMounts ?? []).map((m) => [m.mountPath, m]));
		for (const p of [env.HOME, "/tmp", "/workspace"]) {
			const m = mounts.get(p);
			const v = m && vols.get(m.name);
			if (!v || !(v.emptyDir || v.persistentVolumeClaim || v.ephemeral)) pr.push(`${pid}: ${p} is not an emptyDir/PVC volume`);
		}
		// git: global config from a ConfigMap with safe.directory and the
		// credential helper; the token from a Secret.
		const gc = env.GIT_CONFIG_GLOBAL;
		const gcDir = gc && path.posix.dirname(gc);
		const gm = gcDir && mounts.get(gcDir);
		const gv = gm && vols.get(gm.name);
		const cm = gv?.configMap && objs.find((o) => o.kind === "ConfigMap" && o.metadata.namespace === a.ns && o.metadata.name === gv.configMap.name);
		const gitconfig = cm?.data?.[path.posix.basename(gc ?? "")];
		if (!gitconfig) pr.push(`${pid}: GIT_CONFIG_GLOBAL (${gc}) is not a mounted ConfigMap file`);
		else {
			if (!/\[safe\][^[]*directory\s*=\s*\/workspace/.test(gitconfig)) pr.push(`${pid}: gitconfig has no safe.directory for the workspace`);
			const helper = /\[credential "https:\/\/[^"]+"\][^[]*helper\s*=\s*(\S+)/.exec(gitconfig);
			if (!helper) pr.push(`${pid}: gitconfig has no URL-scoped credential helper`);
			else if (!cm.data[path.posix.basename(helper[1])]) pr.push(`${pid}: credential helper ${helper[1]} is not in the ConfigMap`);
			if (/\[credential\][^[]*helper\s*=/.test(gitconfig)) pr.push(`${pid}: gitconfig has an unscoped credential helper`);
		}
		const tokenVol = [...vols.values()].find((v) => v.secret);
		if (!tokenVol) pr.push(`${pid}: no Secret volume for the git token`);
		else if (!(main.volumeMounts ?? []).some((m) => m.name === tokenVol.name && m.readOnly)) pr.push(`${pid}: git token Secret is not mounted read-only`);
		if (!(s.securityContext?.runAsUser > 0)) pr.push(`${pid}: agent has no non-root runAsUser`);
	}
	return [["agent workload: aider flags, LiteLLM offline cost map, HOME//tmp/workspace volumes, scoped git credential helper, safe.directory", pr]];
}

// ---------------------------------------------------------------- sidecar checks

function sidecarChecks(objs, repo) {
	const out = [];
	const nsl = namespaceLabels(objs);
	const agents = agentTemplates(objs);
	const pr = [];
	const lpr = [];
	let locked = false;
	for (const a of agents) {
		const s = a.spec;
		const pid = id(a.obj);
		const inits = s.initContainers ?? [];
		const ei = inits.findIndex((c) => c.name === "egressd");
		const li = inits.findIndex((c) => c.name === "egress-lockdown");
		if (ei < 0) { pr.push(`${pid}: no egressd init container`); continue; }
		const e = inits[ei];
		if (e.restartPolicy !== "Always") pr.push(`${pid}: egressd is not a native sidecar (restartPolicy Always)`);
		if (ei !== (li >= 0 ? 1 : 0)) pr.push(`${pid}: egressd is init container #${ei}, not the first (after the lockdown)`);
		if (!e.startupProbe) pr.push(`${pid}: egressd has no startupProbe (the agent could start before it listens)`);
		const eUid = e.securityContext?.runAsUser;
		const podUid = s.securityContext?.runAsUser;
		if (!(eUid > 0) || eUid === podUid) pr.push(`${pid}: egressd's UID ${eUid} must be its own, not the pod's ${podUid}`);
		for (const { c } of containersOf(s)) {
			if (c === e || c.name === "egress-lockdown") continue;
			if ((c.securityContext?.runAsUser ?? podUid) === eUid) pr.push(`${pid}: container ${c.name} runs as egressd's UID ${eUid}`);
		}
		const conf = egressdConfOf(objs, a.ns, s, e).conf;
		const ls = confListeners(conf);
		if (!ls.some((l) => l.address === "127.0.0.1" && l.port === 3128)) pr.push(`${pid}: sidecar egressd.conf does not listen on 127.0.0.1:3128`);
		for (const l of ls)
			if (!isLoopback(l.address)) pr.push(`${pid}: sidecar egressd.conf has a proxy listener on ${l.address}:${l.port}: the proxy stays on loopback`);
		pr.push(...adminProbeProblems(e, conf, ["startupProbe", "readinessProbe", "livenessProbe"]).map((x) => `${pid}: ${x}`));
		pr.push(...workersProblems(e, conf).map((x) => `${pid}: ${x}`));
		// The lockdown, when present.
		if (li >= 0) {
			locked = true;
			const l = inits[li];
			if (li !== 0) lpr.push(`${pid}: egress-lockdown is init container #${li}, not the first`);
			const uidEnv = (l.env ?? []).find((x) => x.name === "EGRESSD_UID")?.value;
			if (String(eUid) !== uidEnv) lpr.push(`${pid}: EGRESSD_UID=${uidEnv} but the egressd sidecar runs as ${eUid}`);
			const lv = (s.volumes ?? []).find((v) => (l.volumeMounts ?? []).some((m) => m.name === v.name) && v.configMap);
			const lm = lv && (l.volumeMounts ?? []).find((m) => m.name === lv.name);
			const cm = lv && objs.find((o) => o.kind === "ConfigMap" && o.metadata.namespace === a.ns && o.metadata.name === lv.configMap.name);
			const shipped = fs.readFileSync(path.join(repo, "k8s/components/sidecar-lockdown/egress-lockdown.sh"), "utf8");
			if (cm?.data?.["egress-lockdown.sh"] !== shipped) lpr.push(`${pid}: the lockdown ConfigMap does not carry k8s/components/sidecar-lockdown/egress-lockdown.sh as tested`);
			const argv = [...(l.command ?? []), ...(l.args ?? [])];
			if (!lm || !argv.includes(`${lm.mountPath}/egress-lockdown.sh`)) lpr.push(`${pid}: the lockdown container does not run the mounted script (${argv.join(" ")})`);
			const caps = l.securityContext?.capabilities ?? {};
			if ((caps.add ?? []).join() !== "NET_ADMIN" || !(caps.drop ?? []).includes("ALL")) lpr.push(`${pid}: lockdown capabilities must be drop ALL, add NET_ADMIN only`);
		}
	}
	out.push(["sidecar: egressd first, native sidecar, own UID, proxy on loopback only, startup/readiness/liveness httpGet on the admin listener, workers", [...pr]]);
	pr.length = 0;
	const agentNs = [...new Set(agents.map((a) => a.ns))];
	const npr = [];
	for (const ns of agentNs) npr.push(...defaultDenyProblems(objs, ns));
	for (const a of agents) {
		const nps = policiesSelecting(objs, a.ns, a.labels);
		if (!nps.some((np) => policyTypes(np).includes("Egress"))) npr.push(`${id(a.obj)}: no NetworkPolicy restricts its egress`);
		npr.push(...proxyEgressRuleProblems(nps, nsl, "agent"));
	}
	out.push(["sidecar NetworkPolicy: default-deny, egress only DNS (kube-dns) and TCP/443 minus private ranges, no ingress", npr]);
	out.push(["sidecar: HTTPS_PROXY and friends = http://127.0.0.1:3128, NO_PROXY minimal", proxyEnvProblems(agents, "http://127.0.0.1:3128")]);
	if (locked) out.push(["sidecar lockdown: first init container, runs the tested script, EGRESSD_UID = egressd's UID, NET_ADMIN only", lpr]);
	return out;
}

// ---------------------------------------------------------------- egressd -t

// Writes the files of egressd's config volume into a fresh directory and
// runs `egressd -t -c DIR/egressd.conf`: the credentials file the config
// names is found beside it, as in the pod.
function materialize(files, dir) {
	fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
	for (const [f, text] of Object.entries(files)) {
		const to = path.join(dir, f);
		fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o755 });
		fs.writeFileSync(to, text, { mode: 0o644 });
	}
}

function configChecks(objs, name) {
	const out = [];
	const bin = process.env.EGRESSD;
	// Every egressd container's config volume, once per distinct content;
	// then any egressd.conf ConfigMap no egressd container mounts, alone.
	const runs = new Map();
	for (const p of podTemplates(objs))
		for (const { c } of containersOf(p.spec)) {
			if (c.name !== "egressd") continue;
			const cfg = egressdConfOf(objs, p.ns, p.spec, c);
			const cm = cfg.sources[cfg.base];
			const extra = Object.keys(cfg.files).filter((f) => f !== cfg.base).map((f) => `${f} from ${cfg.sources[f]}`);
			const key = JSON.stringify([cfg.files, cfg.missing]);
			if (!runs.has(key)) runs.set(key, { label: `egressd.conf of ${cm ?? `${id(p.obj)} (none mounted)`}${extra.length ? ` with ${extra.join(", ")} beside it` : ""}`, cfg });
		}
	const mounted = new Set([...runs.values()].map((r) => r.cfg.sources[r.cfg.base]));
	for (const cm of objs.filter((o) => o.kind === "ConfigMap" && o.data?.["egressd.conf"] !== undefined && !mounted.has(id(o))))
		runs.set(id(cm), { label: `egressd.conf of ${id(cm)}`, cfg: { files: { "egressd.conf": cm.data["egressd.conf"] }, base: "egressd.conf", missing: [] } });
	for (const { label: what, cfg } of runs.values()) {
		const label = `${name}: egressd -t accepts ${what}`;
		if (!bin || !fs.existsSync(bin)) {
			if (process.env.K8S_TEST_ALLOW_NO_EGRESSD === "1") console.log(`skip - ${label}: EGRESSD not built`);
			else out.push([label, [`set EGRESSD to the built egressd (got '${bin ?? ""}')`]]);
			continue;
		}
		const pr = cfg.missing.map((m) => `the config volume names ${m}, which is not rendered`);
		if (cfg.files[cfg.base] === undefined) pr.push(`the config volume has no ${cfg.base}`);
		const dir = fs.mkdtempSync(path.join(os.tmpdir(), "egressd-k8s-conf-"));
		try {
			materialize(cfg.files, dir);
			const file = path.join(dir, cfg.base);
			const r = spawnSync(bin, ["-t", "-c", file], { encoding: "utf8", timeout: 10000 });
			const said = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim();
			if (r.status !== 0) pr.push(`exit ${r.status}${r.signal ? ` (${r.signal})` : ""}: ${said}`);
			else if (!said.includes("configuration OK")) pr.push(`exit 0 but no "configuration OK": ${said}`);
			out.push([label, pr]);
		} finally {
			fs.rmSync(dir, { recursive: true, force: true });
		}
	}
	if (!runs.size && objs.some((o) => o.kind === "Deployment" || o.kind === "Job")) out.push([`${name}: an egressd.conf ConfigMap is rendered`, ["none found"]]);
	return out;
}

// ---------------------------------------------------------------- monitoring

// Seconds in a Prometheus duration ("6m", "1h30m", "90s").
function promSeconds(d) {
	if (!d) return 0;
	let t = 0;
	for (const [, n, u] of String(d).matchAll(/(\d+)(ms|s|m|h|d|w|y)/g))
		t += Number(n) * { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 }[u];
	return t;
}

// The metric names docs/metrics.md lists (its table's first column).
function documentedMetrics(repo) {
	const md = fs.readFileSync(path.join(repo, "docs/metrics.md"), "utf8");
	return new Set([...md.matchAll(/^\|\s*`(egressd_[a-z0-9_]+)`/gm)].map((m) => m[1]));
}

function monitoringChecks(objs, E, repo) {
	const out = [];
	const rules = objs.filter((o) => o.kind === "PrometheusRule").flatMap((o) => (o.spec.groups ?? []).flatMap((g) => (g.rules ?? []).map((r) => ({ o, r }))));
	const alerts = rules.filter(({ r }) => r.alert);
	{
		const pr = [];
		const known = documentedMetrics(repo);
		for (const { o, r } of rules) {
			const expr = r.expr ?? "";
			for (const m of new Set(expr.match(/\begressd_[a-z0-9_]+/g) ?? []))
				if (!known.has(m.replace(/_(bucket|sum|count)$/, ""))) pr.push(`${id(o)} ${r.alert ?? r.record}: ${m} is not a metric of docs/metrics.md`);
			if (/egressd_requests_total/.test(expr) && !/by \([^)]*policy[^)]*reason|by \([^)]*reason[^)]*policy/.test(expr))
				pr.push(`${id(o)} ${r.alert}: on egressd_requests_total but not by policy and reason`);
		}
		const drain = E ? Math.ceil(confDrainMs(E.conf) / 1000) : 30;
		const deny = alerts.filter(({ r }) => /egressd_requests_total\{[^}]*decision="deny"/.test(r.expr ?? ""));
		if (!deny.length) pr.push('no alert on egressd_requests_total{decision="deny"}');
		const ready = alerts.filter(({ r }) => /\begressd_ready\s*==\s*0\b/.test(r.expr ?? ""));
		if (!ready.length) pr.push("no alert on egressd_ready == 0");
		for (const { o, r } of ready)
			if (!(promSeconds(r.for) > Math.max(300, drain)))
				pr.push(`${id(o)} ${r.alert}: for ${r.for ?? "0s"}, not longer than 5 min and the drain (${drain} s): every rollout would fire it`);
		if (!alerts.some(({ r }) => /egressd_reloads_total\{[^}]*result="failed"/.test(r.expr ?? ""))) pr.push('no alert on egressd_reloads_total{result="failed"}');
		out.push(["PrometheusRule: denied requests by policy and reason, egressd_ready == 0 longer than a drain, failed reloads; every metric documented", pr]);
	}
	{
		const pr = [];
		const pms = objs.filter((o) => o.kind === "PodMonitor");
		if (!pms.length) pr.push("the PrometheusRule has no PodMonitor (or ServiceMonitor) feeding it");
		if (!E) pr.push("no egressd Deployment to scrape");
		for (const pm of pms) {
			if (!E) break;
			if (pm.metadata.namespace !== E.ns && !(pm.spec.namespaceSelector?.matchNames ?? []).includes(E.ns)) pr.push(`${id(pm)}: not in, nor selecting, namespace ${E.ns}`);
			if (!labelsMatch(pm.spec.selector, E.labels) || selectorIsEmpty(pm.spec.selector)) pr.push(`${id(pm)}: selector does not select egressd's pods`);
			const eps = pm.spec.podMetricsEndpoints ?? [];
			if (!eps.length) pr.push(`${id(pm)}: no podMetricsEndpoints`);
			for (const ep of eps) {
				const port = ep.port ?? ep.targetPort;
				if (!E.admin || ![E.admin.name, E.admin.containerPort].includes(port)) pr.push(`${id(pm)}: scrapes port ${port}, not egressd's admin port`);
				if ((ep.path ?? "/metrics") !== "/metrics") pr.push(`${id(pm)}: path ${ep.path}`);
			}
		}
		out.push(["PodMonitor: egressd's pods, admin port, /metrics", pr]);
	}
	return out;
}

// ---------------------------------------------------------------- Dockerfiles

function dockerfileChecks(repo) {
	const out = [];
	const dir = path.join(repo, "k8s/images");
	for (const f of fs.readdirSync(dir).filter((x) => x.endsWith(".Dockerfile")).sort()) {
		const text = fs.readFileSync(path.join(dir, f), "utf8").replace(/\\\n/g, " ");
		const args = {};
		const lines = text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))
			.map((l) => {
				const a = /^ARG\s+([A-Za-z_]\w*)=(\S+)/i.exec(l);
				if (a) args[a[1]] = a[2];
				return /^FROM\s/i.test(l) ? l.replace(/\$\{(\w+)\}/g, (m, v) => args[v] ?? m) : l;
			});
		const stages = [];
		for (const l of lines) {
			if (/^FROM\s/i.test(l)) stages.push([l]);
			else if (stages.length) stages[stages.length - 1].push(l);
		}
		const pr = [];
		const last = stages[stages.length - 1] ?? [];
		const user = last.filter((l) => /^USER\s/i.test(l)).pop();
		// The lockdown image must run as root (nft needs CAP_NET_ADMIN in
		// its effective set); every other image ends on a numeric non-root USER.
		if (f === "lockdown.Dockerfile") {
			if (user && !/^USER\s+0(:0)?$/i.test(user)) pr.push(`final USER ${user}: the lockdown runs as root by design`);
		} else if (!user || !/^USER\s+[1-9]\d*(:[1-9]\d*)?$/i.test(user)) pr.push(`final stage USER is not numeric non-root (${user ?? "none"})`);
		if (f !== "lockdown.Dockerfile" && stages.length < 2) pr.push("not multi-stage");
		const runtimeInstalls = last.filter((l) => /^RUN\s/i.test(l)).join(" ");
		for (const bad of ["build-essential", "gcc", "curl", "wget", "make "])
			if (new RegExp(`install[^&;]*\\b${bad}`).test(runtimeInstalls)) pr.push(`final stage installs ${bad.trim()}`);
		if (f === "egressd.Dockerfile" && !/^FROM\s+scratch\b/i.test(last[0] ?? "")) pr.push("runtime stage is not FROM scratch (egressd, its config and its libraries only)");
		if (!/^FROM\s+\S*(debian:12|bookworm|scratch)/i.test(last[0] ?? "") && f !== "aider.Dockerfile") pr.push(`final base is not Debian 12: ${last[0]}`);
		out.push([`Dockerfile ${f}: multi-stage, numeric USER, no build tools or downloaders in the runtime stage`, pr]);
	}
	return out;
}

// ---------------------------------------------------------------- runner

async function checkRender(name, file, repo) {
	const { objs, errors } = loadRendered(file);
	let all = true;
	const r = (n, p) => (all = report(n, p) && all);
	r(`${name}: rendered YAML parses (${objs.length} objects)`, errors);
	r(`${name}: every object valid against the Kubernetes schemas (kubernetes-models validate())`, await schemaProblems(objs));
	r(`${name}: no unknown or misspelled field (typed excess-property check, tsc)`, fieldProblems(objs));
	r(`${name}: every pod meets Pod Security "restricted" (v1.30) but the documented NET_ADMIN lockdown init container, and its namespace enforces accordingly`, pssProblems(objs));
	r(`${name}: every namespaced object in a namespace of the overlay; PSA labels pinned`, namespaceProblems(objs));
	r(`${name}: hardening: no SA token, RO root fs, requests/limits, sized emptyDirs, pinned images`, hardeningProblems(objs));
	const E = findEgressd(objs);
	const agents = agentTemplates(objs);
	if (agents.length) for (const [n, p] of agentChecks(objs)) r(`${name}: ${n}`, p);
	if (E && agents.length) for (const [n, p] of sharedServiceChecks(objs, E)) r(`${name}: ${n}`, p);
	else if (agents.length) for (const [n, p] of sidecarChecks(objs, repo)) r(`${name}: ${n}`, p);
	if (objs.some((o) => o.kind === "PrometheusRule" || o.kind === "PodMonitor"))
		for (const [n, p] of monitoringChecks(objs, E, repo)) r(`${name}: ${n}`, p);
	for (const [n, p] of configChecks(objs, name)) r(n, p);
	return all;
}

// Each mutation breaks one thing a check above must catch; the check must
// then fail. Guards against checks that pass whatever they are given.
async function selfTest(sharedFile, lockFile, monFile, repo) {
	const load = (f) => loadRendered(f).objs;
	const clone = (x) => JSON.parse(JSON.stringify(x));
	const pick = (objs, kind, name) => objs.find((o) => o.kind === kind && o.metadata.name === name);
	const cases = [
		["a misspelled field (readOnlyRootFilesytem) is caught by the field check", sharedFile, (o) => {
			const c = pick(o, "Deployment", "egressd").spec.template.spec.containers[0];
			c.securityContext.readOnlyRootFilesytem = true;
		}, (o) => fieldProblems(o)],
		["a misspelled spec field (replica) is caught by the field check", sharedFile, (o) => {
			pick(o, "Deployment", "egressd").spec.replica = 3;
		}, (o) => fieldProblems(o)],
		["a wrongly typed field (runAsUser: \"65532\") is caught by the schema check", sharedFile, (o) => {
			pick(o, "Deployment", "egressd").spec.template.spec.securityContext.runAsUser = "65532";
		}, (o) => schemaProblems(o)],
		["a kind without a schema is reported", sharedFile, (o) => {
			o.push({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w", namespace: "egress" } });
		}, (o) => schemaProblems(o)],
		["a container keeping its capabilities fails Pod Security restricted", sharedFile, (o) => {
			delete pick(o, "Deployment", "egressd").spec.template.spec.containers[0].securityContext.capabilities;
		}, (o) => pssProblems(o)],
		["NET_ADMIN on any container but the lockdown one fails Pod Security restricted", lockFile, (o) => {
			const s = pick(o, "Job", "aider").spec.template.spec;
			s.initContainers.find((c) => c.name === "egressd").securityContext.capabilities.add = ["NET_ADMIN"];
		}, (o) => pssProblems(o)],
		["the lockdown pod in a namespace enforcing restricted is reported", lockFile, (o) => {
			pick(o, "Namespace", "agents").metadata.labels["pod-security.kubernetes.io/enforce"] = "restricted";
		}, (o) => pssProblems(o)],
		["DNS egress from the agent namespace is caught", sharedFile, (o) => {
			pick(o, "NetworkPolicy", "allow-egress-to-egressd").spec.egress.push({ ports: [{ protocol: "UDP", port: 53 }], to: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "kube-system" } }, podSelector: { matchLabels: { "k8s-app": "kube-dns" } } }] });
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["an ipBlock egress from the agent namespace is caught", sharedFile, (o) => {
			pick(o, "NetworkPolicy", "allow-egress-to-egressd").spec.egress[0].to.push({ ipBlock: { cidr: "0.0.0.0/0" } });
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["an agent egress rule to every pod of egressd's namespace is caught", sharedFile, (o) => {
			delete pick(o, "NetworkPolicy", "allow-egress-to-egressd").spec.egress[0].to[0].podSelector;
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a missing agent default-deny is caught", sharedFile, (o) => {
			o.splice(o.findIndex((x) => x.kind === "NetworkPolicy" && x.metadata.name === "default-deny" && x.metadata.namespace === "agents"), 1);
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["an agent HTTPS_PROXY not naming egressd's clusterIP is caught", sharedFile, (o) => {
			const c = pick(o, "Deployment", "aider-workspace").spec.template.spec.containers[0];
			c.env.find((e) => e.name === "EGRESSD_SERVICE_HOST").value = "egressd.egress.svc";
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a lockdown EGRESSD_UID that is not egressd's UID is caught", lockFile, (o) => {
			const l = pick(o, "Job", "aider").spec.template.spec.initContainers.find((c) => c.name === "egress-lockdown");
			l.env[0].value = "1000";
		}, (o) => sidecarChecks(o, repo).flatMap(([, p]) => p)],
		["an edited lockdown script in the ConfigMap is caught", lockFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["egress-lockdown.sh"]);
			cm.data["egress-lockdown.sh"] += "\nnft flush ruleset\n";
		}, (o) => sidecarChecks(o, repo).flatMap(([, p]) => p)],
		["a grace period shorter than the drain is caught", sharedFile, (o) => {
			pick(o, "Deployment", "egressd").spec.template.spec.terminationGracePeriodSeconds = 30;
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a readiness probe back on the proxy port (tcpSocket) is caught", sharedFile, (o) => {
			pick(o, "Deployment", "egressd").spec.template.spec.containers[0].readinessProbe = { tcpSocket: { port: "proxy" }, periodSeconds: 5 };
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a liveness probe on /readyz is caught (a draining pod would be restarted)", sharedFile, (o) => {
			pick(o, "Deployment", "egressd").spec.template.spec.containers[0].livenessProbe.httpGet.path = "/readyz";
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["an egressd.conf without its admin listener is caught (the probes would fail)", sharedFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["egressd.conf"]);
			cm.data["egressd.conf"] = cm.data["egressd.conf"].replace(/^admin = .*$/m, "");
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["an egressd.conf without workers is caught (one thread per node CPU)", sharedFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["egressd.conf"]);
			cm.data["egressd.conf"] = cm.data["egressd.conf"].replace(/^workers = .*$/m, "");
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["the agent namespaces admitted to the admin port are caught", sharedFile, (o) => {
			pick(o, "NetworkPolicy", "egressd-ingress-from-monitoring").spec.ingress[0].from[0].namespaceSelector = { matchLabels: { "egressd/client": "true" } };
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["the admin port added to the agents' ingress rule is caught", sharedFile, (o) => {
			pick(o, "NetworkPolicy", "egressd-ingress-from-agents").spec.ingress[0].ports.push({ protocol: "TCP", port: 9090 });
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["the admin port on the agents' Service is caught", sharedFile, (o) => {
			pick(o, "Service", "egressd").spec.ports.push({ name: "admin", port: 9090, targetPort: "admin", protocol: "TCP" });
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["an agent proxy URL without the identity (proxy-auth listener) is caught", sharedFile, (o) => {
			const c = pick(o, "Deployment", "aider-workspace").spec.template.spec.containers[0];
			c.env.find((e) => e.name === "HTTPS_PROXY").value = "http://$(EGRESSD_SERVICE_HOST):$(EGRESSD_SERVICE_PORT)";
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a token variable defined after the proxy URL is caught ($(VAR) expands earlier variables only)", sharedFile, (o) => {
			const env = pick(o, "Job", "aider").spec.template.spec.initContainers.find((c) => c.name === "clone").env;
			env.push(...env.splice(env.findIndex((e) => e.name === "EGRESSD_PROXY_TOKEN"), 1));
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a sidecar proxy listener on the pod address is caught", lockFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["egressd.conf"]);
			cm.data["egressd.conf"] = cm.data["egressd.conf"].replace('address = "127.0.0.1"; port = 3128;', 'address = "0.0.0.0"; port = 3128;');
		}, (o) => sidecarChecks(o, repo).flatMap(([, p]) => p)],
		["a sidecar startup probe on TCP is caught", lockFile, (o) => {
			pick(o, "Job", "aider").spec.template.spec.initContainers.find((c) => c.name === "egressd").startupProbe = { tcpSocket: { port: "admin" }, periodSeconds: 1 };
		}, (o) => sidecarChecks(o, repo).flatMap(([, p]) => p)],
		["a sidecar admin listener on loopback is caught (the kubelet cannot probe it)", lockFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["egressd.conf"]);
			cm.data["egressd.conf"] = cm.data["egressd.conf"].replace(/^admin = \{ address = "0.0.0.0";/m, 'admin = { address = "127.0.0.1";');
		}, (o) => sidecarChecks(o, repo).flatMap(([, p]) => p)],
		["an EgressdNotReady alert shorter than a drain is caught", monFile, (o) => {
			for (const g of pick(o, "PrometheusRule", "egressd").spec.groups) for (const r of g.rules) if (r.alert === "EgressdNotReady") r.for = "1m";
		}, (o) => monitoringChecks(o, findEgressd(o), repo).flatMap(([, p]) => p)],
		["a misspelt metric in an alert (egressd_request_total) is caught", monFile, (o) => {
			const r = pick(o, "PrometheusRule", "egressd").spec.groups[0].rules[0];
			r.expr = r.expr.replace("egressd_requests_total", "egressd_request_total");
		}, (o) => monitoringChecks(o, findEgressd(o), repo).flatMap(([, p]) => p)],
		["a PodMonitor scraping the proxy port is caught", monFile, (o) => {
			pick(o, "PodMonitor", "egressd").spec.podMetricsEndpoints[0].port = "proxy";
		}, (o) => monitoringChecks(o, findEgressd(o), repo).flatMap(([, p]) => p)],
		["a misspelled PodMonitor field (podMetricEndpoints) is caught by the field check", monFile, (o) => {
			const pm = pick(o, "PodMonitor", "egressd");
			pm.spec.podMetricEndpoints = pm.spec.podMetricsEndpoints;
		}, (o) => fieldProblems(o)],
	];
	if (process.env.EGRESSD && fs.existsSync(process.env.EGRESSD)) {
		cases.push(["a misspelt key in an egressd.conf ConfigMap is refused by egressd -t", sharedFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["egressd.conf"]);
			cm.data["egressd.conf"] = cm.data["egressd.conf"].replace("drain_timeout_ms", "drain_timout_ms");
		}, (o) => configChecks(o, "self-test").flatMap(([, p]) => p)]);
		cases.push(["egressd's config volume without the credentials Secret is refused by egressd -t", sharedFile, (o) => {
			const v = pick(o, "Deployment", "egressd").spec.template.spec.volumes.find((x) => x.projected);
			v.projected.sources = v.projected.sources.filter((x) => !x.secret);
		}, (o) => configChecks(o, "self-test").flatMap(([, p]) => p)]);
		cases.push(["a credentials line for an identity egressd.conf does not have is refused by egressd -t", sharedFile, (o) => {
			const sec = o.find((x) => x.kind === "Secret" && x.data?.credentials);
			const text = Buffer.from(sec.data.credentials, "base64").toString("utf8").replace(/^aider /m, "aidr ");
			sec.data.credentials = Buffer.from(text).toString("base64");
		}, (o) => configChecks(o, "self-test").flatMap(([, p]) => p)]);
	}
	let all = true;
	const base = { [sharedFile]: load(sharedFile), [lockFile]: load(lockFile), [monFile]: load(monFile) };
	for (const [name, file, mutate, check] of cases) {
		const objs = clone(base[file]);
		const before = await check(clone(objs));
		mutate(objs);
		const after = await check(objs);
		const pr = [];
		if (before.length) pr.push(`the check fails before the mutation: ${before[0]}`);
		if (!after.length) pr.push("the check still passes after the mutation");
		all = report(`self-test: ${name}`, pr) && all;
		if (!pr.length) console.log(`#   caught: ${String(after[0]).slice(0, 200)}`);
	}
	return all;
}

const args = process.argv.slice(2);
let repo = path.resolve(here, "../..");
if (args[0] === "--repo") { repo = path.resolve(args[1]); args.splice(0, 2); }
let good = true;
if (args[0] === "--self-test") {
	good = await selfTest(args[1], args[2], args[3], repo);
} else if (args[0] === "--materialize") {
	// --materialize RENDERED.yaml DIR: egressd's config volume (egressd.conf
	// and what lies beside it), as the shared-service Deployment mounts it,
	// written into DIR; prints the config file's path. For service-test.sh.
	const E = findEgressd(loadRendered(args[1]).objs);
	if (!E?.cfg?.conf || E.cfg.missing.length) {
		console.error(`materialize: no complete egressd config volume in ${args[1]} ${E?.cfg?.missing?.join(" ") ?? ""}`);
		process.exit(1);
	}
	materialize(E.cfg.files, args[2]);
	console.log(path.join(args[2], E.cfg.base));
} else if (args[0] === "--rule-metrics") {
	// --rule-metrics RENDERED.yaml: the metric names the PrometheusRules'
	// expressions use, one a line. For service-test.sh.
	const names = new Set();
	for (const o of loadRendered(args[1]).objs.filter((x) => x.kind === "PrometheusRule"))
		for (const g of o.spec.groups ?? []) for (const r of g.rules ?? []) for (const m of (r.expr ?? "").match(/\begressd_[a-z0-9_]+/g) ?? []) names.add(m);
	console.log([...names].sort().join("\n"));
	good = names.size > 0;
} else if (args[0] === "--dockerfiles") {
	for (const [n, p] of dockerfileChecks(repo)) good = report(n, p) && good;
} else {
	for (const a of args) {
		const eq = a.indexOf("=");
		good = (await checkRender(a.slice(0, eq), a.slice(eq + 1), repo)) && good;
	}
}
process.exit(good ? 0 : 1);
