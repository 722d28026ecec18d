# The deployer. The aro CLI comes with the base image.
# Build context: target/images/context/deployer, filled by scripts/build-images.sh.
ARG BASE_IMAGE=aro-base:dev
FROM ${BASE_IMAGE}
COPY aro-deployer /usr/local/bin/aro-deployer
ENV ARO_DEPLOYER_GRPC_ADDR=0.0.0.0:7403 \
    ARO_METRICS_ADDR=0.0.0.0:9403
EXPOSE 7403 9403
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/aro-deployer"]
LABEL io.aro.managed=true \
      org.opencontainers.image.title=aro-deployer \
      org.opencontainers.image.description="Runs workloads, executes recovery commands and injects faults"
