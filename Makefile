# AI-Resilience-Orchestrator. Every target installs what it needs: a Rust toolchain and
# python3 are the only prerequisites.

CARGO ?= cargo
export ARO_NATS_SERVER ?= $(CURDIR)/.venv/bin/nats-server
# Cargo profile of the binaries in the images (release or debug) and the tag of every image.
ARO_PROFILE ?= release
export ARO_IMAGE_TAG ?= dev
# `docker compose` where the Compose plugin is installed, otherwise `docker-compose`.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.PHONY: setup build build-release demo test images compose-up compose-down k8s-validate lint bench train eval-policy eval-logs clean-run

## setup: the .venv with ONNX Runtime and nats-server.
setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --workspace --bins

build-release: setup
	$(CARGO) build --release --workspace --bins

## demo: the whole loop on real processes, faults injected through the gRPC Chaos API.
demo: build-release
	target/release/aro demo

## test: the Kubernetes manifests, then unit tests and end-to-end tests against a real
## nats-server, real processes and real containers. The images are built from the debug
## binaries that the tests use.
test: setup k8s-validate
	CARGO=$(CARGO) ARO_PROFILE=debug scripts/build-images.sh
	$(CARGO) test --workspace --no-fail-fast

## images: aro-base, aro-detector, aro-brain, aro-deployer, aro-sample-workload and aro-nats,
## tagged $(ARO_IMAGE_TAG), from the $(ARO_PROFILE) binaries (no image is pulled).
images: setup
	CARGO=$(CARGO) ARO_PROFILE=$(ARO_PROFILE) scripts/build-images.sh

## compose-up: docker-compose.yml in the background: NATS, the three services and the demo fleet
## of deploy/compose/fleet.toml as containers, with the deployer in the Docker socket's group.
compose-up: images
	ARO_DOCKER_GID=$$(stat -c %g /var/run/docker.sock) $(COMPOSE) up --detach

## compose-down: stops it and removes its containers, network and volumes.
compose-down:
	$(COMPOSE) down --volumes

## k8s-validate: renders each overlay of deploy/k8s and validates it offline (no cluster).
k8s-validate: setup
	scripts/validate-k8s.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

## bench: one policy inference; then on real processes 50 crashes and 50 hangs, 100 faults of
## every kind for the classification table, and phi against a fixed timeout on an idle and a
## saturated machine with 10-minute soaks (about 40 minutes in all).
bench: build-release
	$(CARGO) run --release -p aro-brain --example inference_latency
	target/release/aro bench --crashes 50 --hangs 50 --classification 100 --detector-comparison

## train: regenerates models/policy.onnx from the simulator.
train:
	scripts/train.sh

eval-policy:
	scripts/eval-policy.sh

## eval-logs: the log-template miner against drain3 on the Loghub samples.
eval-logs:
	scripts/eval-logs.sh

clean-run:
	rm -rf .run
