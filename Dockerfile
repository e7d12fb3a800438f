# syntax=docker/dockerfile:1
# etcd-upkeep image: a static-ish Rust binary on distroless, non-root, read-only-root friendly.
# Build: docker build -t etcd-upkeep:0.1.0 .

# ---- build ----------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
# protoc and the well-known .proto files: etcd-client compiles etcd's API at build time.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, in their own layer: a source change does not rebuild the dependency tree.
# The manifest declares a library (src/lib.rs) and a binary (src/main.rs): both get a stand-in.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src
COPY src ./src
# COPY keeps the files' own modification times, which can be older than the stand-in build:
# touch every source so cargo rebuilds the crate instead of reusing the stand-ins.
RUN find src -name '*.rs' -exec touch {} + \
 && cargo build --release --locked \
 && strip target/release/etcd-upkeep

# ---- run ------------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc and CA certificates, nothing else (no shell, no package manager).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="etcd-upkeep" \
      org.opencontainers.image.description="Keeps etcd healthy by itself: compaction, safe rolling defragmentation, NOSPACE self-healing, sync-loop diagnosis, Prometheus metrics" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/etcd-upkeep"
COPY --from=build /src/target/release/etcd-upkeep /usr/local/bin/etcd-upkeep
# Numeric non-root user (distroless "nonroot"); the daemon writes nothing to disk, so it runs
# with readOnlyRootFilesystem: true.
USER 65532:65532
# /metrics, /healthz, /readyz, /status
EXPOSE 9479
ENTRYPOINT ["/usr/local/bin/etcd-upkeep"]
CMD ["run"]
