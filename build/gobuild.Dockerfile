# The Go toolchain in a container, for hosts without Go: build_cluster.sh
# builds ferry's binaries with it when `go` is not installed (or when
# FERRY_BUILD_IN_CONTAINER=1). Debian's Go from bookworm-backports; it
# fetches the Go release that go.mod names (GOTOOLCHAIN=auto) and the
# modules from the Go module proxy, with the host's trust store and GOPROXY.
ARG BASE_IMAGE=ferry/debian:bookworm
FROM ${BASE_IMAGE}
ARG DEBIAN_MIRROR=http://deb.debian.org/debian
RUN echo "deb $DEBIAN_MIRROR bookworm-backports main" >/etc/apt/sources.list.d/backports.list \
 && apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends golang-1.23-go ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
ENV PATH=/usr/lib/go-1.23/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    GOTOOLCHAIN=auto CGO_ENABLED=0 GOFLAGS=-buildvcs=false
