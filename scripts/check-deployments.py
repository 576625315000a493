#!/usr/bin/env python3
"""Checks deployments/ beyond YAML syntax; scripts/check-deployments runs it (in .venv-tools,
with kubernetes-validate and PyYAML) after yamllint and before `nginx -t`.

1. Every Kubernetes object validates against the Kubernetes JSON schemas in strict mode
   (unknown fields are errors), for the oldest and the newest Kubernetes version we
   support. A kind without a schema is an error, except the CRDs listed in CRD_CHECKS,
   which get a check of their own.
2. Kustomizations: every listed resource and patch exists, every patch targets an object
   of its bases, and no YAML file lies around unlisted (a forgotten resource). With
   kubectl on PATH each kustomization is also rendered (`kubectl kustomize`) and the
   output is validated as in 1; without it the structural check is all (said so).
3. The manifests agree with the binary and with each other: the ConfigMap and the Secret
   template name every variable of src/config/table.rs exactly once, with the binary's default;
   each rendered ConfigMap passes `chatbox --check-config` when a built binary is at hand
   (CHATBOX_BIN, or cargo's target/debug or target/release); the grace period covers the
   drain; probes, ports and DATA_DIR match the settings; the pod's security settings;
   proxies' timeouts exceed WS_PING_PERIOD.

Exit status 1 with one line per problem. Usage: scripts/check-deployments.py [REPO_ROOT]
"""

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

# The oldest Kubernetes the manifests support (K3s and distributions still in support)
# and the newest one kubernetes-validate knows.
KUBE_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
DEPLOY = ROOT / "deployments"

# Files deliberately outside every kustomization, with why.
STANDALONE = {
    "kubernetes/secret.template.yaml": "a template; never applied by kustomize",
    "k3s/traefik-config.yaml": "configures the cluster's Traefik in kube-system",
}

# ConfigMap values that differ from the binary's defaults on purpose (configmap.yaml says
# why for each).
DEFAULT_OVERRIDES = {
    "DATA_DIR": "/data",
    "METRICS_PORT": "9090",
    "LLM_PROVIDER_1_ID": "echo",
    "LLM_PROVIDER_1_NAME": "Echo (offline)",
    "LLM_PROVIDER_1_TYPE": "echo",
}
# Not secret to the binary, but kept beside its partner in the Secret by convention.
SECRET_BY_CHOICE = {"S3_ACCESS_KEY_ID"}
# SHUTDOWN_TIMEOUT counts from SIGTERM and includes the drain delay; after it the lanes
# get at least 2 s (FLUSH_FLOOR in src/server.rs) for queued store writes. Requiring
# delay + timeout + 5 s covers that flush with room to spare, however the two are read.
GRACE_MARGIN_S = 5
# chatbox closes idle HTTP keep-alive connections after this (src/server.rs): proxies
# must drop their idle upstream connections sooner.
CHATBOX_KEEPALIVE_S = 75
RUNTIME_UID = 65532

problems = {}  # as a dict: ordered, and a file that two kustomizations share reports once


def problem(where, message):
    problems[f"{where}: {message}"] = None


def rel(path):
    return str(Path(path).resolve().relative_to(ROOT))


# --- values -----------------------------------------------------------------------------

UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text):
    """A Go/chatbox duration like 54s, 1h30m, 100ms (nginx's 180s too) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * UNITS_S[u] for n, u in parts)


def size_bytes(text):
    """chatbox's sizes (100MB, 1MiB, bytes) and nginx's (100m, 512k)."""
    m = re.fullmatch(r"(\d+)\s*([A-Za-z]*)", text.strip())
    if not m:
        raise ValueError(f"not a size: {text!r}")
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "k": 2**10, "kib": 2**10,
             "m": 2**20, "mib": 2**20, "g": 2**30, "gib": 2**30}
    return int(m.group(1)) * units[m.group(2).lower()]


# --- the binary's settings table ---------------------------------------------------------

def config_table():
    """{name: (default or None, is_secret)} from the VARS table in src/config/table.rs."""
    source = (ROOT / "src/config/table.rs").read_text()
    macros = dict(re.findall(r'macro_rules!\s*(\w+)\s*\{\s*\(\)\s*=>\s*\{\s*"([^"]*)"', source))
    table = source[source.index("const VARS: &[Var]"):]
    table = table[:table.index("\n];")]
    out = {}
    for entry in re.split(r"\n\s*var\(", table)[1:]:
        name = re.match(r'"([^"]+)"', entry).group(1)
        for macro, value in macros.items():
            entry = entry.replace(f"{macro}!()", f'"{value}"')
        # Lit("x"), or Lit(concat!("a", "b")) once the macros are spelled out.
        lit = re.match(r'"[^"]+",\s*Lit\((?:concat!\(((?:\s*"[^"]*"\s*,?)+)\)|("[^"]*"))\)',
                       entry)
        default = "".join(re.findall(r'"([^"]*)"', lit.group(1) or lit.group(2))) if lit else None
        secret = bool(re.search(r"\bKind::Secret\(|\bKey\(", entry))
        out[name] = (default, secret)
    if len(out) < 40 or "JWT_SECRET" not in out:
        problem("src/config/table.rs", f"settings table not understood ({len(out)} variables read)")
    return out


# --- loading and schema validation ---------------------------------------------------------

def load_docs(path):
    try:
        return [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except yaml.YAMLError as e:
        problem(rel(path), f"not YAML: {e}")
        return []


def check_helmchartconfig(where, obj):
    """K3s' HelmChartConfig for Traefik: the shape helm-controller expects, and timeouts
    that outlast the WebSocket ping period."""
    meta = obj.get("metadata", {})
    if obj.get("apiVersion") != "helm.cattle.io/v1":
        problem(where, "HelmChartConfig must be apiVersion helm.cattle.io/v1")
    if meta.get("namespace") != "kube-system" or meta.get("name") != "traefik":
        problem(where, "HelmChartConfig must be kube-system/traefik to reach K3s' Traefik")
    if set(obj.get("spec", {})) != {"valuesContent"}:
        problem(where, "HelmChartConfig spec must hold only valuesContent")
        return
    values = yaml.safe_load(obj["spec"]["valuesContent"])
    if not isinstance(values, dict):
        problem(where, "valuesContent must be a YAML mapping of chart values")
        return
    args = dict(a.lstrip("-").split("=", 1) for a in values.get("additionalArguments", []))
    ping = seconds(SETTINGS["WS_PING_PERIOD"])
    for entrypoint in ("web", "websecure"):
        for timeout in ("readTimeout", "idleTimeout"):
            key = f"entryPoints.{entrypoint}.transport.respondingTimeouts.{timeout}"
            if key not in args:
                problem(where, f"{key} not set (Traefik v3's 60s default is too close "
                               f"to WS_PING_PERIOD)")
            elif 0 < seconds(args[key]) <= ping:
                problem(where, f"{key}={args[key]} does not exceed WS_PING_PERIOD")
    idle = args.get("serversTransport.forwardingTimeouts.idleConnTimeout")
    if idle is None or seconds(idle) >= CHATBOX_KEEPALIVE_S:
        problem(where, f"serversTransport idleConnTimeout must be under chatbox's "
                       f"{CHATBOX_KEEPALIVE_S}s keep-alive")


CRD_CHECKS = {"HelmChartConfig": check_helmchartconfig}


def validate_object(where, obj):
    kind = obj.get("kind", "?")
    name = obj.get("metadata", {}).get("name", "?")
    if kind in CRD_CHECKS:
        CRD_CHECKS[kind](f"{where} {kind}/{name}", obj)
        return
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(top)"
            problem(where, f"{kind}/{name} invalid for Kubernetes {version}: {path}: {e.message}")
        except SchemaNotFoundError:
            problem(where, f"{kind}/{name}: no schema for {obj.get('apiVersion')} in "
                           f"Kubernetes {version} (a CRD needs an entry in CRD_CHECKS)")


# --- kustomizations ----------------------------------------------------------------------

def key(obj):
    return (obj.get("apiVersion"), obj.get("kind"), obj.get("metadata", {}).get("name"))


def kustomize_objects(directory, listed):
    """Objects a kustomization lists (recursively), recording every file it uses."""
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        problem(rel(directory), "a listed directory without kustomization.yaml")
        return []
    listed.add(kfile.resolve())
    spec = load_docs(kfile)[0]
    objects = []
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            objects += kustomize_objects(path, listed)
        elif path.is_file():
            docs = load_docs(path)
            if path not in listed:  # a base shared by two kustomizations: validate once
                for obj in docs:
                    validate_object(rel(path), obj)
            listed.add(path)
            objects += docs
        else:
            problem(rel(kfile), f"resource {entry} does not exist")
    for patch in spec.get("patches", []):
        path = (directory / patch.get("path", "")).resolve()
        if not path.is_file():
            problem(rel(kfile), f"patch {patch} has no file")
            continue
        listed.add(path)
        for target in load_docs(path):
            if key(target) not in {key(o) for o in objects}:
                problem(rel(path), f"patches {key(target)}, which no base of "
                                   f"{rel(kfile)} defines")
    for image in spec.get("images", []):
        used = {c.get("image", "").rsplit(":", 1)[0]
                for o in objects if o.get("kind") == "Deployment"
                for c in o["spec"]["template"]["spec"]["containers"]}
        if image.get("name") not in used:
            problem(rel(kfile), f"images entry {image.get('name')} matches no container")
    return objects


def render(directory):
    """`kubectl kustomize` output, or None when kubectl is missing."""
    if not shutil.which("kubectl"):
        return None
    run = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True,
                         text=True, check=False)
    if run.returncode != 0:
        problem(rel(directory), f"kubectl kustomize failed: {run.stderr.strip()}")
        return []
    return [d for d in yaml.safe_load_all(run.stdout) if d is not None]


# --- consistency with the binary -----------------------------------------------------------

def find(objects, kind, name="chatbox"):
    hits = [o for o in objects if o.get("kind") == kind and o["metadata"]["name"] == name]
    return hits[0] if hits else None


def check_settings_files(table):
    """configmap.yaml and secret.template.yaml against src/config/table.rs."""
    where_cm = "deployments/kubernetes/configmap.yaml"
    where_secret = "deployments/kubernetes/secret.template.yaml"
    cm = load_docs(DEPLOY / "kubernetes/configmap.yaml")[0]["data"]
    secret = load_docs(DEPLOY / "kubernetes/secret.template.yaml")[0]["stringData"]
    for key_, value in {**cm, **secret}.items():
        if not isinstance(value, str):
            problem(where_cm, f"{key_}: value must be a quoted string, not {value!r}")
    names = {n.replace("<n>", "1"): spec for n, spec in table.items()}
    for name in sorted(set(cm) | set(secret)):
        if name not in names:
            problem(where_cm, f"{name} is not a variable of src/config/table.rs (a typo?)")
    for name, (default, is_secret) in names.items():
        in_cm, in_secret = name in cm, name in secret
        if is_secret and in_cm:
            problem(where_cm, f"{name} is a credential: it belongs in the Secret")
        elif in_cm == in_secret:
            state = "both in the ConfigMap and" if in_cm else "neither in the ConfigMap nor"
            problem(where_cm, f"{name} is {state} in the Secret template")
        elif in_secret and not (is_secret or name in SECRET_BY_CHOICE):
            problem(where_secret, f"{name} is not a credential: it belongs in the ConfigMap")
        if not in_cm:
            continue
        expected = DEFAULT_OVERRIDES.get(name, default if default is not None else "")
        if cm[name] != expected:
            problem(where_cm, f"{name}: {cm[name]!r}, but the binary's default is "
                              f"{default!r} (a deliberate change goes into DEFAULT_OVERRIDES)")
    for name in DEFAULT_OVERRIDES:
        if name not in names:
            problem("scripts/check-deployments.py", f"DEFAULT_OVERRIDES names unknown {name}")
    return cm


def check_rendered(where, objects):
    """One kustomization's output, as it would reach the cluster."""
    cm = find(objects, "ConfigMap")
    deploy = find(objects, "Deployment")
    if cm is None or deploy is None:
        problem(where, "no ConfigMap/Deployment named chatbox")
        return
    env = cm["data"]
    pod = deploy["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "chatbox")

    grace = pod.get("terminationGracePeriodSeconds", 30)
    drain = seconds(env["SHUTDOWN_DRAIN_DELAY"])
    timeout = seconds(env["SHUTDOWN_TIMEOUT"])
    if grace < drain + timeout + GRACE_MARGIN_S:
        problem(where, f"terminationGracePeriodSeconds {grace} < SHUTDOWN_DRAIN_DELAY "
                       f"{drain:g} + SHUTDOWN_TIMEOUT {timeout:g} + {GRACE_MARGIN_S} s margin")

    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if str(ports.get("http")) != env["SERVER_PORT"]:
        problem(where, f"containerPort http {ports.get('http')} != SERVER_PORT")
    if env.get("METRICS_PORT") and str(ports.get("metrics")) != env["METRICS_PORT"]:
        problem(where, f"containerPort metrics {ports.get('metrics')} != METRICS_PORT")
    prefix = env["CHATBOX_PATH_PREFIX"]
    # Probes go to METRICS_PORT, whose connection slots the public side cannot use up.
    if not env.get("METRICS_PORT"):
        problem(where, "METRICS_PORT must be set: the probes use it")
    for probe, route in (("startupProbe", "healthz"), ("livenessProbe", "healthz"),
                         ("readinessProbe", "readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != f"/{route}" or get.get("port") != "metrics":
            problem(where, f"{probe} must GET /{route} on port metrics (METRICS_PORT)")

    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    if env["DATA_DIR"] not in mounts:
        problem(where, f"DATA_DIR {env['DATA_DIR']} is not a mounted volume (the root file "
                       f"system is read-only)")

    pod_sc, sc = pod.get("securityContext", {}), container.get("securityContext", {})
    wanted = [
        (pod_sc.get("runAsNonRoot") or sc.get("runAsNonRoot"), "runAsNonRoot: true"),
        ((sc.get("runAsUser") or pod_sc.get("runAsUser")) == RUNTIME_UID,
         f"runAsUser {RUNTIME_UID} (the image's USER)"),
        (sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true"),
        (sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false"),
        (sc.get("capabilities", {}).get("drop") == ["ALL"], "capabilities.drop [ALL]"),
        ((sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
         == "RuntimeDefault", "seccompProfile RuntimeDefault"),
    ]
    for ok, what in wanted:
        if not ok:
            problem(where, f"container security: {what} missing")

    # Without Redis a user's sockets meet only on one pod: ClientIP affinity for a
    # working day. With Redis (the deployments/redis overlay) any pod serves any socket,
    # and affinity only gets in the way (docs/SCALE-OUT.md).
    service = find(objects, "Service")
    with_redis = find(objects, "Deployment", "redis") is not None
    affinity = (service or {}).get("spec", {}).get("sessionAffinity", "None")
    if with_redis:
        if affinity != "None":
            problem(where, "Service chatbox must not keep ClientIP affinity with Redis")
    elif service is None or affinity != "ClientIP" or \
            service["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] != 10800:
        problem(where, "Service chatbox must keep ClientIP affinity for 3 h (10800 s)")

    # A ReadWriteOnce volume (the embedded store) allows exactly one pod at a time.
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod.get("volumes", [])
              if "persistentVolumeClaim" in v}
    if claims:
        if deploy["spec"].get("replicas") != 1:
            problem(where, "a Deployment on a ReadWriteOnce volume needs replicas: 1")
        if deploy["spec"].get("strategy", {}).get("type") != "Recreate":
            problem(where, "a Deployment on a ReadWriteOnce volume needs strategy Recreate")
        if find(objects, "HorizontalPodAutoscaler") is not None:
            problem(where, "no HorizontalPodAutoscaler for a single-writer store")
        for claim in claims:
            if find(objects, "PersistentVolumeClaim", claim) is None:
                problem(where, f"PersistentVolumeClaim {claim} is not defined")

    services = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "Service"}
    for ingress in (o for o in objects if o.get("kind") == "Ingress"):
        for rule in ingress["spec"].get("rules", []):
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                target = services.get(backend["name"])
                names = {p.get("name") for p in target["spec"]["ports"]} if target else set()
                if backend["port"].get("name") not in names:
                    problem(where, f"Ingress {ingress['metadata']['name']}: backend "
                                   f"{backend} is not a Service port")
                if not path["path"].startswith(prefix):
                    problem(where, f"Ingress path {path['path']} is outside {prefix}")
                # Scrapers use METRICS_PORT; the proxy's own address may be allowed.
                scrape = f"{prefix}/metrics/prometheus"
                routed = path["path"].rstrip("/")
                if scrape == routed or (path.get("pathType") != "Exact"
                                        and scrape.startswith(routed + "/")):
                    problem(where, f"Ingress path {path['path']} publishes {scrape}")


def chatbox_binary():
    """CHATBOX_BIN, else a binary cargo built (debug first: scripts/test builds it)."""
    if os.environ.get("CHATBOX_BIN"):
        return Path(os.environ["CHATBOX_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    for candidate in (target / "debug/chatbox", target / "release/chatbox"):
        if candidate.is_file():
            return candidate
    return None


def check_config_accepted(where, objects, binary):
    """The rendered ConfigMap, as the pod's environment, passes `chatbox --check-config`.
    A throw-away JWT_SECRET stands in for the Secret; DATA_DIR points at a scratch
    directory, because the check proves it writable."""
    env = dict(find(objects, "ConfigMap")["data"])
    # Hex cannot spell a refused sample word, except the digit run 12345.
    jwt = secrets.token_hex(32).replace("12345", "abcde")
    with tempfile.TemporaryDirectory() as data:
        env.update(JWT_SECRET=jwt, DATA_DIR=data)
        run = subprocess.run([str(binary), "--check-config"], env=env, capture_output=True,
                             text=True, check=False)
    if run.returncode != 0:
        problem(where, f"{binary} --check-config refuses the ConfigMap: "
                       f"{(run.stderr or run.stdout).strip()}")


def nginx_block(text, header):
    """The body of the first `header { ... }` block (braces balanced)."""
    start = text.index("{", text.index(header)) + 1
    depth, i = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start:i - 1]


def check_nginx():
    ping = seconds(SETTINGS["WS_PING_PERIOD"])
    locations = (DEPLOY / "nginx/chatbox-locations.conf").read_text()
    where = "deployments/nginx/chatbox-locations.conf"
    ws = nginx_block(locations, f"location = {SETTINGS['CHATBOX_PATH_PREFIX']}/ws")
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        m = re.search(rf"{directive}\s+(\S+);", ws)
        if not m or seconds(m.group(1)) <= ping:
            problem(where, f"{directive} of the WebSocket location must exceed WS_PING_PERIOD")
    if not re.search(r"proxy_buffering\s+off;", ws):
        problem(where, "the WebSocket location must not buffer (proxy_buffering off)")
    upload = nginx_block(locations, f"location = {SETTINGS['CHATBOX_PATH_PREFIX']}/upload")
    m = re.search(r"client_max_body_size\s+(\S+);", upload)
    if not m or size_bytes(m.group(1)) < size_bytes(SETTINGS["UPLOAD_MAX_SIZE"]):
        problem(where, "client_max_body_size of the upload location is below UPLOAD_MAX_SIZE")
    proxy = (DEPLOY / "nginx/chatbox-proxy.conf").read_text()
    for needed in ("proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;",
                   "proxy_set_header Connection $connection_upgrade;",
                   "proxy_set_header X-Forwarded-For"):
        if needed not in proxy:
            problem("deployments/nginx/chatbox-proxy.conf", f"missing {needed}")
    for site in ("single.conf", "load-balanced.conf", "tls.conf"):
        upstream = nginx_block((DEPLOY / "nginx" / site).read_text(), "upstream chatbox")
        m = re.search(r"keepalive_timeout\s+(\S+);", upstream)
        if not m or seconds(m.group(1)) >= CHATBOX_KEEPALIVE_S:
            problem(f"deployments/nginx/{site}", f"upstream keepalive_timeout must be under "
                                                 f"chatbox's {CHATBOX_KEEPALIVE_S}s")


# --- main --------------------------------------------------------------------------------

TABLE = config_table()
SETTINGS = check_settings_files(TABLE)

listed = set()
BINARY = chatbox_binary()
kustomizations = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))
for directory in kustomizations:
    kustomize_objects(directory, listed)
    objects = render(directory)
    if objects is None:
        print(f"  {rel(directory)}: kubectl not found, so not rendered: its files were "
              f"validated one by one and its patches checked against their targets")
        if directory == DEPLOY / "kubernetes":
            check_rendered(rel(directory), [o for p in sorted(directory.glob("*.yaml"))
                                            if p.name != "kustomization.yaml"
                                            and p.resolve() in listed for o in load_docs(p)])
        continue
    before = len(problems)
    for obj in objects:
        validate_object(f"{rel(directory)} (rendered)", obj)
    check_rendered(f"{rel(directory)} (rendered)", objects)
    if BINARY is not None:
        check_config_accepted(f"{rel(directory)} (rendered)", objects, BINARY)
    if len(problems) == before:
        accepted = f"; its ConfigMap accepted by {BINARY} --check-config" if BINARY else ""
        print(f"  {rel(directory)}: rendered {len(objects)} objects, valid for Kubernetes "
              f"{' and '.join(KUBE_VERSIONS)}{accepted}")

for standalone in STANDALONE:
    path = DEPLOY / standalone
    listed.add(path.resolve())
    for obj in load_docs(path):
        validate_object(rel(path), obj)
for path in sorted(DEPLOY.rglob("*.y*ml")):
    if path.resolve() not in listed:
        problem(rel(path), "in no kustomization and not in STANDALONE (a forgotten resource?)")

if BINARY is None:
    print("  no chatbox binary (CHATBOX_BIN, or target/debug or target/release): the "
          "ConfigMaps were not run through chatbox --check-config")
check_nginx()

if problems:
    print("\n".join(f"FAIL {p}" for p in problems))
    sys.exit(1)
print(f"  {len(listed)} files valid; ConfigMap and Secret template cover all "
      f"{len(TABLE)} settings of src/config/table.rs; timeouts and drain consistent")
