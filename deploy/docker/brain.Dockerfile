# The brain, with ONNX Runtime (from the onnxruntime wheel in .venv) and the policy model.
# Build context: target/images/context/brain, filled by scripts/build-images.sh.
ARG BASE_IMAGE=aro-base:dev
FROM ${BASE_IMAGE}
COPY aro-brain /usr/local/bin/aro-brain
COPY libonnxruntime.so /usr/local/lib/libonnxruntime.so
COPY policy.onnx /usr/share/aro/models/policy.onnx
ENV ARO_BRAIN_GRPC_ADDR=0.0.0.0:7402 \
    ARO_METRICS_ADDR=0.0.0.0:9402 \
    ARO_POLICY_MODEL=/usr/share/aro/models/policy.onnx \
    ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so
EXPOSE 7402 9402
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/aro-brain"]
LABEL io.aro.managed=true \
      org.opencontainers.image.title=aro-brain \
      org.opencontainers.image.description="Decides recoveries for fault events with an ONNX policy behind safety guards"
