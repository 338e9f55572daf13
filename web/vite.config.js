import { defineConfig } from "vite";

// Built output is committed inside the Python package so `hivecast serve` needs no Node.js.
export default defineConfig({
  base: "/",
  build: {
    outDir: "../src/hivecast/web/static",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
});
