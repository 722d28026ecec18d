# The sample workload with its data set in the working directory, so ARO_DATA_FILE=beat-data.txt
# finds it. Build context: target/images/context/sample-workload, filled by
# scripts/build-images.sh.
ARG BASE_IMAGE=aro-base:dev
FROM ${BASE_IMAGE}
COPY aro-sample-workload /usr/local/bin/aro-sample-workload
COPY beat-data.txt /srv/aro/beat-data.txt
WORKDIR /srv/aro
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/aro-sample-workload"]
LABEL io.aro.managed=true \
      org.opencontainers.image.title=aro-sample-workload \
      org.opencontainers.image.description="Sample workload: serves a data set over HTTP and pushes heartbeats to the detector"
