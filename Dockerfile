# Vigil's container image: a static binary on a distroless base, running
# as a non-root user.
#
#   docker build -t vigil .
#   docker run --rm -p 9099:9099 \
#     -v $PWD/vigil.yaml:/etc/vigil/vigil.yaml:ro \
#     -v $PWD/rules:/etc/vigil/rules:ro \
#     -v vigil-state:/var/lib/vigil \
#     vigil
#
# The config is expected at /etc/vigil/vigil.yaml (with rule_dirs:
# [/etc/vigil/rules], state.path: /var/lib/vigil/state.json and
# http.address: ":9099"); deploy/kubernetes/ has Kubernetes manifests and
# docs/deploy.md, in
# "Security", how to add a shell and du for exec checks.
#
# Both base images are pinned by digest (the multi-arch index), so a rebuild
# gets the same layers until someone moves the pin on purpose. To move one:
#   docker buildx imagetools inspect golang:1.26.8-bookworm   (or: crane digest ...)
#   docker buildx imagetools inspect gcr.io/distroless/static-debian12:nonroot

FROM golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# `vigil --version` shows it: docker build --build-arg VERSION=v1.2.3 .
ARG VERSION=""
RUN CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/vigil ./cmd/vigil \
 && mkdir -p /out/state /out/rules

# No shell, no package manager, no libc: only the static binary runs.
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
COPY --from=build /out/vigil /usr/local/bin/vigil
# Empty mount points owned by the runtime user (uid 65532), so a fresh
# named volume for state is writable.
COPY --from=build --chown=65532:65532 /out/state /var/lib/vigil
COPY --from=build /out/rules /etc/vigil/rules
USER 65532:65532
VOLUME ["/var/lib/vigil"]
EXPOSE 9099
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["run", "--config", "/etc/vigil/vigil.yaml"]
