# syntax=docker/dockerfile:1
#
# seckill: one static binary on a small non-root image. The same image runs
# every role; docker-compose.yml picks the subcommand (migrate, serve, worker).
#
#   docker build -t seckill .
#   docker run --rm -p 8080:8080 -e SECKILL_HTTP_ADDR=0.0.0.0:8080 seckill all

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so a code change does not download modules again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/seckill ./app/cmd/seckill

# Alpine rather than distroless because the compose healthchecks use
# busybox wget against /readyz; the binary itself needs nothing from the image.
FROM alpine:3.22
RUN apk add --no-cache ca-certificates tzdata \
 && addgroup -S -g 10001 seckill \
 && adduser -S -D -H -u 10001 -G seckill -h /home/seckill seckill \
 && mkdir -p /home/seckill/var && chown -R 10001:10001 /home/seckill
COPY --from=build /out/seckill /usr/local/bin/seckill
USER 10001:10001
# `seckill all --sqlite-path var/seckill.db` can keep a SQLite file here;
# by default it uses a temporary file per run.
WORKDIR /home/seckill
EXPOSE 8080
ENTRYPOINT ["seckill"]
CMD ["all"]
