# kengate: a slim runtime image. Build: docker build -t kengate .
# Run:   docker run -p 8545:8545 -p 127.0.0.1:9545:9545 kengate --node http://en1:8551 --node-ws ws://en1:8552
# (9545 is the admin surface: /status, /metrics, /admin/keys; publish it on a private address only)
# (nodes addressed by hostname need --rpcvhosts on the node, or use their IPs)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml build.rs ./
# the link order of the code that runs at start-up and per call (build.rs; idle RSS)
COPY link ./link
COPY src ./src
COPY proxy.toml ./
RUN cargo build --release --locked --bin kengate

FROM debian:bookworm-slim
# ca-certificates: the system trust roots for https:// and wss:// nodes.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 kengate
COPY --from=build /src/target/release/kengate /usr/local/bin/kengate
COPY --from=build /src/proxy.toml /etc/kengate/proxy.toml
USER kengate
EXPOSE 8545 9545
# /ready on the admin surface: plain HTTP even when [tls] is on for 8545.
HEALTHCHECK --interval=10s --timeout=2s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/9545 && printf 'GET /ready HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["/usr/local/bin/kengate"]
CMD ["--config", "/etc/kengate/proxy.toml", "--listen", "0.0.0.0:8545", "--admin-listen", "0.0.0.0:9545"]
