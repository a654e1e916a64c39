#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Validates deploy/kubernetes/ offline, and the Containerfile's binary without a container
# engine:
#   - kustomization.yaml renders (`kubectl kustomize`, Debian's kubectl, extracted): the
#     Namespace first, every manifest of the folder in it;
#   - the built-in kinds against the Kubernetes schemas, strict (unknown fields rejected), for
#     the oldest and newest Kubernetes versions we claim (PyPI kubernetes-validate);
#   - ServiceMonitor and PrometheusRule against their CRDs' schemas (npm
#     @kubernetes-models/prometheus-operator, which compiles them);
#   - the PrometheusRule's expressions with promtool (from Debian's prometheus package,
#     extracted, not installed); its alerts' unit tests run over a real daemon's scrape in
#     tests/e2e_metrics.rs (deploy/kubernetes/tests/alerts.test.yaml is their template);
#   - the pieces agree: image tag = Cargo.toml's version, the --metrics port = the container
#     port = the Service's = the NetworkPolicy's, selectors match the pod labels, JSON events
#     on stdout and no --verbose, the preStop hook (stop, stalld restore, throttlectl on)
#     within the grace period, the pod's own pid file (not the host unit's), --stand_aside
#     with the readiness probe on /ready and the liveness probe on /healthz (which fails when
#     the loop stops checking, not only when the listener stops answering), the image's
#     stalld-guardian hard link;
#   - broken copies of the manifests are rejected by each validator (the checks can fail);
#   - `make static`, the Containerfile's build step, gives a static binary with the version.
# Tools are cached in .cache/manifests. Prints one "manifests: <check> PASS|FAIL" line per
# check; exits 0 only if all passed.
#   tests/manifests.sh [--no-build]
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
DIR=deploy/kubernetes
CACHE=${MANIFESTS_CACHE:-$ROOT/.cache/manifests}
KUBERNETES_VALIDATE=kubernetes-validate==1.37.0
MODELS=@kubernetes-models/prometheus-operator@6.0.0
# OpenShift 4.16 is Kubernetes 1.29; the newest schemas the validator has.
KUBERNETES_VERSIONS=(1.29.0 1.37.0)
BUILT_IN=("$DIR"/namespace.yaml "$DIR"/rbac.yaml "$DIR"/daemonset.yaml "$DIR"/service.yaml "$DIR"/networkpolicy.yaml)
CUSTOM=("$DIR"/servicemonitor.yaml "$DIR"/prometheusrule.yaml)
BUILD=1
[ "${1:-}" = --no-build ] && BUILD=0
CHECK_TAG=manifests
# shellcheck source=tests/lib/checks.sh
. "$ROOT/tests/lib/checks.sh"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------ tools
mkdir -p "$CACHE"
if ! "$CACHE/venv/bin/pip" show -q "${KUBERNETES_VALIDATE%%=*}" 2>/dev/null |
	grep -q "^Version: ${KUBERNETES_VALIDATE##*=}$"; then
	rm -rf "$CACHE/venv"
	python3 -m venv "$CACHE/venv" || die "python3 -m venv failed"
	"$CACHE/venv/bin/pip" install -q "$KUBERNETES_VALIDATE" >"$WORK/pip.log" 2>&1 ||
		{ cat "$WORK/pip.log" >&2; die "pip install $KUBERNETES_VALIDATE failed"; }
fi
MODELS_DIR=$CACHE/npm/node_modules/${MODELS%@*}
if [ ! -f "$CACHE/npm/.installed-${MODELS##*@}" ]; then
	if ! command -v npm >/dev/null; then
		apt-get update -qq >/dev/null 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null ||
			die "npm is needed for $MODELS and apt-get install npm failed"
	fi
	npm install --silent --no-audit --no-fund --prefix "$CACHE/npm" "$MODELS" >"$WORK/npm.log" 2>&1 ||
		{ cat "$WORK/npm.log" >&2; die "npm install $MODELS failed"; }
	touch "$CACHE/npm/.installed-${MODELS##*@}"
fi
PROMTOOL=$CACHE/usr/bin/promtool
if [ ! -x "$PROMTOOL" ]; then
	(cd "$CACHE" && apt-get download -q prometheus >"$WORK/apt.log" 2>&1) ||
		{ apt-get update -qq >/dev/null 2>&1; (cd "$CACHE" && apt-get download -q prometheus >"$WORK/apt.log" 2>&1); } ||
		{ cat "$WORK/apt.log" >&2; die "apt-get download prometheus failed"; }
	dpkg-deb --fsys-tarfile "$CACHE"/prometheus_*.deb | tar -x -C "$CACHE" ./usr/bin/promtool ||
		die "extracting promtool failed"
	rm -f "$CACHE"/prometheus_*.deb
fi
PY=$CACHE/venv/bin/python
# kubectl for `kubectl kustomize` (renders locally, talks to no cluster), from Debian's
# kubernetes-client, extracted, not installed.
KUBECTL=$CACHE/usr/bin/kubectl
if [ ! -x "$KUBECTL" ]; then
	(cd "$CACHE" && apt-get download -q kubernetes-client >"$WORK/apt.log" 2>&1) ||
		{ apt-get -o DPkg::Lock::Timeout=900 update -qq >/dev/null 2>&1; (cd "$CACHE" && apt-get download -q kubernetes-client >"$WORK/apt.log" 2>&1); } ||
		{ cat "$WORK/apt.log" >&2; die "apt-get download kubernetes-client failed"; }
	dpkg-deb --fsys-tarfile "$CACHE"/kubernetes-client_*.deb | tar -x -C "$CACHE" ./usr/bin/kubectl ||
		die "extracting kubectl failed"
	rm -f "$CACHE"/kubernetes-client_*.deb
fi

# yaml2json FILE OUT: every document of FILE as one JSON array (PyYAML comes with the validator).
yaml2json() {
	"$PY" -c 'import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), open(sys.argv[2], "w"))' "$1" "$2"
}

# builtin_check FILE...: kubernetes-validate --strict for each Kubernetes version; prints why.
builtin_check() {
	local version out
	for version in "${KUBERNETES_VERSIONS[@]}"; do
		out=$("$CACHE/venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$@" 2>&1) ||
			{ echo "Kubernetes $version: $(tr '\n' ' ' <<<"$out")"; return; }
	done
}

# crd_check FILE...: the CRD schema check; prints why.
crd_check() {
	local file jsons=() out
	for file in "$@"; do
		yaml2json "$file" "$WORK/$(basename "$file").json" || { echo "$file is not YAML"; return; }
		jsons+=("$WORK/$(basename "$file").json")
	done
	out=$(MODELS_DIR=$MODELS_DIR node tests/manifests/validate-crs.mjs "${jsons[@]}" 2>&1) ||
		grep -v '^PASS' <<<"$out" | tr '\n' ' '

}

# rules_check PROMETHEUSRULE: promtool check of its groups; prints why.
rules_check() {
	local out
	"$PY" -c 'import sys, yaml
rule = yaml.safe_load(open(sys.argv[1]))
yaml.safe_dump({"groups": rule["spec"]["groups"]}, open(sys.argv[2], "w"))' "$1" "$WORK/stalld.rules.yaml" ||
		{ echo "no spec.groups in $1"; return; }
	out=$("$PROMTOOL" check rules "$WORK/stalld.rules.yaml" 2>&1) || echo "promtool check rules: $(tr '\n' ' ' <<<"$out")"
}

# kustomize_check DIR: renders DIR's kustomization; prints why not, or nothing.
kustomize_check() {
	local out
	out=$("$KUBECTL" kustomize "$1" 2>&1 >"$WORK/rendered.yaml") || { echo "kubectl kustomize: $(tr '\n' ' ' <<<"$out")"; return; }
	"$PY" - "$1" "$WORK/rendered.yaml" <<'EOF'
import os, sys, yaml
folder, rendered = sys.argv[1], sys.argv[2]
kustomization = yaml.safe_load(open(f"{folder}/kustomization.yaml"))
listed = kustomization.get("resources", [])
manifests = sorted(f for f in os.listdir(folder) if f.endswith(".yaml") and f != "kustomization.yaml")
problems = [f"{m} is not in kustomization.yaml" for m in manifests if m not in listed]
problems += [f"kustomization.yaml lists {r}, which is not there" for r in listed if r not in manifests]
objects = [d for d in yaml.safe_load_all(open(rendered)) if d]
if not objects or objects[0]["kind"] != "Namespace":
    problems.append(f"the first object applied is {objects[0]['kind'] if objects else 'nothing'}, not the Namespace")
if listed and listed[0] != "namespace.yaml":
    problems.append("namespace.yaml is not the first resource")
if len(objects) != sum(len([d for d in yaml.safe_load_all(open(f"{folder}/{m}")) if d]) for m in manifests):
    problems.append(f"it renders {len(objects)} objects, the manifests hold a different number")
print("; ".join(problems))
EOF
}

# ------------------------------------------------------------------ the manifests
check "kustomization.yaml renders (kubectl kustomize), Namespace first, every manifest in it" "$(kustomize_check "$DIR")"
check "built-in kinds (kubernetes-validate --strict ${KUBERNETES_VERSIONS[*]})" "$(builtin_check "${BUILT_IN[@]}")"
check "ServiceMonitor, PrometheusRule (CRD schemas)" "$(crd_check "${CUSTOM[@]}")"
check "PrometheusRule expressions (promtool)" "$(rules_check "$DIR/prometheusrule.yaml")"

# The pieces agree with each other and with the code.
# agree_check: the cross-references of the manifests in ${DAEMONSET_DIR:-$DIR}; prints why not.
agree_check() {
	"$PY" - "${DAEMONSET_DIR:-$DIR}" "$(make --no-print-directory -s version)" <<'EOF'
import sys, yaml
folder, version = sys.argv[1], sys.argv[2]
docs = {}
for name in ("daemonset", "service", "servicemonitor", "namespace", "rbac", "networkpolicy"):
    for doc in yaml.safe_load_all(open(f"{folder}/{name}.yaml")):
        docs[doc["kind"]] = doc
ds, svc, sm = docs["DaemonSet"], docs["Service"], docs["ServiceMonitor"]
pod = ds["spec"]["template"]
container = pod["spec"]["containers"][0]
problems = []
if container["image"].rsplit(":", 1)[-1] != version:
    problems.append(f"image {container['image']} is not tagged {version} (Cargo.toml)")
metrics = [a.split("=", 1)[1] for a in container.get("args", []) if a.startswith("--metrics=")]
port = {p["name"]: p["containerPort"] for p in container.get("ports", [])}.get("metrics")
if not metrics or not metrics[0].endswith(f":{port}"):
    problems.append(f"--metrics {metrics} does not listen on the container's metrics port {port}")
svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
if "metrics" not in svc_ports or svc_ports["metrics"]["port"] != port:
    problems.append("the Service has no metrics port equal to the container's")
labels = pod["metadata"]["labels"]
for what, selector in (("DaemonSet", ds["spec"]["selector"]["matchLabels"]), ("Service", svc["spec"]["selector"])):
    if any(labels.get(k) != v for k, v in selector.items()):
        problems.append(f"the {what} selector {selector} does not match the pod labels {labels}")
if any(svc["metadata"]["labels"].get(k) != v for k, v in sm["spec"]["selector"]["matchLabels"].items()):
    problems.append("the ServiceMonitor does not select the Service")
if [e["port"] for e in sm["spec"]["endpoints"]] != ["metrics"]:
    problems.append("the ServiceMonitor does not scrape the Service's metrics port")
spec = pod["spec"]
if not (spec.get("hostPID") and container["securityContext"].get("privileged")):
    problems.append("the pod must be privileged with hostPID")
mounts = {m["mountPath"] for m in container["volumeMounts"]}
for needed in ("/sys/kernel/btf", "/run/stalld"):
    if needed not in mounts:
        problems.append(f"{needed} is not mounted")
if not spec.get("nodeSelector") or not spec.get("tolerations"):
    problems.append("no nodeSelector or tolerations for the RT nodes")
if "cpu" in container.get("resources", {}).get("limits", {}):
    problems.append("a CPU limit would let CFS throttle stalld")
for image in yaml.safe_load(open(f"{folder}/kustomization.yaml")).get("images", []):
    if image.get("newTag") != version:
        problems.append(f"kustomization.yaml tags the image {image.get('newTag')}, not {version} (Cargo.toml)")
args = container.get("args", [])
if "--events=-" not in args:
    problems.append("the events are not JSON lines on stdout (--events=-)")
if any(a in ("--verbose", "-v") for a in args):
    problems.append("--verbose would add per-check chatter to the logs")
hook = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
script = hook[-1] if hook else ""
pidfiles = [a.split("=", 1)[1] for a in args if a.startswith("--pidfile=")]
pidfile = pidfiles[0] if pidfiles else None
for needed in ("/usr/bin/stalld restore", "/usr/bin/throttlectl on", "kill -TERM", f"pidfile={pidfile}"):
    if needed not in script:
        problems.append(f"the preStop hook does not run '{needed}'")
if pidfile is None:
    problems.append("stalld is told no --pidfile=, which the preStop hook reads")
# The host unit's (ours and the C stalld's) and the C stalld's older default: a pod writing
# one would be refused by the host's lock, or take the host's place in it.
if pidfile in ("/run/stalld/stalld.pid", "/run/stalld.pid"):
    problems.append(f"the pod's pid file {pidfile} is the host unit's")
# Beside the host's stalld the pod stands aside and says so through its readiness.
if "--stand_aside" not in args:
    problems.append("no --stand_aside: beside the host's stalld the pod would exit 16 and restart in a loop")
ready = container.get("readinessProbe", {}).get("httpGet", {})
if ready.get("path") != "/ready" or ready.get("port") != "metrics":
    problems.append(f"the readiness probe is not GET /ready on the metrics port: {ready}")
live = container.get("livenessProbe", {}).get("httpGet", {})
if live.get("path") != "/healthz" or live.get("port") != "metrics":
    problems.append(f"the liveness probe is not GET /healthz on the metrics port (/metrics answers while the loop is stuck): {live}")
if spec.get("terminationGracePeriodSeconds", 30) < 25:
    problems.append("terminationGracePeriodSeconds leaves the preStop hook (20 s + restore) no time")
netpol = docs["NetworkPolicy"]
if any(labels.get(k) != v for k, v in netpol["spec"]["podSelector"]["matchLabels"].items()):
    problems.append("the NetworkPolicy does not select the pods")
allowed = [p["port"] for rule in netpol["spec"].get("ingress", []) for p in rule.get("ports", [])]
if allowed != ["metrics"] or not all(rule.get("from") for rule in netpol["spec"]["ingress"]):
    problems.append(f"the NetworkPolicy must open the metrics port (only) to named peers only, opens {allowed}")
if netpol["spec"].get("policyTypes") != ["Ingress"]:
    problems.append("the NetworkPolicy does not restrict ingress")
namespaces = {d["metadata"].get("namespace") for d in docs.values() if d["kind"] != "Namespace"}
if namespaces != {docs["Namespace"]["metadata"]["name"]}:
    problems.append(f"the objects are in namespaces {namespaces}")
print("; ".join(problems))
EOF
}
check "manifests agree (image tag, ports, selectors, privileges, mounts, pid file, probes)" "$(agree_check)"

# ------------------------------------------------------------------ the checks can fail
sed -e 's/hostPID: true/hostPID: "yes"/' -e 's/readOnlyRootFilesystem: true/readOnlyRootFileSystem: true/' \
	"$DIR/daemonset.yaml" >"$WORK/daemonset.yaml"
why=$(builtin_check "$WORK/daemonset.yaml")
check "a broken DaemonSet is rejected" "$([ -n "$why" ] || echo "kubernetes-validate accepted hostPID: \"yes\" and a misspelt field")"
mkdir -p "$WORK/kustomize"
cp "$DIR"/*.yaml "$WORK/kustomize/"
sed -i -e '/- networkpolicy.yaml/d' "$WORK/kustomize/kustomization.yaml"
why=$(kustomize_check "$WORK/kustomize")
check "a kustomization missing a manifest is rejected" "$([ -n "$why" ] || echo "accepted a kustomization without networkpolicy.yaml")"
sed -e 's#--pidfile=/run/stalld/pod.pid#--pidfile=/run/stalld/stalld.pid#' -e 's#pidfile=/run/stalld/pod.pid#pidfile=/run/stalld/stalld.pid#' \
	-e '/- --stand_aside/d' "$DIR/daemonset.yaml" >"$WORK/kustomize/daemonset.yaml"
why=$(DAEMONSET_DIR="$WORK/kustomize" agree_check)
check "a DaemonSet on the host unit's pid file, without --stand_aside, is rejected" "$(grep -q "is the host unit's" <<<"$why" && grep -q 'no --stand_aside' <<<"$why" || echo "accepted it: '$why'")"
sed -e 's#path: /healthz#path: /metrics#' "$DIR/daemonset.yaml" >"$WORK/kustomize/daemonset.yaml"
why=$(DAEMONSET_DIR="$WORK/kustomize" agree_check)
check "a DaemonSet whose liveness probe is /metrics is rejected" "$(grep -q 'liveness probe is not GET /healthz' <<<"$why" || echo "accepted it: '$why'")"
sed -e 's/interval: 30s/interval: fast/' "$DIR/servicemonitor.yaml" >"$WORK/servicemonitor.yaml"
why=$(crd_check "$WORK/servicemonitor.yaml")
check "a broken ServiceMonitor is rejected" "$([ -n "$why" ] || echo "the CRD schema accepted interval: fast")"
sed -e 's/> 0$/> > 0/' "$DIR/prometheusrule.yaml" >"$WORK/prometheusrule.yaml"
why=$(rules_check "$WORK/prometheusrule.yaml")
check "a broken PrometheusRule is rejected" "$([ -n "$why" ] || echo "promtool accepted a broken expression")"

# ------------------------------------------------------------------ the image's binary
# The Containerfile builds with `make static` for the platform it runs on and copies from
# `make static-dir`'s path; no engine runs here, so the same build runs directly.
binary=$(make --no-print-directory -s static-dir)/stalld
why=""
grep -q "make static STATIC_BINS=stalld" Containerfile && grep -q 'make -s static-dir' Containerfile ||
	why="the Containerfile no longer builds with make static / copies from make static-dir; "
# The final stage (after the last FROM) makes the guardian's hard link.
sed -n '/^FROM /h; /^FROM /!H; ${x; p}' Containerfile | grep -qE '^RUN ln /usr/bin/stalld /usr/bin/stalld-guardian' ||
	why="${why}the image's last stage does not hard-link /usr/bin/stalld-guardian; "
if [ "$BUILD" = 1 ]; then
	{ scripts/install-deps --static && make --no-print-directory static STATIC_BINS=stalld; } >"$WORK/static.log" 2>&1 ||
		why="${why}make static failed: $(tail -n 5 "$WORK/static.log" | tr '\n' ' ')"
fi
if [ ! -x "$binary" ]; then
	why="${why}no $binary"
elif readelf -l "$binary" | grep -q 'program interpreter' || readelf -d "$binary" | grep -q NEEDED; then
	why="${why}$binary is not static"
elif [ "$("$binary" --version)" != "$(make --no-print-directory -s version)" ]; then
	why="${why}$binary --version says $("$binary" --version)"
fi
check "the image's binary (make static: static, right version)" "$why"

exit "$FAILED"
