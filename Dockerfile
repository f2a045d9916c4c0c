# Multi-stage build: compile TypeScript with dev dependencies, ship only the runtime.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY src ./src
COPY workers ./workers
COPY test ./test
COPY bench ./bench
COPY scripts ./scripts
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# @grpc/grpc-js-xds is a runtime dependency: it carries the Envoy .proto files the server loads.
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY examples ./examples
# xDS, secure xDS + CA (TLS), monitoring — istiod's ports. The CA root persists under $HOME/.local/state/meshpilot/ca
# unless --ca-dir points at a volume (or a plugged-in cacerts directory).
EXPOSE 15010 15012 15014
USER node
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve", "--config-dir", "examples/bookinfo", "--monitoring-host", "0.0.0.0"]
