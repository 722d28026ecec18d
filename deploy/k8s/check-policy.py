"""Checks rendered manifests against the project's rules for every workload it deploys.

Usage: check-policy.py FILE --images dev|digest

The schema validator checks that the fields exist, and this script checks their values. Every
container runs as non-root with a read-only root file system, no capabilities and seccomp
RuntimeDefault, has CPU and memory requests and limits and liveness and readiness probes, and
uses an image of the expected form. A pod mounts no service account token unless it has an
account of its own. A default-deny NetworkPolicy and a PodDisruptionBudget for every
StatefulSet exist.
"""

import argparse
import re
import sys

import yaml

WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
DEV_IMAGE = re.compile(r"^aro-[a-z-]+:[A-Za-z0-9_][A-Za-z0-9_.-]*$")
DIGEST_IMAGE = re.compile(r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9/_.-]+@sha256:[0-9a-f]{64}$")


def check_container(where, container, image_form, problems):
    security = container.get("securityContext") or {}
    if security.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: securityContext.readOnlyRootFilesystem is not true")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: securityContext.allowPrivilegeEscalation is not false")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{where}: securityContext.capabilities.drop does not contain ALL")
    if (security.get("capabilities") or {}).get("add"):
        problems.append(f"{where}: securityContext.capabilities.add is not empty")
    resources = container.get("resources") or {}
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in (resources.get(section) or {}):
                problems.append(f"{where}: resources.{section}.{resource} is missing")
    for probe in ("livenessProbe", "readinessProbe"):
        if probe not in container:
            problems.append(f"{where}: {probe} is missing")
    image = container.get("image", "")
    pattern = DEV_IMAGE if image_form == "dev" else DIGEST_IMAGE
    if not pattern.match(image):
        expected = "aro-<name>:<tag>" if image_form == "dev" else "<registry>/<path>@sha256:<digest>"
        problems.append(f"{where}: image {image!r} is not of the form {expected}")


def check_workload(document, image_form, problems):
    name = f"{document['kind']}/{document['metadata']['name']}"
    pod = document["spec"]["template"]["spec"]
    security = pod.get("securityContext") or {}
    if security.get("runAsNonRoot") is not True:
        problems.append(f"{name}: securityContext.runAsNonRoot is not true")
    if (security.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append(f"{name}: securityContext.seccompProfile.type is not RuntimeDefault")
    uses_account = pod.get("serviceAccountName", "default") != "default"
    if not uses_account and pod.get("automountServiceAccountToken") is not False:
        problems.append(
            f"{name}: automountServiceAccountToken is not false, but the pod has no service account of its own"
        )
    for container in pod.get("initContainers", []) + pod["containers"]:
        check_container(f"{name} container {container['name']}", container, image_form, problems)


def check(documents, image_form):
    problems = []
    kinds = {}
    for document in documents:
        kinds.setdefault(document["kind"], []).append(document)
        if document["kind"] in WORKLOAD_KINDS:
            check_workload(document, image_form, problems)
    deny_all = [
        policy
        for policy in kinds.get("NetworkPolicy", [])
        if policy["spec"].get("podSelector") == {}
        and sorted(policy["spec"].get("policyTypes", [])) == ["Egress", "Ingress"]
        and not policy["spec"].get("ingress")
        and not policy["spec"].get("egress")
    ]
    if not deny_all:
        problems.append("no NetworkPolicy denies all ingress and egress by default")
    budgets = [budget["spec"]["selector"] for budget in kinds.get("PodDisruptionBudget", [])]
    for stateful in kinds.get("StatefulSet", []):
        if stateful["spec"]["selector"] not in budgets:
            problems.append(f"StatefulSet/{stateful['metadata']['name']}: no PodDisruptionBudget selects its pods")
    if not kinds.get("Deployment") and not kinds.get("StatefulSet"):
        problems.append("no Deployment or StatefulSet rendered")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="rendered manifests, as `kubectl kustomize` prints them")
    parser.add_argument("--images", choices=["dev", "digest"], required=True,
                        help="expected image form: aro-<name>:<tag> or pinned by digest")
    args = parser.parse_args()
    with open(args.file, encoding="utf-8") as stream:
        documents = [document for document in yaml.safe_load_all(stream) if document]
    problems = check(documents, args.images)
    for problem in problems:
        print(f"{args.file}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
