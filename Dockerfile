# kengate: a slim runtime image. Build: docker build -t kengate .
# Run:   docker run -p 8545:8545 kengate --listen 0.0.0.0:8545 --node http://en1:8551 --node-ws ws://en1:8552
# (nodes addressed by hostname need --rpcvhosts on the node, or use their IPs)
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY proxy.toml ./
RUN cargo build --release --locked --bin kengate

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 kengate
COPY --from=build /src/target/release/kengate /usr/local/bin/kengate
COPY --from=build /src/proxy.toml /etc/kengate/proxy.toml
USER kengate
EXPOSE 8545
HEALTHCHECK --interval=10s --timeout=2s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8545 && printf 'GET /ready HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["/usr/local/bin/kengate"]
CMD ["--config", "/etc/kengate/proxy.toml", "--listen", "0.0.0.0:8545"]
