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

// ---------------------------------------------------------------- gitconfig

// The entries of a git config file: [{ section, sub, key, value }], section
// and key lower-cased as git compares them. Enough of git's syntax for the
// files here: [section "sub"] headers, key = value, # and ; comments.
function gitConfigEntries(text) {
	const out = [];
	let section = null;
	let sub = null;
	for (const raw of (text ?? "").split("\n")) {
		const line = raw.replace(/(^|\s)[#;].*$/, "").trim();
		if (!line) continue;
		const h = /^\[\s*([A-Za-z0-9.-]+)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]$/.exec(line);
		if (h) {
			section = h[1].toLowerCase();
			sub = h[2] ?? null;
			continue;
		}
		const kv = /^([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?$/.exec(line);
		if (kv && section) out.push({ section, sub, key: kv[1].toLowerCase(), value: kv[2] ?? "true" });
	}
	return out;
}

// A file of a container as the pod shows it, from the ConfigMap, Secret or
// projected volume mounted on its directory: { text, from, mount, vol } or
// null.
function mountedFile(objs, ns, spec, c, file) {
	const dir = path.posix.dirname(file);
	const m = (c.volumeMounts ?? []).find((x) => !x.subPath && x.mountPath.replace(/\/$/, "") === dir);
	const vol = m && (spec.volumes ?? []).find((v) => v.name === m.name);
	if (!vol) return null;
	const { files, sources } = volumeFiles(objs, ns, vol);
	const base = path.posix.basename(file);
	return files[base] === undefined ? null : { text: files[base], from: sources[base], mount: m, vol };
}

// The container's global git config as git reads it: GIT_CONFIG_GLOBAL, and
// the files its [include] paths name (relative to the including file), in
// place. { file, entries, files: [paths read], problems }.
function gitConfigOf(objs, ns, spec, c) {
	const file = effectiveEnv(c).GIT_CONFIG_GLOBAL;
	const problems = [];
	const files = [];
	const read = (f, depth) => {
		const got = mountedFile(objs, ns, spec, c, f);
		if (!got) {
			problems.push(`git config ${f} is not a file of a mounted volume`);
			return [];
		}
		files.push(f);
		const out = [];
		for (const e of gitConfigEntries(got.text)) {
			if (e.section === "include" && e.sub === null && e.key === "path") {
				if (depth > 4) problems.push(`${f}: includes nested too deep`);
				else out.push(...read(path.posix.resolve(path.posix.dirname(f), e.value), depth + 1));
			} else out.push(e);
		}
		return out;
	};
	if (!file) return { file, entries: [], files, problems: ["no GIT_CONFIG_GLOBAL"] };
	return { file, entries: read(file, 0), files, problems };
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
			gateway: /gateway\s*=\s*true\b/.test(g[1]),
		};
	});
}
// The text of the parenthesised list that follows `key = (` at the top of
// the file (strings and nested groups skipped over), or null.
function confListText(conf, key) {
	const text = stripComments(conf);
	const m = new RegExp(`(?:^|[;\\s])${key}\\s*=\\s*\\(`).exec(text);
	if (!m) return null;
	let depth = 0;
	for (let i = m.index + m[0].length - 1; i < text.length; i++) {
		const ch = text[i];
		if (ch === '"') {
			for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
		} else if (ch === "(" || ch === "{" || ch === "[") depth++;
		else if (ch === ")" || ch === "}" || ch === "]") {
			if (--depth === 0) return text.slice(m.index + m[0].length, i);
		}
	}
	return null;
}
// The top-level { ... } groups of a list's text.
function confGroups(list) {
	const out = [];
	let depth = 0;
	let start = -1;
	for (let i = 0; i < (list ?? "").length; i++) {
		const ch = list[i];
		if (ch === '"') {
			for (i++; i < list.length && list[i] !== '"'; i++) if (list[i] === "\\") i++;
		} else if (ch === "{") {
			if (depth++ === 0) start = i;
		} else if (ch === "}" && --depth === 0) out.push(list.slice(start + 1, i));
	}
	return out;
}
const confString = (group, key) => new RegExp(`(?:^|[;\\s{])${key}\\s*=\\s*"([^"]*)"`).exec(group)?.[1];
// The gateway's routes: name, prefix, origin, and what inject adds from where.
function confRoutes(conf) {
	return confGroups(confListText(conf, "routes")).map((g) => {
		const inj = /inject\s*=\s*\{([^}]*)\}/.exec(g)?.[1];
		const git = /git\s*=\s*\{([^}]*)\}/.exec(g)?.[1];
		const list = (text, key) => {
			const m = new RegExp(`(?:^|[;\\s{])${key}\\s*=\\s*\\[([^\\]]*)\\]`).exec(text ?? "");
			return m ? [...m[1].matchAll(/"([^"]+)"/g)].map((x) => x[1]) : [];
		};
		const origin = confString(g, "origin");
		return {
			git: git === undefined ? null : {
				fetch: list(git, "fetch"), push: list(git, "push"), refs: list(git, "refs"),
				delete: /(?:^|[;\s])delete\s*=\s*true/.test(git), tags: /(?:^|[;\s])tags\s*=\s*true/.test(git),
			},
			name: confString(g, "name"), prefix: confString(g, "prefix"), origin,
			host: /^https:\/\/([^/:]+)/.exec(origin ?? "")?.[1],
			inject: inj === undefined ? null : {
				header: confString(inj, "header"), scheme: confString(inj, "scheme") ?? "plain",
				user: confString(inj, "user"), secret: confString(inj, "secret"),
			},
		};
	});
}
// Every host name the proxy's rules allow (routes have no "hosts").
function confRuleHosts(conf) {
	return [...stripComments(conf).matchAll(/(?:^|[;\s{])hosts\s*=\s*\[([^\]]*)\]/g)].flatMap((m) => [...m[1].matchAll(/"([^"]+)"/g)].map((x) => x[1]));
}
// Every route name the policies list (`routes = [ ... ]`).
function confPolicyRoutes(conf) {
	return [...stripComments(conf).matchAll(/(?:^|[;\s{])routes\s*=\s*\[([^\]]*)\]/g)].flatMap((m) => [...m[1].matchAll(/"([^"]+)"/g)].map((x) => x[1]));
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
	const gateway = (c?.ports ?? []).find((p) => p.name === "gateway");
	const svc = objs.find((o) => o.kind === "Service" && o.metadata.namespace === dep.metadata.namespace && labelsMatch({ matchLabels: o.spec?.selector }, dep.spec.template.metadata.labels));
	const cfg = c ? egressdConfOf(objs, dep.metadata.namespace, dep.spec.template.spec, c) : null;
	return { dep, ns: dep.metadata.namespace, labels: dep.spec.template.metadata.labels, container: c, port, admin, gateway, svc, cfg, conf: cfg?.conf };
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
			const targets = (E.svc.spec.ports ?? []).map((sp) => sp.targetPort);
			const is = (cp, t) => cp && [cp.name, cp.containerPort].includes(t);
			if (!targets.some((t) => is(E.port, t))) pr.push("no Service port targets the proxy port");
			if (E.gateway && !targets.some((t) => is(E.gateway, t))) pr.push("no Service port targets the gateway port");
			for (const t of targets)
				if (!is(E.port, t) && !is(E.gateway, t)) pr.push(`the Service targets port ${t}: the agents' Service carries the proxy and gateway ports only (Prometheus scrapes the pods)`);
			if (!/^\d+\.\d+\.\d+\.\d+$|:/.test(E.svc.spec.clusterIP ?? "")) pr.push(`Service has no fixed clusterIP (${E.svc.spec.clusterIP})`);
		}
		out.push(["egressd Deployment: ≥2 replicas, spread, httpGet probes on the admin listener, workers, preStop, grace ≥ drain, PDB, Service (proxy and gateway ports only)", pr]);
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
						if ((p.protocol ?? "TCP") !== "TCP" || p.endPort || ![E.port?.containerPort, E.port?.name, E.gateway?.containerPort, E.gateway?.name].filter((x) => x !== undefined).includes(p.port))
							pr.push(`${where}: port ${p.protocol ?? "TCP"}/${p.port}${p.endPort ? "-" + p.endPort : ""} is neither egressd's proxy port TCP/${E.port?.containerPort} nor its gateway port TCP/${E.gateway?.containerPort}`);
						if (p.port === 53) pr.push(`${where}: DNS (53) is open`);
					}
				}
			}
			if (!nps.some((np) => policyTypes(np).includes("Egress"))) pr.push(`${id(a.obj)}: no NetworkPolicy restricts its egress`);
		}
		out.push(["agent namespace: default-deny, egress only to egressd's pods on its proxy and gateway ports (no DNS, no ipBlock)", pr]);
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
		pr.push(...proxyEnvProblems(agents, want, shown, `localhost,127.0.0.1,${E.svc?.spec.clusterIP}`));
		if (auth) {
			const cred = confScalar(E.conf, "credentials");
			if (!cred) pr.push("the proxy listener identifies by proxy-auth, but egressd.conf names no credentials file");
			else if (!/^Secret\//.test(E.cfg?.sources?.[cred] ?? "")) pr.push(`credentials file ${cred} is not beside egressd.conf from a Secret (from ${E.cfg?.sources?.[cred] ?? "nowhere"})`);
		}
		out.push([`agent containers: HTTPS_PROXY and friends = ${shown} (the Service's fixed clusterIP), NO_PROXY only loopback and the gateway; egressd's credentials from a Secret`, pr]);
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
				const toProxy = ports.length > 0 && ports.every((p) => portIs(p, E.port) || portIs(p, E.gateway));
				const toAdmin = ports.length === 1 && portIs(ports[0], E.admin);
				if (!toProxy && !toAdmin) {
					pr.push(`${where}: ports ${ports.map((p) => `${p.protocol ?? "TCP"}/${p.port}`).join(",") || "all"}: not the proxy and gateway ports, nor the admin port alone`);
					continue;
				}
				if (!(r.from ?? []).length) pr.push(`${where}: no "from": every source`);
				for (const f of r.from ?? []) {
					if (f.ipBlock) { pr.push(`${where}: ipBlock source`); continue; }
					if (!f.namespaceSelector || selectorIsEmpty(f.namespaceSelector)) { pr.push(`${where}: source without a namespaceSelector`); continue; }
					const m = [...nsl].filter(([, l]) => labelsMatch(f.namespaceSelector, l)).map(([n]) => n).sort();
					if (toProxy) {
						if (m.join() !== [...agentNs].sort().join()) pr.push(`${where}: admits namespaces ${m.join(",")}, agents are in ${agentNs.join(",")}`);
						else if (ports.some((p) => portIs(p, E.port))) agentsIn = true;
					} else {
						const bad = m.filter((n) => agentNs.includes(n));
						if (bad.length) pr.push(`${where}: admits agent namespace(s) ${bad.join(",")} to the admin port`);
						else monitoringIn = true;
					}
				}
			}
		}
		if (!agentsIn) pr.push("no ingress rule admits the agents to the proxy port");
		if (E.gateway && !nps.some((np) => (np.spec.ingress ?? []).some((r) => (r.ports ?? []).some((p) => portIs(p, E.gateway)))))
			pr.push("no ingress rule admits the agents to the gateway port");
		if (!monitoringIn) pr.push("no ingress rule admits a monitoring namespace (label-selected) to the admin port");
		pr.push(...proxyEgressRuleProblems(nps, nsl, "egressd"));
		out.push(["egressd namespace: default-deny, ingress from agent namespaces on the proxy and gateway ports only, from the monitoring namespace on the admin port only, egress DNS + public 443", pr]);
	}
	return out;
}

function proxyEnvProblems(agents, want, shown = want, noProxy = "localhost,127.0.0.1") {
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
				if (env[k] !== noProxy) pr.push(`${cn}: ${k}=${env[k]} (want ${noProxy})`);
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
		// git: global config from a ConfigMap (with what it includes):
		// safe.directory, http and https only, and a credential helper
		// only for the URLs its section names, from the same ConfigMap.
		// What git reaches and with which token: gatewayChecks.
		const gc = gitConfigOf(objs, a.ns, s, main);
		pr.push(...gc.problems.map((x) => `${pid}: ${x}`));
		const gval = (section, sub, key) => gc.entries.filter((e) => e.section === section && e.sub === sub && e.key === key).map((e) => e.value);
		if (!gc.problems.length) {
			if (!gval("safe", null, "directory").some((d) => d.startsWith("/workspace"))) pr.push(`${pid}: gitconfig has no safe.directory for the workspace`);
			if (gval("protocol", null, "allow").join() !== "never") pr.push(`${pid}: gitconfig does not set protocol.allow = never (ssh, git://, file://, ext:: stay open)`);
			for (const e of gc.entries.filter((x) => x.section === "credential" && x.key === "helper")) {
				if (!e.sub) pr.push(`${pid}: gitconfig has an unscoped credential helper`);
				else if (!mountedFile(objs, a.ns, s, main, e.value)) pr.push(`${pid}: credential helper ${e.value} is not in a mounted ConfigMap`);
			}
		}
		if (!(s.securityContext?.runAsUser > 0)) pr.push(`${pid}: agent has no non-root runAsUser`);
	}
	return [["agent workload: aider flags, LiteLLM offline cost map, HOME//tmp/workspace volumes, git config (safe.directory, protocols, URL-scoped credential helpers only)", pr]];
}

// ---------------------------------------------------------------- gateway

// The agent's clients of the gateway's LLM routes, by the route's origin: the
// variables that must hold the route's gateway URL, and the one for its key.
// LiteLLM (aider 0.86.2 pins 1.81.10) reads ANTHROPIC_API_BASE, then
// ANTHROPIC_BASE_URL, and OPENAI_BASE_URL, then OPENAI_API_BASE (aider's
// --openai-api-base sets that one); the providers' SDKs read the *_BASE_URL
// names. Both names, one value: neither may point past the gateway. Every
// other route is a git server's, which git reaches through insteadOf.
const LLM_CLIENTS = [
	{ origin: "https://api.anthropic.com", urls: ["ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE"], key: "ANTHROPIC_API_KEY" },
	{ origin: "https://api.openai.com/v1", urls: ["OPENAI_BASE_URL", "OPENAI_API_BASE"], key: "OPENAI_API_KEY" },
];

const imageName = (c) => String(c.image ?? "").split("@")[0].split("/").pop().split(":")[0];
const isEgressd = (c) => c.name === "egressd" && imageName(c) === "egressd";
const isAgentImage = (c) => imageName(c).startsWith("aider");
// The Secrets a volume shows (a secret volume, or a projected one's sources).
const volumeSecrets = (vol) =>
	vol?.secret ? [vol.secret.secretName] : (vol?.projected?.sources ?? []).filter((x) => x.secret).map((x) => x.secret.name);

// Where egressd's container finds each route's secret file: the volume
// mounted on it, and what the pod would show there. One entry a route with
// inject.secret: { route, raw (as written), path, from, text (the rendered
// Secret's value, or a stand-in when the Secret is the operator's), standIn,
// problems }. text is undefined when the pod would have no such file.
function routeSecrets(objs, ns, spec, c, conf, confFile) {
	const out = [];
	for (const r of confRoutes(conf)) {
		const raw = r.inject?.secret;
		if (!raw) continue;
		const p = raw.startsWith("/") ? raw : path.posix.join(path.posix.dirname(confFile), raw);
		const e = { route: r.name, raw, path: p, problems: [] };
		out.push(e);
		const m = (c.volumeMounts ?? [])
			.filter((x) => p === x.mountPath.replace(/\/$/, "") || p.startsWith(x.mountPath.replace(/\/$/, "") + "/"))
			.sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
		const vol = m && (spec.volumes ?? []).find((v) => v.name === m.name);
		if (!vol) { e.problems.push(`route ${r.name}: its secret ${p} is on no volume of container ${c.name}`); continue; }
		const onlySecrets = vol.secret || (vol.projected && (vol.projected.sources ?? []).every((x) => x.secret));
		if (!onlySecrets) e.problems.push(`route ${r.name}: its secret ${p} is on volume ${vol.name}, which is not a Secret's`);
		if (m.subPath) e.problems.push(`route ${r.name}: ${p} is mounted by subPath (${m.subPath}), which Kubernetes never updates: a rotated secret would not reach egressd`);
		if (m.readOnly !== true) e.problems.push(`route ${r.name}: volume ${vol.name} is not mounted read-only`);
		const rel = m.subPath ? m.subPath : p.slice(m.mountPath.replace(/\/$/, "").length + 1);
		const refs = vol.secret ? [{ name: vol.secret.secretName, items: vol.secret.items }] : (vol.projected?.sources ?? []).filter((x) => x.secret).map((x) => ({ name: x.secret.name, items: x.secret.items }));
		const hit = refs.find((s) => !s.items?.length || s.items.some((it) => it.path === rel));
		if (!hit) { e.problems.push(`route ${r.name}: volume ${vol.name} has no item ${rel}`); continue; }
		const item = hit.items?.find((it) => it.path === rel);
		e.from = `Secret/${ns}/${hit.name}`;
		e.secret = hit.name;
		const { files } = volumeFiles(objs, ns, vol);
		if (files[rel] !== undefined) e.text = files[rel];
		else {
			// The operator creates this Secret (it holds the real key): a
			// single visible-ASCII line stands in for it, as egressd wants.
			e.text = `stand-in-for-${hit.name}-${item?.key ?? rel}`.replace(/[^\x21-\x7e]/g, "_");
			e.standIn = true;
		}
	}
	return out;
}

// The gateway an agent pod uses: its egressd container and configuration,
// the address the agent reaches the gateway listener at, its routes.
//   sidecar: the pod's egressd init container, a loopback gateway listener
//   shared:  egressd's Deployment, its Service's clusterIP and the Service
//            port that targets the container's gateway port
function gatewayOf(objs, E, a) {
	const problems = [];
	let ns, spec, c, gw, listener;
	if (E) {
		({ ns } = E);
		spec = E.dep.spec.template.spec;
		c = E.container;
		const cport = (c?.ports ?? []).find((p) => p.name === "gateway");
		const ls = confListeners(E.conf).filter((l) => l.gateway);
		listener = ls.find((l) => l.port === cport?.containerPort);
		const sp = (E.svc?.spec.ports ?? []).find((p) => cport && [cport.name, cport.containerPort].includes(p.targetPort));
		if (!ls.length) problems.push("egressd.conf has no gateway listener (gateway = true)");
		else if (!cport) problems.push("egressd's container has no port named gateway");
		else if (!listener) problems.push(`container port gateway is ${cport.containerPort}, where egressd.conf has no gateway listener (${ls.map((l) => l.port).join(", ")})`);
		else if (!["0.0.0.0", "::"].includes(listener.address)) problems.push(`the gateway listener is on ${listener.address}: the Service reaches the pod address`);
		if (cport && !sp) problems.push("the Service has no port targeting egressd's gateway port");
		if (sp) gw = `${E.svc.spec.clusterIP}:${sp.port}`;
	} else {
		({ ns, spec } = a);
		c = (spec.initContainers ?? []).find(isEgressd);
		if (!c) return { problems: ["no egressd sidecar"] };
		const cfg = egressdConfOf(objs, ns, spec, c);
		const ls = confListeners(cfg.conf).filter((l) => l.gateway);
		listener = ls[0];
		if (!listener) problems.push("the sidecar's egressd.conf has no gateway listener (gateway = true)");
		else if (!isLoopback(listener.address)) problems.push(`the sidecar's gateway listener is on ${listener.address}, not loopback: anything that reaches the pod could spend its keys`);
		else gw = `${listener.address}:${listener.port}`;
	}
	const cfg = c ? egressdConfOf(objs, ns, spec, c) : null;
	const conf = cfg?.conf;
	return {
		ns, spec, container: c, cfg, conf, gw, listener, problems,
		token: (listener?.identify ?? []).includes("token"),
		routes: confRoutes(conf),
		secrets: c && conf ? routeSecrets(objs, ns, spec, c, conf, cfg.file) : [],
	};
}

function gatewayChecks(objs, E) {
	const agents = agentTemplates(objs);
	const gside = [];   // egressd's side: listener, routes, policy
	const gsec = [];    // the route secrets' mounts
	const held = [];    // secrets in agent containers
	const envp = [];    // base URLs, keys, NO_PROXY
	const gitp = [];    // insteadOf, credential helper
	const seen = new Set();
	for (const a of agents) {
		const pid = id(a.obj);
		const G = gatewayOf(objs, E, a);
		const where = E ? `egressd (${id(E.dep)})` : `${pid} egressd sidecar`;
		const first = !seen.has(G.conf);
		seen.add(G.conf);
		if (first) {
			gside.push(...G.problems.map((x) => `${where}: ${x}`));
			// egressd's side, once per configuration.
			const names = new Set(confPolicyRoutes(G.conf));
			for (const want of LLM_CLIENTS)
				if (!G.routes.some((r) => r.origin === want.origin)) gside.push(`${where}: no route to ${want.origin}`);
			if (!G.routes.some((r) => !LLM_CLIENTS.some((w) => w.origin === r.origin))) gside.push(`${where}: no route to a git server`);
			for (const r of G.routes) {
				if (!names.has(r.name)) gside.push(`${where}: route ${r.name} is in no policy's routes`);
				if (!r.inject?.secret) gside.push(`${where}: route ${r.name} injects no credential: the agent would need one of its own`);
				// A git server's route narrows the token: the repository
				// the job clones, pushes to agent/* branches only, no
				// deletes, no tags (issue 13).
				if (LLM_CLIENTS.some((w) => w.origin === r.origin)) continue;
				if (!r.git) gside.push(`${where}: route ${r.name} has no git rules: the token's whole reach is the agent's`);
				else {
					if (!r.git.fetch.length) gside.push(`${where}: route ${r.name}: git rules name no repository to fetch`);
					if (r.git.refs.join() !== "refs/heads/agent/*") gside.push(`${where}: route ${r.name}: a push may change ${r.git.refs.join(", ") || "nothing"}, not refs/heads/agent/* only`);
					if (r.git.delete || r.git.tags) gside.push(`${where}: route ${r.name}: pushes may delete refs or create tags`);
					if (r.git.fetch.concat(r.git.push).some((x) => x.includes("*"))) gside.push(`${where}: route ${r.name}: a repository pattern with '*' reaches more than the job's repository`);
				}
			}
			const hosts = new Set(confRuleHosts(G.conf).map((h) => h.toLowerCase()));
			for (const r of G.routes)
				if (r.host && [...hosts].some((h) => h === r.host || (h.startsWith("*.") && r.host.endsWith(h.slice(1)))))
					gside.push(`${where}: a proxy rule allows ${r.host}, route ${r.name}'s origin: with its own key the agent could reach it around the gateway (k8s/README.md, "Gateway mode")`);
			if (G.token) {
				const cred = confScalar(G.conf, "credentials");
				const text = cred && G.cfg?.files?.[cred];
				if (!text) gside.push(`${where}: the gateway identifies by token, but no credentials file is beside egressd.conf`);
				else if (!/^[ \t]*[^#\s]\S*[ \t]+bearer[ \t]/m.test(text)) gside.push(`${where}: the gateway identifies by token, but the credentials file has no bearer line`);
			}
		}
		// Every pod's own mounts: one configuration may be mounted well in
		// one pod and badly in another.
		for (const s of G.secrets)
			for (const x of s.problems) if (!gsec.includes(`${where}: ${x}`)) gsec.push(`${where}: ${x}`);

		// The Secrets the agent's containers may hold: the phantom token's,
		// and only where the gateway takes a token (shared service).
		const main = (a.spec.containers ?? []).find((c) => c.name === "aider");
		const mainEnv = main ? effectiveEnv(main) : {};
		const credSecrets = new Set(G.secrets.filter((s) => s.secret).map((s) => `${G.ns}/${s.secret}`));
		let phantom = null;
		if (G.token) {
			const k = /^<secret:([^/>]+)\/[^>]+>$/.exec(mainEnv[LLM_CLIENTS[0].key] ?? "");
			if (!k) envp.push(`${pid} container aider: ${LLM_CLIENTS[0].key}=${mainEnv[LLM_CLIENTS[0].key]}: the gateway identifies by token, so it must be the phantom token, from a Secret`);
			else if (credSecrets.has(`${a.ns}/${k[1]}`)) held.push(`${pid}: ${LLM_CLIENTS[0].key} comes from Secret ${k[1]}, which holds a real credential egressd injects`);
			else phantom = k[1];
		}
		const vols = new Map((a.spec.volumes ?? []).map((v) => [v.name, v]));
		for (const { c, where } of containersOf(a.spec)) {
			if (isEgressd(c)) continue;
			const cn = `${pid} ${where === "containers" ? "container" : where.replace(/s$/, "").replace("Container", " container")} ${c.name}`;
			const bad = (what, name) => {
				if (name !== phantom) held.push(`${cn}: ${what} from Secret ${name}${credSecrets.has(`${a.ns}/${name}`) ? " (a credential egressd injects)" : ""}: the agent holds no secret${G.token ? ` but the phantom token (Secret ${phantom})` : ""}`);
			};
			for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) bad(`env ${e.name}`, e.valueFrom.secretKeyRef.name);
			for (const e of c.envFrom ?? []) if (e.secretRef) bad("envFrom", e.secretRef.name);
			for (const m of c.volumeMounts ?? []) for (const name of volumeSecrets(vols.get(m.name))) bad(`volume ${m.name} at ${m.mountPath}`, name);
		}

		// The agent's side of the gateway, in every container of the agent's
		// image (the Job's clone step too).
		if (!G.gw) continue;
		const gwHost = G.gw.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
		for (const { c } of containersOf(a.spec)) {
			if (!isAgentImage(c)) continue;
			const cn = `${pid} container ${c.name}`;
			const env = effectiveEnv(c);
			for (const w of LLM_CLIENTS) {
				const r = G.routes.find((x) => x.origin === w.origin);
				if (!r) continue;
				const url = `http://${G.gw}${r.prefix}`;
				for (const v of w.urls) if (env[v] !== url) envp.push(`${cn}: ${v}=${env[v]} (want ${url}, route ${r.name})`);
				if (c === main) {
					const k = env[w.key];
					if (!k) envp.push(`${cn}: ${w.key} is not set (the SDK sends no request without one)`);
					else if (G.token && k !== mainEnv[LLM_CLIENTS[0].key]) envp.push(`${cn}: ${w.key}=${k}, not the phantom token`);
				}
			}
			for (const v of ["NO_PROXY", "no_proxy"])
				if (!(env[v] ?? "").split(",").includes(gwHost)) envp.push(`${cn}: ${v}=${env[v]} does not hold the gateway's ${gwHost}: its clients would ask the proxy for it`);
			// git: insteadOf to the gateway for every git route; with a
			// phantom token, a helper for the gateway's git URLs that hands
			// it out.
			const gc = gitConfigOf(objs, a.ns, a.spec, c);
			gitp.push(...gc.problems.map((x) => `${cn}: ${x}`));
			const get = (section, sub, key) => gc.entries.filter((e) => e.section === section && e.sub === sub && e.key === key).map((e) => e.value);
			for (const r of G.routes.filter((x) => !LLM_CLIENTS.some((w) => w.origin === x.origin))) {
				const to = `http://${G.gw}${r.prefix}/`;
				const from = `${r.origin.replace(/\/$/, "")}/`;
				const targets = gc.entries.filter((e) => e.section === "url" && e.key === "insteadof" && e.value === from).map((e) => e.sub);
				if (targets.join() !== to) gitp.push(`${cn}: git rewrites ${from} to ${targets.join(", ") || "nothing"}, not to the gateway's ${to} (url."${to}".insteadOf = ${from})`);
				if (G.token) {
					const helpers = gc.entries.filter((e) => e.section === "credential" && e.key === "helper" && e.sub && (to.startsWith(e.sub.replace(/\/?$/, "/")) || e.sub.startsWith(to)));
					if (!helpers.length) gitp.push(`${cn}: no credential helper for ${to}: git cannot answer the gateway's 401 with the phantom token`);
					for (const h of helpers) {
						const hf = mountedFile(objs, a.ns, a.spec, c, h.value);
						if (!hf) { gitp.push(`${cn}: credential helper ${h.value} is not a mounted file`); continue; }
						const vars = [...hf.text.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)].map((x) => x[1]);
						if (!vars.some((v) => phantom && (env[v] ?? "").startsWith(`<secret:${phantom}/`)))
							gitp.push(`${cn}: credential helper ${h.value} reads none of the container's variables from the phantom token's Secret ${phantom} (${[...new Set(vars)].join(", ")})`);
					}
				}
			}
			for (const e of gc.entries.filter((x) => x.section === "credential" && x.key === "helper" && x.sub && !x.sub.startsWith(`http://${G.gw}/`)))
				gitp.push(`${cn}: a credential helper for ${e.sub}: the agent's git hands a token to egressd's gateway only`);
			if (get("protocol", null, "allow").includes("never") && !get("protocol", "http", "allow").includes("always"))
				gitp.push(`${cn}: protocol.allow is never and protocol.http.allow is not always: git would refuse the gateway's http:// URLs`);
		}
	}
	return [
		["gateway: a gateway listener the agent reaches, routes to api.anthropic.com, api.openai.com and a git server, each in a policy and injecting a credential, the git route's rules (the job's repository, pushes to refs/heads/agent/* only), no proxy rule to a route's origin, a bearer line for the phantom token (shared service)", gside],
		["gateway: egressd's container mounts every route's secret from a Secret volume, whole (no subPath) and read-only", gsec],
		["the agent holds no secret of value: no container of the agent's pods but egressd (init containers included) has a Secret env variable, envFrom or volume, but the phantom token's (shared service)", held],
		["agent containers: ANTHROPIC_BASE_URL, ANTHROPIC_API_BASE, OPENAI_BASE_URL, OPENAI_API_BASE name the gateway's routes; the API key variables a placeholder (sidecar) or the phantom token (shared service); NO_PROXY holds the gateway's address", envp],
		["agent's git: url.<gateway>/git/.insteadOf = the git server, http allowed; a credential helper for the gateway's git URLs that hands out the phantom token (shared service), none for anything else", gitp],
	];
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

// egressd's files as its container sees them, laid out under DIR: the
// config volume in DIR (egressd.conf and what lies beside it), and each
// route's secret file under DIR/.secrets/ at its absolute path in the pod,
// with egressd.conf's secret paths rewritten to there. A secret whose
// Secret is rendered gets its value; one the operator creates (the real
// keys are never in the repository) a stand-in; one the pod would not have
// (no volume of egressd's holds it) nothing, so egressd -t fails as egressd
// would in the pod. Returns the path of the config file.
function materializeEgressd(cfg, secrets, dir) {
	let conf = cfg.files[cfg.base];
	for (const s of secrets) {
		if (s.text === undefined) continue;
		const to = path.join(dir, ".secrets", s.path);
		fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o755 });
		fs.writeFileSync(to, `${s.text}\n`, { mode: 0o644 });
		conf = conf.split(`"${s.raw}"`).join(JSON.stringify(to));
	}
	materialize({ ...cfg.files, [cfg.base]: conf }, dir);
	return path.join(dir, cfg.base);
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
			const secrets = cfg.conf === undefined ? [] : routeSecrets(objs, p.ns, p.spec, c, cfg.conf, cfg.file);
			const cm = cfg.sources[cfg.base];
			const extra = Object.keys(cfg.files).filter((f) => f !== cfg.base).map((f) => `${f} from ${cfg.sources[f]}`);
			const stand = [...new Set(secrets.filter((x) => x.standIn).map((x) => x.from))];
			const key = JSON.stringify([cfg.files, cfg.missing, secrets.map((x) => [x.path, x.text])]);
			if (!runs.has(key))
				runs.set(key, {
					label: `egressd.conf of ${cm ?? `${id(p.obj)} (none mounted)`}${extra.length ? ` with ${extra.join(", ")} beside it` : ""}` +
						`${stand.length ? `, stand-ins for ${stand.join(", ")} (the operator's) at their mount paths` : ""}`,
					cfg, secrets,
				});
		}
	const mounted = new Set([...runs.values()].map((r) => r.cfg.sources[r.cfg.base]));
	for (const cm of objs.filter((o) => o.kind === "ConfigMap" && o.data?.["egressd.conf"] !== undefined && !mounted.has(id(o))))
		runs.set(id(cm), { label: `egressd.conf of ${id(cm)}`, cfg: { files: { "egressd.conf": cm.data["egressd.conf"] }, base: "egressd.conf", missing: [] }, secrets: [] });
	for (const { label: what, cfg, secrets } of runs.values()) {
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
			const file = materializeEgressd(cfg, secrets, dir);
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
	if (agents.length) for (const [n, p] of gatewayChecks(objs, E)) r(`${name}: ${n}`, p);
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
		// Gateway mode: the agent holds nothing of value, and reaches the
		// APIs and git through the gateway.
		["the LLM keys back in an agent container as envFrom (aider-llm, before gateway mode) are caught", lockFile, (o) => {
			pick(o, "Job", "aider").spec.template.spec.containers.find((c) => c.name === "aider").envFrom = [{ secretRef: { name: "aider-llm" } }];
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a git token Secret volume mounted into the clone step is caught", sharedFile, (o) => {
			const s = pick(o, "Job", "aider").spec.template.spec;
			s.volumes.push({ name: "git-token", secret: { secretName: "aider-git-token" } });
			s.initContainers.find((c) => c.name === "clone").volumeMounts.push({ name: "git-token", mountPath: "/var/run/secrets/aider/git", readOnly: true });
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["an agent variable from egressd's own LLM Secret is caught", sharedFile, (o) => {
			pick(o, "Deployment", "aider-workspace").spec.template.spec.containers[0].env.push({ name: "LLM_KEY", valueFrom: { secretKeyRef: { name: "egressd-llm", key: "anthropic" } } });
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["the sidecar's LLM keys mounted into the agent container too are caught", lockFile, (o) => {
			const s = pick(o, "Deployment", "aider-workspace").spec.template.spec;
			s.containers[0].volumeMounts.push({ name: s.volumes.find((v) => v.secret?.secretName === "egressd-llm").name, mountPath: "/keys", readOnly: true });
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["egressd's sidecar without the LLM keys' mount is caught", lockFile, (o) => {
			const e = pick(o, "Job", "aider").spec.template.spec.initContainers.find((c) => c.name === "egressd");
			e.volumeMounts = e.volumeMounts.filter((m) => !m.mountPath.endsWith("/llm"));
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a route secret mounted by subPath (never rotated) is caught", sharedFile, (o) => {
			const c = pick(o, "Deployment", "egressd").spec.template.spec.containers[0];
			const m = c.volumeMounts.find((x) => x.mountPath.endsWith("/git"));
			m.mountPath += "/token";
			m.subPath = "token";
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["an ANTHROPIC_BASE_URL past the gateway is caught", lockFile, (o) => {
			pick(o, "Deployment", "aider-workspace").spec.template.spec.containers[0].env.find((e) => e.name === "ANTHROPIC_BASE_URL").value = "https://api.anthropic.com";
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["an ANTHROPIC_API_BASE left out (LiteLLM reads it first) is caught", sharedFile, (o) => {
			const c = pick(o, "Job", "aider").spec.template.spec.containers[0];
			c.env = c.env.filter((e) => e.name !== "ANTHROPIC_API_BASE");
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["an API key variable that is not the phantom token (shared service) is caught", sharedFile, (o) => {
			pick(o, "Deployment", "aider-workspace").spec.template.spec.containers[0].env.find((e) => e.name === "OPENAI_API_KEY").value = "sk-placeholder";
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["NO_PROXY without the gateway's address (shared service) is caught", sharedFile, (o) => {
			for (const e of pick(o, "Deployment", "aider-workspace").spec.template.spec.containers[0].env) if (e.name === "NO_PROXY") e.value = "localhost,127.0.0.1";
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a gitconfig without the insteadOf is caught", sharedFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.gitconfig);
			cm.data.gitconfig = cm.data.gitconfig.replace(/insteadOf = .*/, "");
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a gitconfig insteadOf to another address than egressd's Service is caught", sharedFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.gitconfig);
			cm.data.gitconfig = cm.data.gitconfig.replace('[url "http://10.96.31.28:3129/', '[url "http://10.96.31.29:3129/');
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a phantom-token credential helper for the real git server is caught", sharedFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.gitconfig);
			cm.data.gitconfig = cm.data.gitconfig.replace('[credential "http://10.96.31.28:3129/git/"]', '[credential "https://git.corp.example/"]');
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a gitconfig that refuses http:// (the gateway's scheme) is caught", lockFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["gitconfig-common"]);
			cm.data["gitconfig-common"] = cm.data["gitconfig-common"].replace('[protocol "http"]\n', '[protocol "ftp"]\n');
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a CONNECT rule to an LLM API put back is caught", sharedFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["egressd.conf"]);
			cm.data["egressd.conf"] = cm.data["egressd.conf"].replace("rules = ( );", 'rules = ( { name = "llm-apis"; hosts = [ "api.anthropic.com" ]; ports = [ 443 ]; } );');
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a route left out of the policy is caught", lockFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["egressd.conf"]);
			cm.data["egressd.conf"] = cm.data["egressd.conf"].replace('routes = [ "anthropic", "openai", "git" ];', 'routes = [ "anthropic", "git" ];');
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a sidecar gateway listener on the pod address is caught", lockFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["egressd.conf"]);
			cm.data["egressd.conf"] = cm.data["egressd.conf"].replace('address = "127.0.0.1"; port = 3129;', 'address = "0.0.0.0"; port = 3129;');
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a credentials file without a bearer line (the phantom token's) is caught", sharedFile, (o) => {
			const sec = o.find((x) => x.kind === "Secret" && x.data?.credentials);
			const text = Buffer.from(sec.data.credentials, "base64").toString("utf8").replace(/^aider bearer .*\n/m, "");
			sec.data.credentials = Buffer.from(text).toString("base64");
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["a git route without git rules is caught", sharedFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["egressd.conf"]);
			cm.data["egressd.conf"] = cm.data["egressd.conf"].replace(/git = \{[^}]*\};/, "");
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["git rules that let a push change main are caught", lockFile, (o) => {
			const cm = o.find((x) => x.kind === "ConfigMap" && x.data?.["egressd.conf"]);
			cm.data["egressd.conf"] = cm.data["egressd.conf"].replace('"refs/heads/agent/*"', '"refs/heads/*"');
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["the Service without its gateway port is caught", sharedFile, (o) => {
			const svc = pick(o, "Service", "egressd");
			svc.spec.ports = svc.spec.ports.filter((p) => p.name !== "gateway");
		}, (o) => gatewayChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
		["the agents' NetworkPolicy without the gateway port is caught", sharedFile, (o) => {
			const np = pick(o, "NetworkPolicy", "egressd-ingress-from-agents");
			np.spec.ingress[0].ports = np.spec.ingress[0].ports.filter((p) => p.port !== 3129);
		}, (o) => sharedServiceChecks(o, findEgressd(o)).flatMap(([, p]) => p)],
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
		cases.push(["a route secret no volume of egressd's sidecar holds is refused by egressd -t (no stand-in where the pod has no file)", lockFile, (o) => {
			const e = pick(o, "Job", "aider").spec.template.spec.initContainers.find((c) => c.name === "egressd");
			e.volumeMounts = e.volumeMounts.filter((m) => !m.mountPath.endsWith("/git"));
		}, (o) => configChecks(o, "self-test").flatMap(([, p]) => p)]);
		cases.push(["a route secret the Secret volume has no item for is refused by egressd -t", sharedFile, (o) => {
			const v = pick(o, "Deployment", "egressd").spec.template.spec.volumes.find((x) => x.secret?.secretName === "egressd-llm");
			v.secret.items = v.secret.items.filter((it) => it.path !== "openai");
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
	// written into DIR, with stand-ins for the route secrets under
	// DIR/.secrets (materializeEgressd); prints the config file's path. For
	// service-test.sh.
	const objs = loadRendered(args[1]).objs;
	const E = findEgressd(objs);
	if (!E?.cfg?.conf || E.cfg.missing.length) {
		console.error(`materialize: no complete egressd config volume in ${args[1]} ${E?.cfg?.missing?.join(" ") ?? ""}`);
		process.exit(1);
	}
	const secrets = routeSecrets(objs, E.ns, E.dep.spec.template.spec, E.container, E.conf, E.cfg.file);
	const bad = secrets.filter((x) => x.text === undefined);
	if (bad.length) {
		console.error(`materialize: ${bad.flatMap((x) => x.problems).join("; ")}`);
		process.exit(1);
	}
	console.log(materializeEgressd(E.cfg, secrets, args[2]));
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
