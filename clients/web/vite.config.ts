import { defineConfig } from "vite";

// The daemon serves dist/ and the gRPC-web API on one origin, so assets use relative paths
// and nothing is fetched from anywhere else.
export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
  },
});
