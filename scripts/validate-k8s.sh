#!/usr/bin/env bash
# Renders every overlay of deploy/k8s with `kubectl kustomize` and validates it offline, with no
# cluster: kubernetes-validate --strict against each Kubernetes version in ARO_K8S_VERSIONS,
# deploy/k8s/check-policy.py for the project's security and sizing rules, and `nats-server -t`
# for the NATS configurations. The optional components are rendered on top of the production
# overlay. Rendered manifests stay in target/k8s/ for inspection.
#
# The tools come from PyPI into .venv-k8s (deploy/k8s/requirements-validate.txt), so python3
# with venv is all this needs; the nats-server check uses .venv from scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

versions=${ARO_K8S_VERSIONS:-1.34.0 1.37.0}
venv=.venv-k8s
requirements=deploy/k8s/requirements-validate.txt
rendered=target/k8s

fail() {
    echo "validate-k8s: $*" >&2
    exit 1
}

python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    echo "validate-k8s: creating $venv with $($python --version)"
    "$python" -m venv "$venv"
fi
stamp=$venv/.aro-installed
if [ ! -f "$stamp" ] || [ "$requirements" -nt "$stamp" ]; then
    echo "validate-k8s: installing $requirements into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    touch "$stamp"
fi
kubectl=$venv/bin/kubectl
[ -x "$kubectl" ] || fail "$kubectl is missing after installing $requirements"

rm -rf "$rendered"
mkdir -p "$rendered"

# Renders a kustomization directory into $rendered/NAME.yaml.
render() {
    local name=$1 directory=$2
    if ! "$kubectl" kustomize "$directory" >"$rendered/$name.yaml" 2>"$rendered/$name.err"; then
        cat "$rendered/$name.err" >&2
        fail "kubectl kustomize $directory failed"
    fi
}

targets=()
for overlay in deploy/k8s/overlays/*/; do
    name=$(basename "$overlay")
    render "$name" "$overlay"
    targets+=("$name")
done

# Each component on top of the production overlay, from a kustomization made for the purpose.
for component in deploy/k8s/components/*/; do
    name=production+$(basename "$component")
    mkdir -p "$rendered/$name"
    cat >"$rendered/$name/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../../deploy/k8s/overlays/production
components:
  - ../../../$component
EOF
    render "$name" "$rendered/$name"
    targets+=("$name")
done

failed=0
for name in "${targets[@]}"; do
    file=$rendered/$name.yaml
    resources=$(grep -c '^kind:' "$file" || true)
    echo "validate-k8s: $name: $resources resources"
    for version in $versions; do
        if "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "$file"; then
            echo "  schema of Kubernetes $version (strict): ok"
        else
            echo "  schema of Kubernetes $version (strict): FAILED" >&2
            failed=1
        fi
    done
    case "$name" in
        production*) images=digest ;;
        *) images=dev ;;
    esac
    if "$venv/bin/python" deploy/k8s/check-policy.py "$file" --images "$images"; then
        echo "  security, resources, probes, images ($images): ok"
    else
        echo "  security, resources, probes, images ($images): FAILED" >&2
        failed=1
    fi
done

nats_server=${ARO_NATS_SERVER:-.venv/bin/nats-server}
[ -x "$nats_server" ] || fail "$nats_server is missing; run scripts/setup.sh first"
for config in deploy/k8s/base/nats.conf deploy/k8s/overlays/*/nats*.conf; do
    if POD_NAME=aro-nats-0 "$nats_server" -t -c "$config" >/dev/null 2>"$rendered/nats-config.err"; then
        echo "validate-k8s: $config: valid for nats-server $("$nats_server" --version | cut -d ' ' -f 2)"
    else
        cat "$rendered/nats-config.err" >&2
        echo "validate-k8s: $config: FAILED" >&2
        failed=1
    fi
done

if [ "$failed" -ne 0 ]; then
    fail "some manifests are invalid; the rendered files are in $rendered/"
fi
echo "validate-k8s: every overlay is valid"
