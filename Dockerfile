# syntax=docker/dockerfile:1
#
# slotgate container image.
#
#   docker build -t slotgate:0.1.0 .
#   docker run --rm -p 6379:6379 -e SLOTGATE_SEEDS=redis-node-0:6379 slotgate:0.1.0
#
# Stage 1 builds the same binary as the README (`cargo build --release`), with --locked so
# that Cargo.lock is used as committed. Stage 2 is distroless "cc" (glibc, libgcc, CA
# certificates, no shell, no package manager) running as the numeric user 65532, so that
# Kubernetes' runAsNonRoot can check it. The build context is whitelisted in .dockerignore.
#
# The default config (config/docker.toml, baked in as /etc/slotgate/slotgate.toml) listens
# on 0.0.0.0:6379 for clients and on 0.0.0.0:9121 for the admin HTTP endpoints (/healthz,
# /readyz, /metrics, /topology, POST /reload; no authentication, so do not publish 9121 to
# the client network). `seeds` has no sensible default: give it with SLOTGATE_SEEDS or
# --seeds. Every key can be overridden the same way (docs/configuration.md).
#
# No HEALTHCHECK: Kubernetes ignores it (the manifests in k8s/ use HTTP probes on the admin
# port) and the runtime image has no shell or HTTP client to run one with.
#checkov:skip=CKV_DOCKER_2:HEALTHCHECK is ignored by Kubernetes, which probes /healthz and /readyz on the admin port; distroless has no shell or curl to run one

ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# benches/ is declared in Cargo.toml ([[bench]]), so cargo wants it present to read the
# manifest, even though a release build does not compile it.
COPY benches ./benches
COPY src ./src
# The registry and target caches make rebuilds incremental; they are BuildKit cache mounts,
# not image layers, so the binary is copied out of target/ before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin slotgate \
    && install -D -m 0755 target/release/slotgate /out/slotgate

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="slotgate" \
      org.opencontainers.image.description="Cluster-aware Redis proxy: one standalone endpoint in front of a Redis Cluster"
COPY --from=build /out/slotgate /usr/local/bin/slotgate
COPY config/docker.toml /etc/slotgate/slotgate.toml
ENV SLOTGATE_CONFIG=/etc/slotgate/slotgate.toml
USER 65532:65532
# 6379: RESP (clients); 9121: admin HTTP (/healthz, /readyz, /metrics, /topology).
EXPOSE 6379 9121
ENTRYPOINT ["/usr/local/bin/slotgate"]
