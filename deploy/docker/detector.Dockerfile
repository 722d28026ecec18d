# The detector. Build context: target/images/context/detector, filled by scripts/build-images.sh.
ARG BASE_IMAGE=aro-base:dev
FROM ${BASE_IMAGE}
COPY aro-detector /usr/local/bin/aro-detector
ENV ARO_DETECTOR_GRPC_ADDR=0.0.0.0:7401 \
    ARO_METRICS_ADDR=0.0.0.0:9401
EXPOSE 7401 9401
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/aro-detector"]
LABEL io.aro.managed=true \
      org.opencontainers.image.title=aro-detector \
      org.opencontainers.image.description="Turns heartbeats, probes, runtime signals, logs, checksums and memory into fault events"
