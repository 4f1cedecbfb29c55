# syntax=docker/dockerfile:1.7
# Switchyard images.
#   docker build -t switchyard .                                   # gateway (default target: runtime)
#   docker build --target local-backend -t switchyard-local-backend .   # GPU llama.cpp server (CUDA 12)
# Stages: build (dev deps + tsc → dist/), deps (production node_modules only),
# runtime (gateway, node:20-slim, non-root), local-backend (CUDA runtime base, non-root).

ARG NODE_IMAGE=node:20-slim
ARG CUDA_IMAGE=nvidia/cuda:12.4.1-runtime-ubuntu22.04

# ---- build: compile TypeScript with the dev dependencies --------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# node-llama-cpp ships prebuilt binaries; never compile llama.cpp during npm ci.
ENV NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY gateway ./gateway
COPY local-backend ./local-backend
RUN npm run build

# ---- deps: production dependencies only -------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
ENV NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund

# ---- local-backend: standalone OpenAI-compatible llama.cpp server on a CUDA base ---
FROM ${CUDA_IMAGE} AS local-backend
ENV NODE_ENV=production \
    NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
# Node 20 from the official image (same binary as the gateway's runtime).
COPY --from=deps /usr/local/bin/node /usr/local/bin/node
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
RUN printf '#!/bin/sh\nexec node /app/dist/local-backend/cli.js "$@"\n' > /usr/local/bin/switchyard-local-backend \
 && chmod 0755 /usr/local/bin/switchyard-local-backend \
 && groupadd --system --gid 10001 switchyard \
 && useradd --system --uid 10001 --gid switchyard --home-dir /app --shell /usr/sbin/nologin switchyard \
 && mkdir -p /models && chown switchyard:switchyard /models
USER 10001:10001
EXPOSE 8081
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:8081/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["switchyard-local-backend"]
CMD ["--model", "/models/model.gguf", "--host", "0.0.0.0", "--port", "8081"]

# ---- gateway-deps: what the gateway image needs of them ----------------------------
# The gateway runs its in-process llama.cpp backend on the CPU of a slim image: the
# CUDA and Vulkan builds of node-llama-cpp (~600 MB) cannot load there. GPU serving is
# the local-backend image above, which keeps them.
FROM deps AS gateway-deps
RUN rm -rf node_modules/@node-llama-cpp/linux-x64-cuda node_modules/@node-llama-cpp/linux-x64-cuda-ext node_modules/@node-llama-cpp/linux-x64-vulkan

# ---- runtime: the gateway (last stage = default target) ----------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=gateway-deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY config ./config
# The node image's user `node` is uid 1000; numeric so Kubernetes runAsNonRoot can verify it.
# App files stay root-owned: the process cannot rewrite its own code.
USER 1000:1000
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
STOPSIGNAL SIGTERM
CMD ["node", "dist/gateway/main.js"]
