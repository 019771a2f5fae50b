// Builds the console into dist/ with fixed file names (no content hashes, no timestamps,
// no source maps), so the same sources and lockfile give the same bytes every time and the
// Rust side can embed the files by name (src/api/console.rs).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    rollupOptions: {
      output: {
        entryFileNames: 'console/app.js',
        chunkFileNames: 'console/[name].js',
        assetFileNames: 'console/[name][extname]',
        inlineDynamicImports: true,
      },
    },
  },
});
