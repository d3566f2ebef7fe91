import { defineConfig } from 'vite';

// The built UI is embedded into the Sightline binary; in development
// (`npm run dev`) API calls go to a Sightline on :7070.
export default defineConfig({
  base: '/',
  build: { target: 'es2022', chunkSizeWarningLimit: 600 },
  server: {
    proxy: Object.fromEntries(['/api', '/prometheus', '/jaeger', '/metrics'].map((p) => [p, 'http://127.0.0.1:7070'])),
  },
});
