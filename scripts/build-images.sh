#!/usr/bin/env bash
# Builds the project's container images from its own binaries, without pulling anything:
#
#   aro-base            a root file system made here, imported with `docker import`: the shared
#                       libraries the binaries link (their ldd closure) and the dynamic loader,
#                       /etc/passwd and /etc/group with the non-root user 65532, /tmp, the
#                       host's CA certificates, and the aro CLI, whose `aro health` serves as
#                       the containers' health check
#   aro-detector, aro-brain (with libonnxruntime.so and the policy model), aro-deployer,
#   aro-sample-workload, aro-nats (nats-server with JetStream)
#                       built FROM aro-base with the Dockerfiles in deploy/docker/
#
# Every image is tagged $ARO_IMAGE_TAG (default dev) and labelled io.aro.managed=true.
# ARO_PROFILE selects the cargo profile: release (default) or debug, which reuses the build of
# `make test`. Binaries are copied without their debug sections. Each image is built from its
# own small context under target/images/, never from the repository. A second run with nothing
# changed rebuilds nothing: the base is imported again only when its content changes, and the
# Dockerfile steps come from Docker's build cache.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${ARO_PROFILE:-release}
tag=${ARO_IMAGE_TAG:-dev}
cargo=${CARGO:-cargo}
staging=target/images
images=(detector brain deployer sample-workload nats)

case "$profile" in
    release) cargo_flags=(--release) ;;
    debug) cargo_flags=() ;;
    *)
        echo "build-images: invalid ARO_PROFILE '$profile': expected release or debug" >&2
        exit 2
        ;;
esac
if ! [[ "$tag" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
    echo "build-images: invalid ARO_IMAGE_TAG '$tag': expected a Docker tag such as dev or 0.1.0" >&2
    exit 2
fi

total_steps=$((3 + ${#images[@]}))
step=0
started=$SECONDS
step_started=$SECONDS

# Prints the step counter, the step's title and the time the previous step took.
begin() {
    if [ "$step" -gt 0 ]; then
        echo "      done in $((SECONDS - step_started)) s"
    fi
    step=$((step + 1))
    step_started=$SECONDS
    echo "[$step/$total_steps] $*"
}

fail() {
    echo "build-images: $*" >&2
    exit 1
}

# Copies a file into a build context unless the copy there is already of the same version
# (same modification time). ELF files lose their debug sections on the way.
stage() {
    local source=$1 target=$2
    [ -f "$source" ] || fail "missing input $source"
    if [ -f "$target" ] && ! [ "$source" -nt "$target" ] && ! [ "$source" -ot "$target" ]; then
        return
    fi
    mkdir -p "$(dirname "$target")"
    if head -c 4 "$source" | grep -q 'ELF'; then
        objcopy --strip-debug "$source" "$target.tmp"
    else
        cp "$source" "$target.tmp"
    fi
    touch -r "$source" "$target.tmp"
    mv -f "$target.tmp" "$target"
}

# Prints the shared libraries an ELF file needs and its dynamic loader, one path a line.
# Statically linked files print nothing.
library_closure() {
    local output
    if ! output=$(ldd "$1" 2>&1); then
        case "$output" in
            *"not a dynamic executable"* | *"statically linked"*) return ;;
            *) fail "ldd $1 failed: $output" ;;
        esac
    fi
    if grep -q 'not found' <<<"$output"; then
        fail "$1 needs libraries that are not installed: $(grep 'not found' <<<"$output" | tr -s ' \t' ' ')"
    fi
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$output"
}

command -v docker >/dev/null || fail "docker is not on PATH; install Docker to build images"
docker info >/dev/null 2>&1 \
    || fail "cannot reach the Docker engine (docker info failed); start it or check DOCKER_HOST"
command -v objcopy >/dev/null || fail "objcopy is not on PATH; install binutils"

begin "checking .venv (libonnxruntime.so, nats-server)"
scripts/setup.sh
onnxruntime=$(ls .venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | sort -V | tail -n 1)
nats_server=$(readlink -f .venv/bin/nats-server)

begin "building the binaries ($profile profile)"
"$cargo" build "${cargo_flags[@]}" --workspace --bins
bin=${CARGO_TARGET_DIR:-target}/$profile
binaries=(aro aro-detector aro-brain aro-deployer aro-sample-workload)
for binary in "${binaries[@]}"; do
    [ -x "$bin/$binary" ] || fail "cargo did not produce $bin/$binary"
done

begin "base root file system aro-base:$tag"
rootfs=$staging/rootfs
context=$staging/context
stage "$bin/aro" "$context/base/aro"
rm -rf "$rootfs"
mkdir -p "$rootfs"/{etc,tmp,usr/local/bin,usr/local/lib}
chmod 1777 "$rootfs/tmp"
libraries=$(
    for file in "${binaries[@]/#/$bin/}" "$onnxruntime" "$nats_server"; do
        library_closure "$file"
    done | sort -u
)
for library in $libraries; do
    mkdir -p "$rootfs$(dirname "$library")"
    cp -L "$library" "$rootfs$library"
done
echo "      $(wc -w <<<"$libraries") libraries: $(tr '\n' ' ' <<<"$libraries")"
cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
aro:x:65532:65532:aro:/tmp:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
aro:x:65532:
EOF
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
cp "$context/base/aro" "$rootfs/usr/local/bin/aro"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$rootfs/etc/ssl/certs"
    cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
fi
# A fixed order, owner and time make the archive, and so its digest, depend on the content only.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -C "$rootfs" -cf "$staging/rootfs.tar" .
digest=$(sha256sum "$staging/rootfs.tar" | cut -d ' ' -f 1)
current=$(docker image inspect -f '{{index .Config.Labels "io.aro.rootfs-sha256"}}' \
    "aro-base:$tag" 2>/dev/null || true)
if [ "$current" = "$digest" ]; then
    echo "      aro-base:$tag is up to date (rootfs sha256 ${digest:0:12})"
else
    docker import \
        --change 'LABEL io.aro.managed=true' \
        --change "LABEL io.aro.rootfs-sha256=$digest" \
        --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
        --change 'USER 65532:65532' \
        --message "aro-base from $(wc -w <<<"$libraries") host libraries" \
        "$staging/rootfs.tar" "aro-base:$tag" >/dev/null
    echo "      imported aro-base:$tag (rootfs sha256 ${digest:0:12})"
fi

# Fills each image's build context with what its Dockerfile copies.
stage "$bin/aro-detector" "$context/detector/aro-detector"
stage "$bin/aro-brain" "$context/brain/aro-brain"
stage "$onnxruntime" "$context/brain/libonnxruntime.so"
stage models/policy.onnx "$context/brain/policy.onnx"
stage "$bin/aro-deployer" "$context/deployer/aro-deployer"
stage "$bin/aro-sample-workload" "$context/sample-workload/aro-sample-workload"
stage deploy/local/beat-data.txt "$context/sample-workload/beat-data.txt"
stage "$nats_server" "$context/nats/nats-server"
mkdir -p "$context/nats/data"

for image in "${images[@]}"; do
    begin "image aro-$image:$tag"
    # The log is shown only when the build fails: the legacy builder warns on every run that
    # it is deprecated.
    if ! docker build --quiet \
        --build-arg "BASE_IMAGE=aro-base:$tag" \
        --label io.aro.managed=true \
        --tag "aro-$image:$tag" \
        --file "deploy/docker/$image.Dockerfile" \
        "$context/$image" >"$staging/build-$image.log" 2>&1; then
        cat "$staging/build-$image.log" >&2
        fail "docker build of aro-$image:$tag failed"
    fi
    size=$(docker image inspect -f '{{.Size}}' "aro-$image:$tag")
    echo "      aro-$image:$tag $((size / 1024 / 1024)) MiB"
done
echo "      done in $((SECONDS - step_started)) s"

# A base imported again leaves the images of the previous build untagged; only those of this
# project, recognised by the label, are removed.
docker image prune --force --filter label=io.aro.managed=true >/dev/null
echo "images ready in $((SECONDS - started)) s:$(printf ' aro-%s:'"$tag" base "${images[@]}")"
